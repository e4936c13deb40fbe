"""The chart of accounts and balanced double-entry postings.

Every money event carries a list of postings whose debits equal its credits. Wallets are
liabilities of the property towards the tenant, so a credit raises a wallet's balance and
a debit lowers it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from uuid import UUID


class Wallet(str, Enum):
    electricity = "electricity"
    water = "water"
    property_fee = "property_fee"


class Channel(str, Enum):
    cash = "cash"
    bank = "bank"
    wechat = "wechat"
    alipay = "alipay"


SUBSIDY = "expense:subsidy"
OPENING_EQUITY = "equity:opening"
ADJUSTMENT_EQUITY = "equity:adjustment"
FORFEITED_REVENUE = "revenue:forfeited"


def wallet_account(account_id: UUID | str, wallet: Wallet | str) -> str:
    return f"wallet:{account_id}:{Wallet(wallet).value}"


def clearing_account(channel: Channel | str) -> str:
    return f"clearing:{Channel(channel).value}"


def revenue_account(stream: str) -> str:
    assert stream in {"electricity", "water", "common_area", "property_fee", "forfeited"}, stream
    return f"revenue:{stream}"


def is_wallet_account(ledger_account: str) -> bool:
    return ledger_account.startswith("wallet:")


@dataclass(frozen=True)
class Posting:
    ledger_account: str
    debit_fen: int
    credit_fen: int

    def __post_init__(self) -> None:
        assert self.debit_fen >= 0 and self.credit_fen >= 0, self
        assert (self.debit_fen == 0) != (self.credit_fen == 0), f"one side only: {self}"

    def as_dict(self) -> dict[str, int | str]:
        return {"ledger_account": self.ledger_account, "debit_fen": self.debit_fen,
                "credit_fen": self.credit_fen}

    @classmethod
    def from_dict(cls, data: dict) -> Posting:
        return cls(str(data["ledger_account"]), int(data["debit_fen"]), int(data["credit_fen"]))

    def mirrored(self) -> Posting:
        return Posting(self.ledger_account, self.credit_fen, self.debit_fen)


def transfer(debit_account: str, credit_account: str, amount_fen: int) -> list[Posting]:
    """Two legs moving ``amount_fen`` from ``credit_account``'s side to ``debit_account``."""
    assert amount_fen > 0, amount_fen
    return [Posting(debit_account, amount_fen, 0), Posting(credit_account, 0, amount_fen)]


def assert_balanced(postings: Sequence[Posting]) -> None:
    """The double-entry invariant: every transaction's debits equal its credits."""
    debits = sum(p.debit_fen for p in postings)
    credits = sum(p.credit_fen for p in postings)
    assert debits == credits, f"unbalanced postings: debit {debits} != credit {credits}"


def effect_on(ledger_account: str, postings: Iterable[Posting]) -> int:
    """How much a liability account (a wallet) rises: credits minus debits."""
    return sum(p.credit_fen - p.debit_fen for p in postings if p.ledger_account == ledger_account)


def postings_to_dicts(postings: Sequence[Posting]) -> list[dict]:
    return [p.as_dict() for p in postings]


def postings_from_dicts(items: Iterable[dict]) -> list[Posting]:
    return [Posting.from_dict(item) for item in items]
