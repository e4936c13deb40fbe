"""Configuration from ``PREPAID_*`` environment variables (and an optional ``.env``).

Every limit is a named setting with a default; none is a bare literal in the code.

The ``.env`` file is read from the current directory, under the environment (a variable
set in the environment wins). It is skipped, with a warning, when the file or its
directory could be changed by another user: writable by group or others, or owned by
someone other than this user or root.
"""

from __future__ import annotations

import logging
import os
import stat
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from domain.money import yuan_text_to_fen

EMBEDDED_DATABASE_URL = "sqlite:///./var/prepaid.db"
ENV_FILE = ".env"
log = logging.getLogger(__name__)


def unsafe_because(path: Path) -> str | None:
    """Why another local user could have written ``path`` (or its directory), or None."""
    me = os.geteuid() if hasattr(os, "geteuid") else None
    for what, target in (("file", path), ("directory", path.resolve().parent),
                         ("directory", path.absolute().parent)):
        info = target.stat()
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"its {what} {target} is writable by other users"
        if me is not None and info.st_uid not in (me, 0):
            return f"its {what} {target} belongs to another user"
    return None


def _safe_env_files(files) -> list[Path]:
    if files is None:
        files = [ENV_FILE]
    elif isinstance(files, (str, os.PathLike)):
        files = [files]
    safe = []
    for name in files:
        path = Path(name).expanduser()
        if not path.is_file():
            continue
        reason = unsafe_because(path)
        if reason:
            log.warning("not reading settings from %s: %s (chmod go-w, or set the "
                        "variables in the environment)", path, reason)
            continue
        safe.append(path)
    return safe


