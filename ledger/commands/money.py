"""Money commands: top-up, refund, gift, adjustment, closing, reversal.

Each command is a frozen dataclass carrying its idempotency key. The same object is built
by the HTTP route, stored (as ``action``, ``target`` and ``params``) by an approval that
waits for a second person, rebuilt from that record when the approval is granted, and
carried out by ``Ledger.execute``. A money command also says what it needs loaded (its
account) and decides purely on it: ``decide(account, ctx)`` returns the money events.

The stored approval params keep the shape they have always had (a stored event is a
contract): ``params()`` and ``from_params`` are each other's inverse on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.account import Account, MoneyContext
from domain.chart import Channel, Wallet
from domain.errors import AmountTooLarge, InvalidRequest
from domain.money import fen_to_yuan_text
from ledger.commands.base import Command, iso, when


@dataclass(frozen=True)
class OpenAccount(Command):
    """A shop's (or a tenant's) account, opened with nothing in it."""

    action: ClassVar[str] = "open_account"
    name: str
    site_id: str | None = None
    unit: str | None = None
    contact: str | None = None
    phone: str | None = None
    area_m2: str | None = None
    idempotency_key: str | None = None

    def request(self) -> dict[str, Any]:
        """The request as fingerprinted (a repeat with other content is refused)."""
        return dict(name=self.name, site_id=self.site_id, unit=self.unit,
                    contact=self.contact, phone=self.phone, area_m2=self.area_m2)

    def decide(self, account_id: UUID, actor: dict, digest: str) -> Account:
        """The new account, under the id fixed for it (from the key, or a new one)."""
        return Account.open(account_id=account_id, actor=actor,
                            idempotency_key=self.idempotency_key, request_fingerprint=digest,
                            **self.request())


class MoneyCommand(Command):
    """A change to one account's money, recorded as a ``Transaction`` of ``kind``."""

    kind: ClassVar[str]
    account_id: UUID
    effective_at: datetime | None = None

    def needs(self) -> tuple[UUID, ...]:
        return (self.account_id,)

    def target(self) -> str:
        return str(self.account_id)

    def request(self, max_top_up_fen: int) -> dict[str, Any]:
        """The request as fingerprinted (a repeat with other content is refused), after
        checking what needs no stored state."""
        raise NotImplementedError

    def decide(self, account: Account, ctx: MoneyContext) -> Sequence[Account.MoneyEvent]:
        raise NotImplementedError


@dataclass(frozen=True)
class TopUp(MoneyCommand):
    action: ClassVar[str] = "top_up"
    kind: ClassVar[str] = "top_up"
    account_id: UUID
    amount_fen: int
    channel: str
    wallet: str = Wallet.electricity.value
    reference: str | None = None
    effective_at: datetime | None = None
    idempotency_key: str | None = None

    def request(self, max_top_up_fen: int) -> dict[str, Any]:
        if self.amount_fen > max_top_up_fen:
            raise AmountTooLarge(f"a top-up may not exceed {fen_to_yuan_text(max_top_up_fen)}"
                                 " yuan")
        return dict(amount_fen=self.amount_fen, channel=channel_of(self.channel),
                    wallet=wallet_of(self.wallet).value, reference=self.reference,
                    effective_at=iso(self.effective_at))

    def decide(self, account: Account, ctx: MoneyContext) -> Sequence[Account.MoneyEvent]:
        return [account.top_up(ctx, wallet=wallet_of(self.wallet), amount_fen=self.amount_fen,
                               channel=channel_of(self.channel), reference=self.reference)]


@dataclass(frozen=True)
class Refund(MoneyCommand):
    action: ClassVar[str] = "refund"
    kind: ClassVar[str] = "refund"
    account_id: UUID
    amount_fen: int
    channel: str
    wallet: str = Wallet.electricity.value
    reason: str | None = None
    reference: str | None = None
    effective_at: datetime | None = None
    idempotency_key: str | None = None

    def request(self, max_top_up_fen: int) -> dict[str, Any]:
        return dict(amount_fen=self.amount_fen, channel=channel_of(self.channel),
                    wallet=wallet_of(self.wallet).value, reason=self.reason,
                    reference=self.reference, effective_at=iso(self.effective_at))

    def decide(self, account: Account, ctx: MoneyContext) -> Sequence[Account.MoneyEvent]:
        return [account.refund(ctx, wallet=wallet_of(self.wallet), amount_fen=self.amount_fen,
                               channel=channel_of(self.channel), reason=self.reason,
                               reference=self.reference)]

    def params(self) -> dict[str, Any]:
        return {"amount_fen": self.amount_fen, "channel": self.channel, "wallet": self.wallet,
                "reason": self.reason, "reference": self.reference,
                "effective_at": iso(self.effective_at)}

    @classmethod
    def from_params(cls, target: str, p: dict[str, Any], key: str | None) -> Refund:
        return cls(UUID(target), amount_fen=p["amount_fen"], channel=p["channel"],
                   wallet=p["wallet"], reason=p.get("reason"), reference=p.get("reference"),
                   effective_at=when(p.get("effective_at")), idempotency_key=key)


