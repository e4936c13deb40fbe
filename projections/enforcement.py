"""The enforcement policy's processor: money events in, relay commands out.

It follows the event log like a read model (with its own tracking position), but what it
writes are device commands, through the ledger, so it cannot share one transaction with
its position. It is idempotent instead: a command's id is fixed by its cause (the money
event that moved the balance across zero), the commands are written first and the
position only after, so after a crash the batch is run again and the commands already
issued are recognised and skipped. Nothing is lost and nothing is issued twice.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import threading

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.account import Account
from domain.meter import Meter
from projections.db import Engines
from projections.tables import meters, projection_positions

ENFORCED_WALLETS = ("electricity", "water", "property_fee")


class PolicyProcessor:
    """Runs a policy (``decide`` on a batch of events, then ``act``) over the event log."""

    def __init__(self, ledger, engines: Engines, policy, batch_size: int = 1000) -> None:
        self.ledger = ledger
        self.engines = engines
        self.policy = policy
        self.name = policy.name
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def position(self) -> int:
        with self.engines.reader.connect() as conn:
            return conn.execute(select(projection_positions.c.position).where(
                projection_positions.c.name == self.name)).scalar() or 0

    def catch_up(self) -> int:
        handled = 0
        with self._lock:
            while True:
                position = self.position()
                notes = self.ledger.recorder.select_notifications(
                    start=position, limit=self.batch_size, inclusive_of_start=False)
                if not notes:
                    return handled
                events = [(n.id, self.ledger.mapper.to_domain_event(n)) for n in notes]
                with self.engines.reader.connect() as conn:
                    decisions = self.policy.decide(conn, events)
                if decisions:
                    self.policy.act(decisions)       # first the commands,
                self._save_position(notes[-1].id)    # then the position
                handled += len(notes)

    def _save_position(self, position: int) -> None:
        with self.engines.writer.begin() as conn:
            make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(make(projection_positions).values(name=self.name, position=0)
                         .on_conflict_do_nothing(index_elements=["name"]))
            conn.execute(update(projection_positions)
                         .where(projection_positions.c.name == self.name,
                                projection_positions.c.position < position)
                         .values(position=position))

class EnforcementPolicy:
    name = "enforcement"

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def act(self, decisions: list) -> None:
        self.ledger.enforce_balances(decisions)

    def decide(self, conn: Connection, events: list[tuple[int, Any]]) -> list:
        latest: dict[tuple[str, str], tuple[int, str]] = {}
        bound: list[UUID] = []
        for _, event in events:
            if isinstance(event, Account.MoneyEvent) and event.wallet in ENFORCED_WALLETS:
                # Only the last event of a batch matters: the policy converges on the
                # account as it is. Property fees in arrears cut the electricity.
                wallet = "electricity" if event.wallet == "property_fee" else event.wallet
                latest[(str(event.originator_id), wallet)] = (
                    event.balance_after_fen, str(event.transaction_id))
            elif isinstance(event, Meter.BoundToAccount):
                bound.append(event.originator_id)
        decisions = []
        if latest:
            account_ids = {account for account, _ in latest}
            rows = conn.execute(select(meters.c.id, meters.c.account_id, meters.c.kind).where(
                meters.c.account_id.in_(account_ids), meters.c.mode == "prepaid",
                meters.c.status == "active")).all()
            for meter_id, account_id, kind in rows:
                found = latest.get((account_id, kind))
                if found is not None:
                    decisions.append((UUID(meter_id), kind, found[0], found[1]))
        for meter_id in bound:
            meter = self.ledger.get_meter(meter_id)
            if meter.account_id is not None and meter.mode == "prepaid":
                balance = self.ledger.get_account(meter.account_id).balance_fen(meter.kind)
                decisions.append((meter_id, meter.kind, balance, f"bound:{meter.version}"))
        return decisions


ALERTED_WALLETS = ("electricity", "water", "property_fee")
FORECAST_DAYS = 7


class AlertPolicy:
    """Balance warnings: each money event's resulting balance is observed once."""

    name = "alerts"

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def act(self, observations: list) -> None:
        self.ledger.observe_balances(observations)

    def decide(self, conn: Connection, events: list[tuple[int, Any]]) -> list:
        latest: dict[tuple[UUID, str], tuple[int, str]] = {}
        for _, event in events:
            if isinstance(event, Account.MoneyEvent) and event.wallet in ALERTED_WALLETS:
                latest[(event.originator_id, event.wallet)] = (
                    event.balance_after_fen, str(event.transaction_id))
        return [(account_id, wallet, balance, cause,
                 days_left(conn, account_id, balance) if wallet != "property_fee" else None)
                for (account_id, wallet), (balance, cause) in latest.items()]


def days_left(conn: Connection, account_id: UUID, balance_fen: int) -> int | None:
    """How long the balance lasts at the last week's average daily charge."""
    from sqlalchemy import func

    from projections.tables import consumption_daily

    rows = conn.execute(select(consumption_daily.c.day,
                               func.sum(consumption_daily.c.charge_fen))
                        .where(consumption_daily.c.account_id == str(account_id))
                        .group_by(consumption_daily.c.day)
                        .order_by(consumption_daily.c.day.desc()).limit(FORECAST_DAYS)).all()
    spent = sum(int(r[1]) for r in rows)
    if not rows or spent <= 0:
        return None
    return max(balance_fen, 0) * len(rows) // spent
