"""Queries for access: operators, keys, approvals, the audit log, and where things belong.

``owner_of`` answers, for an id in a path, the site and the account it belongs to, so the
API can decide whether the caller may see it at all. That is the one question asked of
every feature's tables (accounts, meters, gateways, commands, orders): access control has
to know where each thing belongs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from projections.access.tables import api_keys, approvals, audit_log, operators
from projections.accounts.tables import accounts, transactions
from projections.devices.tables import device_commands
from projections.metering.tables import gateways, meters
from projections.paging import Page, decode_cursor, page_of
from projections.payments.tables import payment_orders


class Owner:
    """Where a resource belongs: ``found`` False means there is no such thing."""

    __slots__ = ("found", "site_id", "account_id")

    def __init__(self, found: bool, site_id: str | None = None,
                 account_id: str | None = None) -> None:
        self.found, self.site_id, self.account_id = found, site_id, account_id


class AccessQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _rows(self, query) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def _first(self, query) -> dict[str, Any] | None:
        rows = self._rows(query.limit(1))
        return rows[0] if rows else None

    # -- owners --------------------------------------------------------------------------

    def account_owner(self, account_id: str) -> Owner:
        row = self._first(select(accounts.c.site_id).where(accounts.c.id == account_id))
        return Owner(False) if row is None else Owner(True, row["site_id"], account_id)

    def meter_owner(self, meter_id: str) -> Owner:
        row = self._first(select(meters.c.site_id, meters.c.account_id)
                          .where(meters.c.id == meter_id))
        if row is None:
            return Owner(False)
        return Owner(True, row["site_id"], row["account_id"])

    def gateway_owner(self, gateway_id: str) -> Owner:
        row = self._first(select(gateways.c.site_id).where(gateways.c.id == gateway_id))
        return Owner(False) if row is None else Owner(True, row["site_id"])

    def transaction_owner(self, transaction_id: str) -> Owner:
        row = self._first(select(transactions.c.account_id)
                          .where(transactions.c.id == transaction_id))
        return Owner(False) if row is None else self.account_owner(row["account_id"])

    def command_owner(self, command_id: str) -> Owner:
        row = self._first(select(device_commands.c.meter_id)
                          .where(device_commands.c.id == command_id))
        return Owner(False) if row is None else self.meter_owner(row["meter_id"])

    def order_owner(self, out_trade_no: str) -> Owner:
        row = self._first(select(payment_orders.c.account_id)
                          .where(payment_orders.c.out_trade_no == out_trade_no))
        return Owner(False) if row is None else self.account_owner(row["account_id"])

    def approval_owner(self, approval_id: str) -> Owner:
        row = self._first(select(approvals.c.site_id).where(approvals.c.id == approval_id))
        return Owner(False) if row is None else Owner(True, row["site_id"])

    def sites_of_accounts(self, account_ids: list[str]) -> dict[str, str | None]:
        return {r["id"]: r["site_id"] for r in self._rows(
            select(accounts.c.id, accounts.c.site_id).where(accounts.c.id.in_(account_ids)))}

    def sites_of_meter_numbers(self, numbers: list[str]) -> dict[str, str | None]:
        return {r["meter_no"]: r["site_id"] for r in self._rows(
            select(meters.c.meter_no, meters.c.site_id).where(meters.c.meter_no.in_(numbers)))}

    # -- lists ---------------------------------------------------------------------------

    def operator(self, operator_id: str) -> dict[str, Any] | None:
        return self._first(select(operators).where(operators.c.id == operator_id))

    def operators(self) -> list[dict[str, Any]]:
        return self._rows(select(operators).order_by(operators.c.username))

    def api_keys(self) -> list[dict[str, Any]]:
        return self._rows(select(api_keys).order_by(api_keys.c.issued_at))

    def approvals(self, *, status: str | None, site_ids: frozenset[str] | None,
                  limit: int) -> list[dict[str, Any]]:
        query = select(approvals).order_by(approvals.c.position.desc())
        if status:
            query = query.where(approvals.c.status == status)
        if site_ids is not None:
            query = query.where(approvals.c.site_id.in_(site_ids))
        return self._rows(query.limit(limit))

    def audit_log(self, *, limit: int, cursor: str | None, actor_id: str | None = None,
                  actor_kind: str | None = None, action: str | None = None,
                  aggregate_id: str | None = None, request_id: str | None = None,
                  from_: datetime | None = None, to: datetime | None = None) -> Page:
        after = decode_cursor(cursor)
        query = select(audit_log).where(audit_log.c.position > after)
        for column, value in ((audit_log.c.actor_id, actor_id),
                              (audit_log.c.actor_kind, actor_kind),
                              (audit_log.c.aggregate_id, aggregate_id),
                              (audit_log.c.request_id, request_id)):
            if value:
                query = query.where(column == value)
        if action:
            query = query.where(audit_log.c.action.contains(action, autoescape=True))
        if from_:
            query = query.where(audit_log.c.recorded_at >= from_)
        if to:
            query = query.where(audit_log.c.recorded_at < to)
        rows = self._rows(query.order_by(audit_log.c.position).limit(limit + 1))
        return page_of(rows, limit, "position")
