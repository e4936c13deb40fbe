"""The enforcement policy's processor: money events in, relay commands out.

It follows the event log like a read model (with its own tracking position), but what it
"writes" are device commands, through the ledger. Its work is idempotent rather than
transactional with its position: a command's id is fixed by its cause (the money event
that moved the balance across zero), so after a crash the batch is simply run again and
commands already issued are recognised and skipped.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, select

from domain.account import Account
from domain.meter import Meter
from projections.tables import meters

ENFORCED_WALLETS = ("electricity", "water")


class EnforcementView:
    name = "enforcement"
    tables: tuple[Table, ...] = ()

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        latest: dict[tuple[str, str], tuple[int, str]] = {}
        bound: list[UUID] = []
        for _, event in events:
            if isinstance(event, Account.MoneyEvent) and event.wallet in ENFORCED_WALLETS:
                # Only the last balance of a batch matters: the policy converges on it.
                latest[(str(event.originator_id), event.wallet)] = (
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
        if decisions:
            self.ledger.enforce_balances(decisions)
