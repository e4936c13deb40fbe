"""Read models for access: operators, API keys, approvals, and the audit log.

The audit log is one row per event caused by a person or an integration (an operator, a
tenant or an API key): what they did, to which aggregate, when, under which request id,
and who approved it where a second person had to.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, update

from domain.operator import ApiKey, Approval, Operator
from projections.bulk import insert_rows
from projections.access.tables import VIEW_TABLES, api_keys, approvals, audit_log, operators

HUMAN_ACTORS = ("operator", "tenant", "api_key", "console")
# The events that change operators, keys or approvals (every other event only reaches
# the audit log, if a person caused it).
ACCESS_EVENTS = (Operator.Registered, Operator.GrantChanged, Operator.Deactivated,
                 Operator.Activated, Operator.PasswordChanged, ApiKey.Issued, ApiKey.Revoked,
                 Approval.Requested, Approval.Approved, Approval.Rejected)


def _name(actor: dict | None) -> str | None:
    if not actor:
        return None
    return str(actor.get("name") or actor.get("id"))[:100]


def _joined(values: list[str]) -> str:
    return ",".join(values)


class AccessView:
    name = "access"
    tables = VIEW_TABLES

    def __init__(self) -> None:
        self._changes_access: dict[type, bool] = {}  # per event class: one isinstance

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        log_rows = []
        changes_access = self._changes_access
        for position, event in events:
            actor = getattr(event, "actor", None)
            if isinstance(actor, dict) and actor.get("kind") in HUMAN_ACTORS:
                log_rows.append({
                    "position": position, "recorded_at": event.timestamp,
                    "actor_kind": actor["kind"], "actor_id": str(actor.get("id"))[:64],
                    "actor_name": _name(actor),
                    "request_id": (actor.get("request_id") or None),
                    "approved_by": _name(actor.get("approved_by")),
                    "action": type(event).__qualname__[:80],
                    "aggregate_id": str(event.originator_id),
                    "aggregate_version": event.originator_version})
            kind = type(event)
            changes = changes_access.get(kind)
            if changes is None:
                changes = changes_access[kind] = issubclass(kind, ACCESS_EVENTS)
            if changes:
                self._apply(conn, position, event)
        insert_rows(conn, audit_log, log_rows)  # one COPY on PostgreSQL

    def _apply(self, conn: Connection, position: int, event: Any) -> None:
        the_id, when = str(event.originator_id), event.timestamp
        if isinstance(event, Operator.Registered):
            conn.execute(insert(operators).values(
                id=the_id, username=event.username, roles=_joined(event.roles),
                site_ids=_joined(event.site_ids), account_ids=_joined(event.account_ids),
                active=True, created_at=when, changed_at=when,
                credentials_version=event.originator_version))
        elif isinstance(event, Operator.GrantChanged):
            conn.execute(update(operators).where(operators.c.id == the_id).values(
                roles=_joined(event.roles), site_ids=_joined(event.site_ids),
                account_ids=_joined(event.account_ids), changed_at=when))
        elif isinstance(event, (Operator.Deactivated, Operator.Activated)):
            conn.execute(update(operators).where(operators.c.id == the_id).values(
                active=isinstance(event, Operator.Activated), changed_at=when,
                credentials_version=event.originator_version))
        elif isinstance(event, Operator.PasswordChanged):
            conn.execute(update(operators).where(operators.c.id == the_id).values(
                changed_at=when, credentials_version=event.originator_version))
        elif isinstance(event, ApiKey.Issued):
            conn.execute(insert(api_keys).values(
                id=the_id, name=event.name, secret_hash=event.secret_hash,
                roles=_joined(event.roles),
                site_ids=_joined(event.site_ids), expires_at=event.expires_at,
                revoked=False, issued_at=when, issued_by=_name(event.actor)))
        elif isinstance(event, ApiKey.Revoked):
            conn.execute(update(api_keys).where(api_keys.c.id == the_id).values(revoked=True))
        elif isinstance(event, Approval.Requested):
            conn.execute(insert(approvals).values(
                id=the_id, action=event.action, target=event.target, site_id=event.site_id,
                summary=event.summary, status="pending", requested_by=_name(event.actor),
                requested_by_id=str(event.actor.get("id"))[:64], requested_at=when,
                position=position))
        elif isinstance(event, (Approval.Approved, Approval.Rejected)):
            conn.execute(update(approvals).where(approvals.c.id == the_id).values(
                status="approved" if isinstance(event, Approval.Approved) else "rejected",
                decided_by=_name(event.actor), decided_at=when, note=event.note,
                position=position))