@dataclass(frozen=True)
class Gift(MoneyCommand):
    action: ClassVar[str] = "gift"
    kind: ClassVar[str] = "gift"
    account_id: UUID
    amount_fen: int
    reason: str
    wallet: str = Wallet.electricity.value
    reference: str | None = None
    effective_at: datetime | None = None
    idempotency_key: str | None = None

    def request(self, max_top_up_fen: int) -> dict[str, Any]:
        if self.amount_fen > max_top_up_fen:
            raise AmountTooLarge("a gift may not exceed the maximum top-up")
        if not self.reason or not self.reason.strip():
            raise InvalidRequest("a gift needs a reason")
        return dict(amount_fen=self.amount_fen, wallet=wallet_of(self.wallet).value,
                    reason=self.reason, reference=self.reference,
                    effective_at=iso(self.effective_at))

    def decide(self, account: Account, ctx: MoneyContext) -> Sequence[Account.MoneyEvent]:
        return [account.gift(ctx, wallet=wallet_of(self.wallet), amount_fen=self.amount_fen,
                             reason=self.reason, reference=self.reference)]


@dataclass(frozen=True)
class Adjust(MoneyCommand):
    action: ClassVar[str] = "adjustment"
    kind: ClassVar[str] = "adjustment"
    account_id: UUID
    delta_fen: int
    reason: str
    wallet: str = Wallet.electricity.value
    force: bool = False
    effective_at: datetime | None = None
    idempotency_key: str | None = None

    def request(self, max_top_up_fen: int) -> dict[str, Any]:
        if abs(self.delta_fen) > max_top_up_fen:
            raise AmountTooLarge("an adjustment may not exceed the maximum top-up")
        return dict(delta_fen=self.delta_fen, wallet=wallet_of(self.wallet).value,
                    reason=self.reason, force=self.force, effective_at=iso(self.effective_at))

    def decide(self, account: Account, ctx: MoneyContext) -> Sequence[Account.MoneyEvent]:
        return [account.adjust(ctx, wallet=wallet_of(self.wallet), delta_fen=self.delta_fen,
                               reason=self.reason, force=self.force)]

    def params(self) -> dict[str, Any]:
        return {"delta_fen": self.delta_fen, "reason": self.reason, "wallet": self.wallet,
                "force": self.force, "effective_at": iso(self.effective_at)}

    @classmethod
    def from_params(cls, target: str, p: dict[str, Any], key: str | None) -> Adjust:
        return cls(UUID(target), delta_fen=p["delta_fen"], reason=p["reason"],
                   wallet=p["wallet"], force=p["force"],
                   effective_at=when(p.get("effective_at")), idempotency_key=key)


@dataclass(frozen=True)
class CloseAccount(MoneyCommand):
    action: ClassVar[str] = "close"
    kind: ClassVar[str] = "close"
    account_id: UUID
    settlement: str
    channel: str = Channel.cash.value
    reason: str | None = None
    idempotency_key: str | None = None

    def request(self, max_top_up_fen: int) -> dict[str, Any]:
        return dict(settlement=self.settlement, channel=channel_of(self.channel),
                    reason=self.reason)

    def decide(self, account: Account, ctx: MoneyContext) -> Sequence[Account.MoneyEvent]:
        return account.close(ctx, settlement=self.settlement, channel=channel_of(self.channel),
                             reason=self.reason)


@dataclass(frozen=True)
class Reverse(Command):
    """The exact mirror of a top-up, refund or gift; loads the original and its account."""

    action: ClassVar[str] = "reversal"
    transaction_id: UUID
    reason: str | None = None
    force: bool = False
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.transaction_id)

    def params(self) -> dict[str, Any]:
        return {"reason": self.reason, "force": self.force}

    @classmethod
    def from_params(cls, target: str, p: dict[str, Any], key: str | None) -> Reverse:
        return cls(UUID(target), reason=p.get("reason"), force=p.get("force", False),
                   idempotency_key=key)


def channel_of(channel: str) -> str:
    try:
        return Channel(channel).value
    except ValueError:
        raise InvalidRequest(f"unknown channel {channel!r}; one of "
                             f"{', '.join(c.value for c in Channel)}") from None


def wallet_of(wallet: str) -> Wallet:
    try:
        return Wallet(wallet)
    except ValueError:
        raise InvalidRequest(f"unknown wallet {wallet!r}; one of "
                             f"{', '.join(w.value for w in Wallet)}") from None
