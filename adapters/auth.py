"""Authentication: argon2 password hashes, JWT access tokens, API keys, login throttling.

Everything that identifies a caller ends here in a ``Principal``. Roles, sites and the
active flag are read from the operators read model on every request, so a change by an
admin (or a deactivation) takes effect at once, not when the token expires.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.access import Principal, permissions_of
from ledger.clock import Clock
from ledger.config import Settings
from projections.tables import api_keys, login_failures, operators, platform_secrets

log = logging.getLogger(__name__)

TOKEN_ALGORITHM = "HS256"
API_KEY_PREFIX = "pk_"
JWT_SECRET_NAME = "jwt-signing-key"
# Verified against when the username is unknown, so a missing user costs the same time.
_DUMMY_PASSWORD = "not-a-password"


class LoginThrottled(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _split(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def hash_api_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Authenticator:
    def __init__(self, settings: Settings, engine: Engine, clock: Clock) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.hasher = PasswordHasher(time_cost=settings.argon2_time_cost,
                                     memory_cost=settings.argon2_memory_kib)
        self._dummy_hash = self.hasher.hash(_DUMMY_PASSWORD)
        self._secret: str | None = None

    # -- passwords -----------------------------------------------------------------------

    def hash_password(self, password: str) -> str:
        return self.hasher.hash(password)

    def _password_ok(self, password_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash or self._dummy_hash, password) \
                and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # -- signing key ---------------------------------------------------------------------

    def signing_key(self) -> str:
        if self._secret is None:
            if self.settings.jwt_secret_file:
                self._secret = Path(self.settings.jwt_secret_file).read_text().strip()
            else:
                self._secret = self._stored_secret()
        return self._secret

    def _stored_secret(self) -> str:
        """A random key made once per database, so that every worker process agrees."""
        make = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        with self.engine.begin() as conn:
            conn.execute(make(platform_secrets).values(
                name=JWT_SECRET_NAME, value=secrets.token_urlsafe(48))
                .on_conflict_do_nothing(index_elements=["name"]))
            return conn.execute(select(platform_secrets.c.value).where(
                platform_secrets.c.name == JWT_SECRET_NAME)).scalar_one()

    # -- login ---------------------------------------------------------------------------

    def login(self, username: str, password: str, find_password_hash) -> tuple[str, int]:
        """Check a password and answer (access token, lifetime in seconds).

        ``find_password_hash(username)`` returns (operator id, hash, active) or None.
        Raises ``LoginThrottled`` while the user is locked out, PermissionError when the
        password is wrong.
        """
        now = self.clock()
        key = username.casefold()[:64]
        self._check_lockout(key, now)
        found = find_password_hash(username)
        ok = self._password_ok(found[1] if found else None, password)
        if not ok or not found[2]:
            self._record_failure(key, now)
            log.warning("login refused for %r: wrong username or password, or inactive", key)
            raise PermissionError("wrong username or password")
        self._clear_failures(key)
        lifetime = self.settings.access_token_minutes * 60
        claims = {"sub": str(found[0]), "iat": int(now.timestamp()),
                  "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
                  "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self.signing_key(), algorithm=TOKEN_ALGORITHM), lifetime

    def _check_lockout(self, key: str, now: datetime) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(select(login_failures).where(
                login_failures.c.username == key)).first()
        if row is not None and row.locked_until is not None and row.locked_until > now:
            raise LoginThrottled(int((row.locked_until - now).total_seconds()) + 1)

    def _record_failure(self, key: str, now: datetime) -> None:
        make = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        with self.engine.begin() as conn:
            statement = make(login_failures).values(username=key, failures=1,
                                                    last_failure_at=now)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["username"],
                set_={"failures": login_failures.c.failures + 1, "last_failure_at": now}))
            failures = conn.execute(select(login_failures.c.failures).where(
                login_failures.c.username == key)).scalar_one()
            if failures >= self.settings.login_max_failures:
                conn.execute(update(login_failures).where(login_failures.c.username == key)
                             .values(failures=0, locked_until=now + timedelta(
                                 seconds=self.settings.login_lockout_s)))

    def _clear_failures(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(login_failures).where(login_failures.c.username == key)
                         .values(failures=0, locked_until=None))

    # -- callers -------------------------------------------------------------------------

    def from_token(self, token: str) -> Principal | None:
        try:
            claims = jwt.decode(token, self.signing_key(), algorithms=[TOKEN_ALGORITHM],
                                options={"require": ["exp", "sub"]})
        except jwt.PyJWTError:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(operators).where(
                operators.c.id == str(claims["sub"]))).first()
        if row is None or not row.active:
            return None
        roles = frozenset(_split(row.roles))
        accounts = _split(row.account_ids)
        sites = _split(row.site_ids)
        tenant = "tenant" in roles
        return Principal(kind="tenant" if tenant else "operator", id=row.id,
                         name=row.username, roles=roles,
                         site_ids=frozenset(sites) if sites else None,
                         account_ids=frozenset(accounts) if tenant else None,
                         permissions=permissions_of(roles))

    def from_api_key(self, presented: str) -> Principal | None:
        if not presented.startswith(API_KEY_PREFIX) or presented.count("_") < 2:
            return None
        key_id_hex, _, secret = presented[len(API_KEY_PREFIX):].partition("_")
        try:
            key_id = str(UUID(hex=key_id_hex))
        except ValueError:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or row.revoked:
            return None
        if not hmac.compare_digest(row.secret_hash, hash_api_secret(secret)):
            return None
        if row.expires_at is not None and row.expires_at <= self.clock():
            return None
        roles = frozenset(_split(row.roles))
        sites = _split(row.site_ids)
        return Principal(kind="api_key", id=row.id, name=f"key:{row.name}", roles=roles,
                         site_ids=frozenset(sites) if sites else None,
                         permissions=permissions_of(roles))


def new_api_key(key_id: UUID) -> tuple[str, str]:
    """The key as shown once to its owner, and the hash that is kept."""
    secret = secrets.token_urlsafe(32)
    return f"{API_KEY_PREFIX}{key_id.hex}_{secret}", hash_api_secret(secret)
