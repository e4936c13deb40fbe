"""Request shapes. Money arrives as yuan (string, or JSON number with at most two
decimals) and leaves this module as integer fen; it is never a float inside."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from domain.errors import InvalidAmount
from domain.money import yuan_text_to_fen

MONEY_SCHEMA = {"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$", "examples": ["100.00"],
                "description": "yuan with at most two decimals (a JSON number is accepted too)"}


def _to_fen(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a decimal amount such as \"100.00\"")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        # JSON numbers reach us as floats; repr() gives back the shortest text that reads
        # as the same float, which for any amount a person writes is exactly what they
        # wrote. That text, not the float, is what becomes fen.
        if not math.isfinite(value):
            raise ValueError("must be a finite amount")
        text = repr(value)
    elif isinstance(value, (str, Decimal)):
        text = str(value)
    else:
        raise ValueError("must be a decimal amount such as \"100.00\"")
    try:
        return yuan_text_to_fen(text)
    except InvalidAmount as error:
        raise ValueError(error.detail) from None


def _positive(fen: int) -> int:
    if fen <= 0:
        raise ValueError("must be greater than zero")
    return fen


def _nonzero(fen: int) -> int:
    if fen == 0:
        raise ValueError("must not be zero")
    return fen


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("needs a time zone offset (RFC 3339)")
    return value


PositiveFen = Annotated[int, BeforeValidator(_to_fen), AfterValidator(_positive),
                        WithJsonSchema(MONEY_SCHEMA)]
SignedFen = Annotated[int, BeforeValidator(_to_fen), AfterValidator(_nonzero),
                      WithJsonSchema(MONEY_SCHEMA)]
AwareDatetime = Annotated[datetime | None, AfterValidator(_aware)]
Channel = Literal["cash", "bank", "wechat", "alipay"]
WalletName = Literal["electricity", "water", "property_fee"]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=1000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OpenAccount(Strict):
    name: Text200
    site_id: Annotated[str, Field(max_length=64)] | None = None
    unit: Annotated[str, Field(max_length=64)] | None = None
    contact: Annotated[str, Field(max_length=200)] | None = None
    phone: Annotated[str, Field(max_length=64)] | None = None
    area_m2: Annotated[Decimal, Field(ge=0, le=10_000_000, decimal_places=2)] | None = None


class TopUp(Strict):
    amount: PositiveFen
    channel: Channel
    wallet: WalletName = "electricity"
    reference: Annotated[str, Field(max_length=200)] | None = None
    effective_at: AwareDatetime = None


class Refund(Strict):
    amount: PositiveFen
    channel: Channel
    reason: Annotated[str, Field(max_length=1000)] | None = None
    wallet: WalletName = "electricity"
    reference: Annotated[str, Field(max_length=200)] | None = None
    effective_at: AwareDatetime = None


class Gift(Strict):
    amount: PositiveFen
    reason: Reason
    wallet: WalletName = "electricity"
    reference: Annotated[str, Field(max_length=200)] | None = None
    effective_at: AwareDatetime = None


class Adjustment(Strict):
    amount: SignedFen = Field(description="positive credits the wallet, negative debits it")
    reason: Reason
    wallet: WalletName = "electricity"
    force: bool = False
    effective_at: AwareDatetime = None


class Reversal(Strict):
    reason: Reason
    force: bool = False


class Close(Strict):
    settlement: Literal["refund", "forfeit"]
    reason: Annotated[str, Field(max_length=1000)] | None = None
    channel: Channel = "cash"
