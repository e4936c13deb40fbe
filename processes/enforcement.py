"""The enforcement policy: money events in, relay commands out (run by a
``processes/follower.py:PolicyProcessor``). A command's id is fixed by its cause, the money
event that moved the balance across zero, so a batch done again issues nothing twice."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from domain.account import Account
from domain.meter import Meter
from ledger.commands import EnforceBalances
from ledger.relays import ENFORCEMENT
from projections.metering.tables import meters

ENFORCED_WALLETS = ("electricity", "water", "property_fee")


class EnforcementPolicy:
    name = "enforcement"

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def act(self, decisions: list) -> None:
        self.ledger.execute(EnforceBalances(tuple(decisions)), ENFORCEMENT)

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
            meter = self.ledger.metering.get_meter(meter_id)
            if meter.account_id is not None and meter.mode == "prepaid":
                balance = self.ledger.accounts.get_account(meter.account_id).balance_fen(meter.kind)
                decisions.append((meter_id, meter.kind, balance, f"bound:{meter.version}"))
        return decisions
