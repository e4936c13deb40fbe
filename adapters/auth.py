"""Authentication: argon2 password hashes, JWT access tokens, API keys, login throttling,
the password rule and the check of key files' permissions.

Everything that identifies a caller ends here in a ``Principal``. Roles, sites and the
active flag are read from the operators read model on every request, so a change by an
admin (or a deactivation) takes effect at once, not when the token expires. A token also
names the operator's version when it was issued (``cv``); a token older than the
operator's last password change, deactivation or reactivation is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
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
from projections.access.tables import api_keys, login_limits, operators, platform_secrets

log = logging.getLogger(__name__)

TOKEN_ALGORITHM = "HS256"
API_KEY_PREFIX = "pk_"
JWT_SECRET_NAME = "jwt-signing-key"
# Verified against when the username is unknown, so a missing user costs the same time.
_DUMMY_PASSWORD = "not-a-password"


# Permissions that make a login worth a longer password: it moves money or makes logins.
PRIVILEGED_PERMISSIONS = ("money.", "operators.manage", "api_keys.manage")


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

    def login(self, username: str, password: str, find_password_hash,
              address: str = "unknown") -> tuple[str, int]:
        """Check a password and answer (access token, lifetime in seconds).

        ``find_password_hash(username)`` returns (operator id, hash, active, version) or
        None. ``address`` is the client's. Raises ``LoginThrottled`` while the username
        (from this address, or from everywhere) or the address is locked out,
        PermissionError when the password is wrong.

        The attempt is counted before the password is checked, in one transaction, so a
        burst of concurrent attempts checks at most the allowed number of passwords.
        """
        now = self.clock()
        limits = self._limits(username, address)
        self._reserve_attempt(limits, now)
        found = find_password_hash(username)
        ok = self._password_ok(found[1] if found else None, password)
        if not ok or not found[2]:
            self._record_failure(limits, now)
            log.warning("login refused for %r: wrong username or password, or inactive",
                        username)
            raise PermissionError("wrong username or password")
        self._record_success(limits)
        lifetime = self.settings.access_token_minutes * 60
        claims = {"sub": str(found[0]), "iat": int(now.timestamp()),
                  "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
                  "cv": int(found[3]), "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self.signing_key(), algorithm=TOKEN_ALGORITHM), lifetime

    def _limits(self, username: str, address: str) -> list[tuple[str, int]]:
        """The counters one attempt counts against: this username from this address, this
        username from anywhere, this address for any username (rows lock in key order)."""
        name, where = username.casefold()[:64], (address or "unknown")[:64]
        s = self.settings
        return [(f"pair:{where}|{name}", s.login_max_failures),
                (f"user:{name}", s.login_max_failures_per_user),
                (f"addr:{where}", s.login_max_failures_per_address)]

    def _rows(self, conn, keys: list[str], now: datetime) -> dict[str, Any]:
        make = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        conn.execute(make(login_limits).values(
            [{"key": key, "failures": 0, "window_started_at": now} for key in sorted(keys)])
            .on_conflict_do_nothing(index_elements=["key"]))
        rows = conn.execute(select(login_limits).where(login_limits.c.key.in_(keys))
                            .order_by(login_limits.c.key).with_for_update()).all()
        return {row.key: row for row in rows}

    def _count(self, row, now: datetime) -> int:
        window = timedelta(seconds=self.settings.login_failure_window_s)
        return 0 if row.window_started_at + window <= now else row.failures

    def _reserve_attempt(self, limits: list[tuple[str, int]], now: datetime) -> None:
        lockout = timedelta(seconds=self.settings.login_lockout_s)
        with self.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE
            rows = self._rows(conn, [key for key, _ in limits], now)
            locked = [rows[key].locked_until for key, _ in limits
                      if rows[key].locked_until is not None and rows[key].locked_until > now]
            if locked:
                raise LoginThrottled(int((max(locked) - now).total_seconds()) + 1)
            counts = {key: self._count(rows[key], now) + 1 for key, _ in limits}
            over = [key for key, limit in limits if counts[key] > limit]
            if over:
                conn.execute(update(login_limits).where(login_limits.c.key.in_(over))
                             .values(failures=0, window_started_at=now,
                                     locked_until=now + lockout))
                raise LoginThrottled(int(lockout.total_seconds()))
            for key, count in counts.items():
                started = now if count == 1 else rows[key].window_started_at
                conn.execute(update(login_limits).where(login_limits.c.key == key)
                             .values(failures=count, window_started_at=started))

    def _record_failure(self, limits: list[tuple[str, int]], now: datetime) -> None:
        """The attempt was counted already; lock what has reached its limit."""
        lockout = timedelta(seconds=self.settings.login_lockout_s)
        with self.engine.begin() as conn:
            rows = self._rows(conn, [key for key, _ in limits], now)
            full = [key for key, limit in limits if self._count(rows[key], now) >= limit]
            if full:
                conn.execute(update(login_limits).where(login_limits.c.key.in_(full))
                             .values(failures=0, window_started_at=now,
                                     locked_until=now + lockout))

    def _record_success(self, limits: list[tuple[str, int]]) -> None:
        """The right password: this address starts afresh for this username; the wider
        counters give back the attempt they were charged."""
        pair = limits[0][0]
        wider = [key for key, _ in limits[1:]]
        with self.engine.begin() as conn:
            conn.execute(update(login_limits).where(login_limits.c.key == pair)
                         .values(failures=0, locked_until=None))
            conn.execute(update(login_limits).where(login_limits.c.key.in_(wider),
                                                    login_limits.c.failures > 0)
                         .values(failures=login_limits.c.failures - 1))

    # -- callers -------------------------------------------------------------------------

    def from_token(self, token: str) -> Principal | None:
        skew = self.settings.token_clock_skew_s
        try:
            claims = jwt.decode(token, self.signing_key(), algorithms=[TOKEN_ALGORITHM],
                                options={"require": ["exp", "iat", "sub", "cv"],
                                         "verify_iat": False})  # checked below, with skew
            issued, expires, version = int(claims["iat"]), int(claims["exp"]), \
                int(claims["cv"])
        except (jwt.PyJWTError, TypeError, ValueError):
            return None
        # Signed with the right key is not enough: a token may not outlive the configured
        # lifetime, nor be issued in the future.
        if expires - issued > self.settings.access_token_minutes * 60 \
                or issued > self.clock().timestamp() + skew:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(operators).where(
                operators.c.id == str(claims["sub"]))).first()
        if row is None or not row.active or version < row.credentials_version:
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


# -- the password rule ----------------------------------------------------------------------

_ZXCVBN_MAX = 72          # the estimator refuses longer input; the rest only adds strength
_zxcvbn_lock = threading.Lock()  # zxcvbn keeps the user inputs in a module global


def is_privileged(roles) -> bool:
    return any(p.startswith(PRIVILEGED_PERMISSIONS) for p in permissions_of(set(roles)))


def password_problem(password: str, roles, username: str, settings: Settings) -> str | None:
    """Why this password may not be used for a login with these roles, or None.

    Refused: shorter than ``PREPAID_PASSWORD_MIN_LENGTH`` (or
    ``PREPAID_PASSWORD_MIN_LENGTH_PRIVILEGED`` for logins that move money or manage
    operators), one of the 30,000 most common passwords seen in breaches (the list shipped
    with zxcvbn), or easier to guess than zxcvbn score ``PREPAID_PASSWORD_MIN_SCORE``
    (variations of common words and patterns, the username itself).
    """
    from zxcvbn import zxcvbn

    privileged = is_privileged(roles)
    minimum = settings.password_min_length_privileged if privileged \
        else settings.password_min_length
    if len(password) < minimum:
        return (f"a password has at least {minimum} characters"
                + (" for a login that moves money or manages operators" if privileged else ""))
    if password.casefold() in _common_passwords():
        return "this password is one of the most common passwords found in breaches"
    with _zxcvbn_lock:
        result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[username, *username.split("@")])
    if result["score"] < settings.password_min_score:
        warning = result["feedback"].get("warning") or "it is too easy to guess"
        return f"this password is too easy to guess: {warning.rstrip('.').lower()}"
    return None


_COMMON: frozenset[str] | None = None


def _common_passwords() -> frozenset[str]:
    global _COMMON
    if _COMMON is None:
        from zxcvbn.frequency_lists import FREQUENCY_LISTS

        _COMMON = frozenset(FREQUENCY_LISTS["passwords"])
    return _COMMON


# -- key and secret files -------------------------------------------------------------------

class SecretFileExposed(RuntimeError):
    pass


@dataclass(frozen=True)
class SecretFile:
    what: str
    path: str


def secret_files(settings: Settings, payment_settings=None) -> list[SecretFile]:
    files = [SecretFile("the meter master key (PREPAID_MASTER_KEY_FILE)",
                        settings.master_key_file),
             SecretFile("the token signing key (PREPAID_JWT_SECRET_FILE)",
                        settings.jwt_secret_file)]
    if payment_settings is not None:
        files += [SecretFile("the WeChat Pay merchant private key",
                             payment_settings.wechatpay_private_key_path),
                  SecretFile("the Alipay app private key",
                             payment_settings.alipay_app_private_key_path),
                  SecretFile("the WeChat official account AppSecret",
                             payment_settings.wechat_app_secret_file)]
    return [f for f in files if f.path]


def check_secret_files(settings: Settings, payment_settings=None) -> list[str]:
    """Warn loudly about each key file that other users may read (or replace); with
    ``PREPAID_REFUSE_EXPOSED_SECRETS`` refuse to start instead. Answers the warnings."""
    problems = []
    for secret in secret_files(settings, payment_settings):
        try:
            mode = stat.S_IMODE(os.stat(secret.path).st_mode)
        except OSError:
            continue  # the code that reads it says what is missing
        if mode & 0o077:
            problems.append(f"{secret.what} {secret.path} has mode {mode:04o}: other users "
                            f"may read it (chmod 600 {secret.path})")
    for text in problems:
        log.warning("SECURITY: %s", text)
    if problems and settings.refuse_exposed_secrets:
        raise SecretFileExposed("; ".join(problems))
    return problems
