"""The ledger read models: accounts, wallet balances, statements, journal, trial balance.

Rows are accumulated per batch and written with one statement per table (a COPY on
PostgreSQL, ``projections/bulk.py``); sums (balances, ledger totals) are added as
per-batch deltas with one upsert per table. That keeps a
rebuild of 100,000 events to a few hundred statements instead of half a million.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo
from typing import Any

from sqlalchemy import Connection, Table, update

from domain.account import Account
from domain.chart import is_wallet_account
from projections.bulk import insert_rows, upsert_add
from projections.accounts.tables import (
    VIEW_TABLES,
    account_month_totals,
    accounts,
    journal_postings,
    ledger_totals,
    statement_entries,
    transactions,
    wallet_balances,
)

KIND_OF_EVENT: dict[type, str] = {
    Account.TopUpCredited: "top_up",
    Account.RefundPaid: "refund",
    Account.GiftCredited: "gift",
    Account.BalanceAdjusted: "adjustment",
    Account.TransactionReversed: "reversal",
    Account.BalanceSettled: "settlement",
    Account.ConsumptionCharged: "consumption",
    Account.CommonAreaCharged: "common_area",
    Account.PropertyFeeCharged: "property_fee",
}
REPORT_ZONE = ZoneInfo("Asia/Shanghai")  # the months of the account-period report
# The transaction kind of a settlement is the close that caused it.
TRANSACTION_KIND = {"settlement": "close"}


def actor_label(actor: dict | None) -> str | None:
    if not actor:
        return None
    label = f"{actor.get('kind', 'unknown')}:{actor.get('name') or actor.get('id', '')}"
    approver = actor.get("approved_by")
    if isinstance(approver, dict):
        label += f" (approved by {approver.get('name') or approver.get('id')})"
    return label[:200]


_months: dict[tuple, str] = {}


def _report_month(when: datetime) -> str:
    """The month (``YYYY-MM``) of a time in the report's zone, remembered per minute and
    offset of the time given (a month begins on a whole minute in any offset of whole
    minutes; a time in any other offset is converted every time)."""
    offset = when.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds:
        return when.astimezone(REPORT_ZONE).strftime("%Y-%m")
    key = (when.year, when.month, when.day, when.hour, when.minute, offset)
    month = _months.get(key)
    if month is None:
        if len(_months) > 100_000:
            _months.clear()
        month = _months[key] = when.astimezone(REPORT_ZONE).strftime("%Y-%m")
    return month


def register_money_kind(event_class: type, kind: str) -> None:
    """Later capabilities (consumption, shares, fees) register their money events here."""
    KIND_OF_EVENT[event_class] = kind


class _Batch:
    def __init__(self) -> None:
        self.accounts: list[dict] = []
        self.account_updates: list[dict] = []
        self.statement: list[dict] = []
        self.journal: list[dict] = []
        self.transactions: dict[str, dict] = {}
        self.reversed: list[tuple[str, str]] = []
        self.balances: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.months: dict[tuple[str, str, str, str], int] = defaultdict(int)


class LedgerView:
    name = "ledger"
    tables: tuple[Table, ...] = VIEW_TABLES

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        self.prepare(events)(conn)

    def prepare(self, events: list[tuple[int, Any]]) -> Callable[[Connection], None]:
        """The batch's rows and sums, from the events alone; the function that writes
        them."""
        batch = _Batch()
        for position, event in events:
            if isinstance(event, Account.Opened):
                self._opened(batch, position, event)
            elif isinstance(event, Account.MoneyEvent):
                self._money(batch, position, event)
            elif isinstance(event, Account.Closed):
                batch.account_updates.append({"b_id": str(event.originator_id),
                                              "status": "closed",
                                              "closed_at": event.recorded_at})
        return partial(self._flush, batch=batch)

    def _opened(self, batch: _Batch, position: int, event: Account.Opened) -> None:
        account_id = str(event.originator_id)
        batch.accounts.append({
            "id": account_id, "name": event.name, "site_id": event.site_id,
            "unit": event.unit, "contact": event.contact, "phone": event.phone,
            "area_m2": event.area_m2, "status": "open", "opened_at": event.timestamp,
            "closed_at": None, "position": position})
        for wallet in ("electricity", "water", "property_fee"):
            batch.balances[(account_id, wallet)]  # the wallet exists from the start

    def _money(self, batch: _Batch, position: int, event: Account.MoneyEvent) -> None:
        kind = KIND_OF_EVENT.get(type(event), type(event).__name__)
        account_id = str(event.originator_id)
        transaction_id = str(event.transaction_id)
        effective_at, recorded_at = event.effective_at, event.recorded_at
        wallet_delta: dict[tuple[str, str], int] = {}
        journal, totals_of = batch.journal.append, batch.totals
        for posting in event.postings:  # the stored dicts, as ``Posting.as_dict`` wrote them
            ledger_account = str(posting["ledger_account"])
            debit, credit = int(posting["debit_fen"]), int(posting["credit_fen"])
            journal({
                "position": position, "transaction_id": transaction_id,
                "account_id": account_id, "kind": kind, "ledger_account": ledger_account,
                "debit_fen": debit, "credit_fen": credit, "effective_at": effective_at,
                "recorded_at": recorded_at})
            totals = totals_of[ledger_account]
            totals[0] += debit
            totals[1] += credit
            if is_wallet_account(ledger_account):
                _, owner, wallet = ledger_account.split(":")
                wallet_delta[(owner, wallet)] = wallet_delta.get((owner, wallet), 0) + \
                    credit - debit
        for key, delta in wallet_delta.items():
            sums = batch.balances[key]
            sums[0] += delta
            if kind == "top_up":
                sums[1] += delta
            elif kind == "gift":
                sums[2] += delta
        signed = wallet_delta.get((account_id, event.wallet), 0)
        batch.months[(account_id, event.wallet, _report_month(effective_at), kind)] += signed
        actor = actor_label(event.actor)
        corrects = str(event.corrects) if event.corrects else None
        batch.statement.append({
            "position": position, "account_id": account_id, "wallet": event.wallet,
            "transaction_id": transaction_id, "kind": kind, "amount_fen": signed,
            "balance_after_fen": event.balance_after_fen, "effective_at": effective_at,
            "recorded_at": recorded_at, "actor": actor, "channel": event.channel,
            "reference": event.reference, "reason": event.reason, "corrects": corrects})
        row = batch.transactions.get(transaction_id)
        if row is None:
            batch.transactions[transaction_id] = {
                "id": transaction_id, "position": position, "account_id": account_id,
                "kind": TRANSACTION_KIND.get(kind, kind), "wallet": event.wallet,
                "amount_fen": event.amount_fen, "channel": event.channel,
                "reference": event.reference, "effective_at": effective_at,
                "recorded_at": recorded_at, "actor": actor, "corrects": corrects,
                "reversed_by": None}
        else:  # a close settles several wallets in one transaction
            row["amount_fen"] += event.amount_fen
            row["wallet"] = None
        if kind == "reversal" and event.corrects:
            batch.reversed.append((str(event.corrects), transaction_id))

    def _flush(self, conn: Connection, batch: _Batch) -> None:
        insert_rows(conn, accounts, batch.accounts)
        insert_rows(conn, statement_entries, batch.statement)
        insert_rows(conn, journal_postings, batch.journal)
        insert_rows(conn, transactions, list(batch.transactions.values()))
        for original, reversal in batch.reversed:
            conn.execute(update(transactions).where(transactions.c.id == original)
                         .values(reversed_by=reversal))
        for change in batch.account_updates:
            conn.execute(update(accounts).where(accounts.c.id == change["b_id"])
                         .values(status=change["status"], closed_at=change["closed_at"]))
        if batch.balances:
            rows = [{"account_id": a, "wallet": w, "balance_fen": s[0], "paid_in_fen": s[1],
                     "gift_in_fen": s[2]} for (a, w), s in batch.balances.items()]
            upsert_add(conn, wallet_balances, rows, ["account_id", "wallet"],
                        ["balance_fen", "paid_in_fen", "gift_in_fen"])
        if batch.months:
            rows = [{"account_id": a, "wallet": w, "month": m, "kind": k, "amount_fen": v}
                    for (a, w, m, k), v in batch.months.items()]
            upsert_add(conn, account_month_totals, rows, ["account_id", "wallet", "month",
                                                          "kind"], ["amount_fen"])
        if batch.totals:
            rows = [{"ledger_account": k, "debit_fen": v[0], "credit_fen": v[1]}
                    for k, v in batch.totals.items()]
            upsert_add(conn, ledger_totals, rows, ["ledger_account"],
                        ["debit_fen", "credit_fen"])