class SafeDotEnv(BaseSettings):
    """Settings that read ``.env`` from the current directory only when no one else can
    have written it (``env_file`` in the config stays None; this chooses the file)."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        asked = getattr(dotenv_settings, "env_file", None)
        dotenv = DotEnvSettingsSource(settings_cls, env_file=_safe_env_files(asked) or None)
        return init_settings, env_settings, dotenv, file_secret_settings


class Settings(SafeDotEnv):
    model_config = SettingsConfigDict(env_prefix="PREPAID_", env_file=None, extra="ignore")

    database_url: str = EMBEDDED_DATABASE_URL
    database_schema: str | None = None
    broker_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    master_key_file: str | None = None
    # DL/T 645 relay control credentials (password level, password, operator code) per
    # site and per meter: a secrets file, see adapters/bus_clients.py ControlSecrets.
    dlt645_credentials_file: str | None = None
    # host:port where inbound DTUs call in (unset: no listener).
    dtu_listen: str | None = None
    time_sync_interval_s: float = 24 * 3600  # DL/T 645 broadcast time
    status_poll_interval_s: float = 60.0  # the light relay/reachability poll; 0: off
    auto_migrate: bool | None = None

    max_top_up: str = "100000.00"
    page_size_default: int = 100
    page_size_max: int = 1000
    max_body_bytes: int = 64 * 1024
    max_bulk_body_bytes: int = 16 * 1024 * 1024
    max_write_attempts: int = 25
    hot_aggregates: int = 50_000
    max_plausible_kw: int = 1000
    group_commit_max_commands: int = 200
    group_commit_linger_s: float = 0.002
    group_commit_steady_linger_s: float = 0.01
    group_commit_shards: int = 1
    projection_poll_interval_s: float = 0.5
    # False: this process does not poll the log; `prepaid projections run` does, in a
    # process of its own. Writes through this process still catch up before answering.
    projections_in_process: bool = True
    # Python's collector thresholds for serving processes (gen0, gen1, gen2).
    gc_thresholds: str = "50000,20,100"
    projection_batch_size: int = 1000
    postgres_pool_size: int = 20
    # Database faults: how long a request waits for a connection, how long one connection
    # attempt may take, how long a lost pool slot is retried before it is given up (and
    # made again on demand), how often an outage is re-checked, and the Retry-After sent.
    database_wait_s: int = 3
    database_connect_timeout_s: int = 2
    database_reconnect_timeout_s: float = 2.0
    database_probe_interval_s: float = 0.5
    database_retry_after_s: int = 2
    # A connection whose request headers (or body) have not all arrived in this time is
    # answered 408 and closed.
    request_header_timeout_s: float = 10.0
    request_body_timeout_s: float = 60.0
    poll_timeout_s: float = 2.0
    poll_tries: int = 2
    offline_after_polls: int = 3
    # Networks a gateway may be at although they are loopback, link-local or cloud
    # metadata (comma-separated CIDRs); see ledger/gateway_hosts.py.
    gateway_allowed_networks: str = ""
    command_interval_s: float = 1.0
    devices_in_process: bool | None = None  # default: when no broker is configured
    celery_gateway_shards: int = 4
    celery_queue: str = "prepaid"
    alarm1: str = "50.00"
    alarm2: str = "20.00"
    alert_hysteresis: str = "5.00"
    notify_channels: str = "log"
    webhook_url: str | None = None
    sms_url: str | None = None
    sms_template: str = "[Prepaid] $text"
    wechat_template_url: str | None = None
    wechat_template_id: str | None = None
    receipt_template: str | None = None
    # A provider notification that is authentic but refused keeps this much of its body
    # (with the body's SHA-256); one whose signature fails keeps nothing.
    notification_excerpt_bytes: int = 2048
    # /docs, /redoc and /openapi.json for anyone who can reach the server; false leaves
    # them out (docs/security.md).
    public_docs: bool = True

    # Access: tokens, keys, login throttling, second-person approvals.
    jwt_secret_file: str | None = None   # unset: a random key kept in the database
    access_token_minutes: int = 30
    # Tokens: a token's own lifetime (exp - iat) may not exceed access_token_minutes, and
    # its iat may lie in the future by this much at most.
    token_clock_skew_s: int = 30
    # Failed logins: per username from one client address, per username from every address
    # (slower), and per address over every username; each locks for login_lockout_s.
    # Counts older than login_failure_window_s start again from zero.
    login_max_failures: int = 5
    login_max_failures_per_user: int = 50
    login_max_failures_per_address: int = 20
    login_failure_window_s: int = 3600
    login_lockout_s: int = 300
    # Passwords: a minimum length, a longer one for logins that move money or manage
    # operators (admin, finance), and a minimum zxcvbn score (0-4) after common and
    # breached passwords are refused outright.
    password_min_length: int = 8
    password_min_length_privileged: int = 12
    password_min_score: int = 2
    # Key and secret files (master key, JWT key, payment private keys) that other users
    # may read: a loud warning at start, or a refusal to start when this is true.
    refuse_exposed_secrets: bool = False
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    approval_refund_above: str = "1000.00"
    approvals_required: str = "keep_power,reversal,adjustment,refund"

    # Operations: metrics, health, logs.
    metrics_token: SecretStr | None = None  # unset: /metrics on the API port is 404
    metrics_listen: str | None = None    # host:port serving only /metrics, no token
    ready_max_lag_events: int = 1000     # /health/ready: read models at most this far behind
    ready_max_lag_s: float = 60.0        # ... and their oldest unapplied event this old
    log_format: str = "text"             # text | json
    status_stale_poll_s: float = 3600.0  # `prepaid status`: a site unpolled this long

    @property
    def run_devices_in_process(self) -> bool:
        if self.devices_in_process is not None:
            return self.devices_in_process
        return not self.broker_url

    @property
    def approval_actions(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.approvals_required.split(",") if a.strip())

    @cached_property
    def approval_refund_above_fen(self) -> int:
        return yuan_text_to_fen(self.approval_refund_above)

    @field_validator("approvals_required")
    @classmethod
    def _approvals(cls, value: str) -> str:
        known = {"keep_power", "reversal", "adjustment", "refund"}
        unknown = {a.strip() for a in value.split(",") if a.strip()} - known
        if unknown:
            raise ValueError(f"unknown actions {sorted(unknown)}; known: {sorted(known)}")
        return value

    @field_validator("gateway_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        from ledger.gateway_hosts import parse_networks

        parse_networks(value)  # ValueError names the bad entry
        return value

    @field_validator("password_min_length", "password_min_length_privileged")
    @classmethod
    def _password_length(cls, value: int) -> int:
        if not 8 <= value <= 128:
            raise ValueError("a password length between 8 and 128")
        return value

    @field_validator("dtu_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError("host:port, e.g. 0.0.0.0:9100")
        return value or None

    @property
    def dtu_listen_address(self) -> tuple[str, int] | None:
        if not self.dtu_listen:
            return None
        host, _, port = self.dtu_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError("text or json")
        return value

    @field_validator("gc_thresholds")
    @classmethod
    def _gc(cls, value: str) -> str:
        parts = value.split(",")
        if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise ValueError("three positive whole numbers, e.g. 50000,20,100")
        return value

    @field_validator("max_top_up", "alarm1", "alarm2", "alert_hysteresis",
                     "approval_refund_above")
    @classmethod
    def _money(cls, value: str) -> str:
        yuan_text_to_fen(value)
        return value

    @cached_property
    def max_top_up_fen(self) -> int:
        return yuan_text_to_fen(self.max_top_up)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgres")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def sqlite_path(self) -> str:
        assert self.is_sqlite
        path = self.database_url.split("///", 1)[1] if "///" in self.database_url else ""
        return path or ":memory:"

    @property
    def sqlalchemy_url(self) -> str:
        """The same database for the read models, through SQLAlchemy (psycopg 3 driver)."""
        url = self.database_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    def eventsourcing_env(self) -> dict[str, str]:
        """The ``eventsourcing`` library's own configuration for this database.

        The event log's recorder keeps the hash chain (``ledger/chain.py``).
        ``POSTGRES_ENABLE_DB_FUNCTIONS`` stays off on purpose: with it, inserts skip the
        table lock and readers of the notification log can pass over events committed out
        of order, which projections would then silently miss.
        """
        env = {"IS_SNAPSHOTTING_ENABLED": "y"}
        if self.is_sqlite:
            env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=self.sqlite_path,
                       SQLITE_LOCK_TIMEOUT="30",
                       APPLICATION_RECORDER_TOPIC="ledger.chain:ChainedSQLiteRecorder")
            return env
        if not self.is_postgres:
            raise ValueError(f"unsupported PREPAID_DATABASE_URL {self.database_url!r}")
        parts = urlsplit(self.database_url)
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=parts.path.lstrip("/") or "postgres",
            POSTGRES_HOST=parts.hostname or "127.0.0.1",
            POSTGRES_PORT=str(parts.port or 5432),
            POSTGRES_USER=unquote(parts.username or "postgres"),
            POSTGRES_PASSWORD=unquote(parts.password or ""),
            POSTGRES_POOL_SIZE=str(self.postgres_pool_size),
            POSTGRES_MAX_OVERFLOW=str(self.postgres_pool_size),
            POSTGRES_ENABLE_DB_FUNCTIONS="n",
            # Every connection is checked as it is taken: one lost in an outage is
            # replaced instead of failing the write that drew it.
            POSTGRES_PRE_PING="y",
            POSTGRES_CONNECT_TIMEOUT=str(self.database_wait_s),
            APPLICATION_RECORDER_TOPIC="ledger.chain:ChainedPostgresRecorder",
        )
        if self.database_schema:
            env["POSTGRES_SCHEMA"] = self.database_schema
        return env
