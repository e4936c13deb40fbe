"""Read queries over balance alerts and their notifications.

A caller limited to some sites sees the alerts of their accounts: the accounts' sites are
read from the accounts' table (``projections/accounts/``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from projections.accounts.tables import accounts
from projections.alerts.tables import alerts, notifications


class AlertQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def alerts(self, *, level: str | None, account_id: str | None, limit: int,
               account_ids: frozenset[str] | None = None,
               site_ids: frozenset[str] | None = None) -> list[dict[str, Any]]:
        sent = (select(func.count()).select_from(notifications)
                .where(notifications.c.alert_key == alerts.c.key,
                       notifications.c.status == "sent").scalar_subquery())
        query = select(alerts, sent.label("sent")).order_by(alerts.c.position.desc())
        if level:
            query = query.where(alerts.c.level == level)
        if account_id:
            query = query.where(alerts.c.account_id == account_id)
        if account_ids is not None:
            query = query.where(alerts.c.account_id.in_(account_ids))
        if site_ids is not None:
            query = query.where(alerts.c.account_id.in_(
                select(accounts.c.id).where(accounts.c.site_id.in_(site_ids))))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.limit(limit))]

    def due_notifications(self, now: datetime, limit: int = 200) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                select(notifications.c.id).where(
                    notifications.c.status.in_(("queued", "failed")),
                    notifications.c.next_attempt_at <= now)
                .order_by(notifications.c.position).limit(limit))]
