"""Configuration from ``PREPAID_*`` environment variables (and an optional ``.env``).

Every limit is a named setting with a default; none is a bare literal in the code.
"""

from __future__ import annotations

from functools import cached_property
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.money import yuan_text_to_fen

EMBEDDED_DATABASE_URL = "sqlite:///./var/prepaid.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PREPAID_", env_file=".env", extra="ignore")

    database_url: str = EMBEDDED_DATABASE_URL
    database_schema: str | None = None
    broker_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    master_key_file: str | None = None
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

    # Access: tokens, keys, login throttling, second-person approvals.
    jwt_secret_file: str | None = None   # unset: a random key kept in the database
    access_token_minutes: int = 30
    login_max_failures: int = 5
    login_lockout_s: int = 300
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
            APPLICATION_RECORDER_TOPIC="ledger.chain:ChainedPostgresRecorder",
        )
        if self.database_schema:
            env["POSTGRES_SCHEMA"] = self.database_schema
        return env
