"""Readiness checks for a load balancer or an orchestrator, and ``prepaid status``.

Ready means: the database answers, its schema is the newest migration (alembic head),
every read model and process is within ``PREPAID_READY_MAX_LAG_EVENTS`` events and
``PREPAID_READY_MAX_LAG_S`` seconds of the log, and the device runtime, when this process
runs it, is alive.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import case, func, select, text


def readiness(platform) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    settings = platform.settings
    try:
        with platform.engines.reader.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as error:
        checks["database"] = {"ok": False, "detail": type(error).__name__}
        return False, checks
    try:
        from alembic.runtime.migration import MigrationContext

        with platform.engines.reader.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        checks["schema"] = {"ok": current == _head_revision()}
    except Exception as error:
        checks["schema"] = {"ok": False, "detail": type(error).__name__}
    try:
        from adapters.metrics import lags

        # The processes (enforcement, alerts) may run elsewhere; `prepaid status` and the
        # metrics show their lag.
        rows = [r for r in lags(platform) if r["kind"] == "read_model"]
        late = [r for r in rows if r["lag_events"] > settings.ready_max_lag_events
                or r["lag_seconds"] > settings.ready_max_lag_s]
        checks["read_models"] = {"ok": not late, "lag": {
            r["name"]: {"events": r["lag_events"], "seconds": r["lag_seconds"]}
            for r in rows}}
    except Exception as error:
        checks["read_models"] = {"ok": False, "detail": type(error).__name__}
    scheduler = getattr(platform, "_scheduler", None)
    if scheduler is not None:
        thread = getattr(scheduler, "_thread", None)
        checks["device_runtime"] = {"ok": bool(thread and thread.is_alive())}
    ok = all(check["ok"] for check in checks.values())
    return ok, checks


@lru_cache(maxsize=1)
def _head_revision() -> str | None:
    """The newest migration this code knows (read from the files once)."""
    from alembic.script import ScriptDirectory

    from adapters.platform import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def platform_status(settings) -> dict[str, Any]:
    """Everything ``prepaid status`` shows, with ``attention``: what needs an operator."""
    from adapters import collection
    from adapters.platform import Platform, SchemaNotMigrated
    from projections.devices.tables import device_commands
    from projections.metering.tables import gateways, meters, sites

    report: dict[str, Any] = {"database": _safe(settings.database_url), "attention": []}
    attention = report["attention"]
    try:
        platform = Platform(settings.model_copy(update={"auto_migrate": False}))
    except SchemaNotMigrated:
        report["schema"] = "behind"
        attention.append("the database schema is not current: run `prepaid migrate`")
        return report
    except Exception as error:
        report["schema"] = None
        attention.append(f"the database cannot be reached ({type(error).__name__})")
        return report
    try:
        report["schema"] = "current"
        from adapters.metrics import lags

        report["read_models"] = lags(platform)
        for row in report["read_models"]:
            if row["lag_events"] > settings.ready_max_lag_events or \
                    row["lag_seconds"] > settings.ready_max_lag_s:
                attention.append(f"{row['name']} is {row['lag_events']} events "
                                 f"({row['lag_seconds']:.0f} s) behind")
        if settings.broker_url:
            report["broker"] = _broker(settings.broker_url)
            if not report["broker"]["ok"]:
                attention.append("the broker does not answer")
            elif report["broker"]["workers"] == 0:
                attention.append("no worker answers on the broker")
        engine = platform.engines.reader
        now = datetime.now(timezone.utc)
        with engine.connect() as conn:
            site_names = dict(conn.execute(select(sites.c.id, sites.c.name)).all())
            gateway_rows = conn.execute(select(gateways.c.id, gateways.c.name,
                                               gateways.c.site_id)).all()
            per_gateway = {gid: (online, total) for gid, online, total in conn.execute(
                select(meters.c.gateway_id,
                       func.sum(case((meters.c.online.is_(True), 1), else_=0)),
                       func.count()).where(meters.c.status == "active")
                .group_by(meters.c.gateway_id)).all()}
            commands = dict(conn.execute(select(device_commands.c.status, func.count())
                                         .group_by(device_commands.c.status)).all())
            offline = conn.execute(select(meters.c.meter_no).where(
                meters.c.status == "active", meters.c.online.is_(False))
                .order_by(meters.c.meter_no).limit(20)).scalars().all()
        last = {row["gateway_id"]: row for row in collection.latest_success(engine)}
        report["gateways"] = []
        for gid, name, site_id in gateway_rows:
            online, total = per_gateway.get(gid, (0, 0))
            polled = last.get(gid)
            entry = {"site": site_names.get(site_id), "gateway": name,
                     "meters": int(total or 0), "online": int(online or 0),
                     "last_poll": polled["polled_at"].isoformat() if polled else None,
                     "success_rate": (round(polled["answered"] / polled["meters"], 4)
                                      if polled and polled["meters"] else None)}
            report["gateways"].append(entry)
            if total and not online:
                attention.append(f"gateway {name} is offline: none of its {total} meters "
                                 "answers")
            elif polled and (now - polled["polled_at"]).total_seconds() > \
                    settings.status_stale_poll_s:
                attention.append(f"gateway {name} has not been polled since "
                                 f"{polled['polled_at']:%Y-%m-%d %H:%M} UTC")
        report["offline_meters"] = list(offline)
        report["commands"] = {"pending": sum(commands.get(s, 0)
                                             for s in ("issued", "sent", "failed")),
                              "given_up": commands.get("given_up", 0)}
        if report["commands"]["given_up"]:
            attention.append(f"{report['commands']['given_up']} device command(s) given up")
    finally:
        platform.close()
    return report


BROKER_TIMEOUT_S = 3.0
WORKER_PING_TIMEOUT_S = 1.0


def _broker(url: str) -> dict[str, Any]:
    """Whether the broker answers, and how many Celery workers answer a ping."""
    try:
        from kombu import Connection

        with Connection(url, connect_timeout=BROKER_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as error:
        return {"ok": False, "detail": type(error).__name__, "workers": None}
    try:
        from celery import Celery

        app = Celery("prepaid", broker=url)
        workers = len(app.control.ping(timeout=WORKER_PING_TIMEOUT_S) or [])
    except Exception:
        workers = None
    return {"ok": True, "workers": workers}


def _safe(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
    return url


def render_status(report: dict[str, Any]) -> str:
    lines = [f"database   {report['database']}  schema: {report.get('schema') or '?'}"]
    for row in report.get("read_models", []):
        lines.append(f"{row['kind']:<10} {row['name']:<12} position {row['position']} of "
                     f"{row['head']}  lag {row['lag_events']} events, {row['lag_seconds']} s")
    if "broker" in report:
        broker = report["broker"]
        lines.append(f"broker     {'ok' if broker['ok'] else 'NOT ANSWERING'}, "
                     f"workers: {broker['workers'] if broker['workers'] is not None else '?'}")
    for g in report.get("gateways", []):
        rate = "-" if g["success_rate"] is None else f"{g['success_rate'] * 100:.1f}%"
        lines.append(f"gateway    {g['site'] or '-'} / {g['gateway']}: {g['online']}/"
                     f"{g['meters']} online, last poll {g['last_poll'] or 'never'}, "
                     f"success {rate}")
    if report.get("offline_meters"):
        lines.append("offline    " + ", ".join(report["offline_meters"]))
    if "commands" in report:
        lines.append(f"commands   {report['commands']['pending']} pending, "
                     f"{report['commands']['given_up']} given up")
    if report["attention"]:
        lines.append("ATTENTION")
        lines.extend(f"  - {item}" for item in report["attention"])
    else:
        lines.append("all well")
    return "\n".join(lines)
