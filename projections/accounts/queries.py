"""Read queries over the ledger read models (balances, statements, trial balance)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select

from projections.accounts.tables import (
    accounts,
    journal_postings,
    ledger_totals,
    statement_entries,
    transactions,
    wallet_balances,
)
from projections.paging import Page, decode_cursor, page_of


class LedgerQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_accounts(self, *, limit: int, cursor: str | None, site_id: str | None = None,
                      status: str | None = None, site_ids: frozenset[str] | None = None,
                      account_ids: frozenset[str] | None = None) -> Page:
        """``site_ids`` / ``account_ids`` (None: no limit) confine the list to a caller's."""
        after = decode_cursor(cursor)
        query = select(accounts).where(accounts.c.position > after)
        if site_ids is not None:
            query = query.where(accounts.c.site_id.in_(site_ids))
        if account_ids is not None:
            query = query.where(accounts.c.id.in_(account_ids))
        if site_id:
            query = query.where(accounts.c.site_id == site_id)
        if status:
            query = query.where(accounts.c.status == status)
        rows = self._rows(query.order_by(accounts.c.position).limit(limit + 1))
        return page_of(rows, limit, "position")

    def wallet_balances(self, account_id: str) -> dict[str, dict[str, int]]:
        rows = self._rows(select(wallet_balances).where(
            wallet_balances.c.account_id == account_id))
        return {r["wallet"]: r for r in rows}

    def balance_as_of(self, account_id: str, as_of: datetime,
                      known_at: datetime | None = None) -> dict[str, int]:
        """Each wallet's balance from postings effective at or before ``as_of``.

        With ``known_at``, only postings recorded by then count: the balance as the system
        knew it at that instant (postings backdated later are left out).
        """
        condition = and_(journal_postings.c.account_id == account_id,
                         journal_postings.c.ledger_account.like("wallet:%"),
                         journal_postings.c.effective_at <= as_of)
        if known_at is not None:
            condition = and_(condition, journal_postings.c.recorded_at <= known_at)
        query = (select(journal_postings.c.ledger_account,
                        func.coalesce(func.sum(journal_postings.c.credit_fen), 0)
                        - func.coalesce(func.sum(journal_postings.c.debit_fen), 0))
                 .where(condition).group_by(journal_postings.c.ledger_account))
        result = {"electricity": 0, "water": 0, "property_fee": 0}
        with self.engine.connect() as conn:
            for ledger_account, balance in conn.execute(query):
                owner = ledger_account.split(":")[1]
                if owner == account_id:
                    result[ledger_account.rsplit(":", 1)[1]] = int(balance)
        return result

    def statement(self, account_id: str, *, limit: int, cursor: str | None,
                  wallet: str | None = None, from_: datetime | None = None,
                  to: datetime | None = None) -> Page:
        after = decode_cursor(cursor)
        query = select(statement_entries).where(statement_entries.c.account_id == account_id,
                                                statement_entries.c.id > after)
        if wallet:
            query = query.where(statement_entries.c.wallet == wallet)
        if from_:
            query = query.where(statement_entries.c.effective_at >= from_)
        if to:
            query = query.where(statement_entries.c.effective_at < to)
        rows = self._rows(query.order_by(statement_entries.c.id).limit(limit + 1))
        return page_of(rows, limit, "id")

    def transaction_row(self, transaction_id: str) -> dict[str, Any] | None:
        rows = self._rows(select(transactions).where(transactions.c.id == transaction_id))
        return rows[0] if rows else None

    def trial_balance(self, as_of: datetime | None = None,
                      known_at: datetime | None = None) -> list[dict[str, Any]]:
        """Debit and credit totals per ledger account; debits always equal credits."""
        if as_of is None and known_at is None:
            rows = self._rows(select(ledger_totals).order_by(ledger_totals.c.ledger_account))
        else:
            conditions = []
            if as_of is not None:
                conditions.append(journal_postings.c.effective_at <= as_of)
            if known_at is not None:
                conditions.append(journal_postings.c.recorded_at <= known_at)
            query = (select(journal_postings.c.ledger_account,
                            func.sum(journal_postings.c.debit_fen).label("debit_fen"),
                            func.sum(journal_postings.c.credit_fen).label("credit_fen"))
                     .where(*conditions).group_by(journal_postings.c.ledger_account)
                     .order_by(journal_postings.c.ledger_account))
            rows = self._rows(query)
        return [{"ledger_account": r["ledger_account"], "debit_fen": int(r["debit_fen"]),
                 "credit_fen": int(r["credit_fen"])} for r in rows]

    def _rows(self, query) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
