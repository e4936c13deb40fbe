"""Request shapes. Money arrives as yuan (string, or JSON number with at most two
decimals) and leaves this module as integer fen; it is never a float inside."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

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


# -- metering ------------------------------------------------------------------------

def _scaled(places: int, what: str):
    """Decimal text (or a JSON number) with at most ``places`` decimals -> integer units."""
    pattern = re.compile(rf"^\d{{1,12}}(\.\d{{1,{places}}})?$")

    def parse(value: Any) -> int:
        if isinstance(value, bool) or value is None:
            raise ValueError(f"must be a {what} such as \"1.{'0' * places}\"")
        text = repr(value) if isinstance(value, float) else str(value)
        if not pattern.match(text):
            raise ValueError(f"must be a non-negative {what} with at most {places} decimals")
        return int(Decimal(text) * 10 ** places)

    return parse


def _schema(places: int, example: str) -> dict:
    return {"type": "string", "pattern": rf"^\d+(\.\d{{1,{places}}})?$", "examples": [example]}


PricePer1e4 = Annotated[int, BeforeValidator(_scaled(4, "price in yuan")),
                        AfterValidator(_positive), WithJsonSchema(_schema(4, "0.6123"))]
SurchargePer1e4 = Annotated[int, BeforeValidator(_scaled(4, "price in yuan")),
                            WithJsonSchema(_schema(4, "0.0500"))]
KwhCenti = Annotated[int, BeforeValidator(_scaled(2, "kWh")), WithJsonSchema(_schema(2, "1234.56"))]
M3Litres = Annotated[int, BeforeValidator(_scaled(3, "m³")), WithJsonSchema(_schema(3, "12.345"))]
TierKwh = Annotated[int, BeforeValidator(_scaled(2, "kWh")), AfterValidator(_positive),
                    WithJsonSchema(_schema(2, "200"))]


class SiteIn(Strict):
    name: Text200
    timezone: str = "Asia/Shanghai"
    poll_interval_s: Annotated[int, Field(ge=60, le=86_400)] = 1800


class BuildingIn(Strict):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    name: Text200


class UnitIn(Strict):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    building: Annotated[str, Field(min_length=1, max_length=64)]
    floor: Annotated[str, Field(min_length=1, max_length=32)]
    area_m2: Annotated[Decimal, Field(ge=0, le=10_000_000, decimal_places=2)] | None = None


class GatewayIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    host: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    protocol: Literal["modbus-tcp", "modbus-rtu-tcp", "dlt645-tcp"] = "modbus-tcp"
    connect: Literal["outbound", "inbound"] = "outbound"
    registration_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    heartbeat: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] | None = None
    site_id: str


class SegmentIn(Strict):
    start: Annotated[str, Field(pattern=r"^\d{2}:\d{2}$")]
    band: Literal["sharp", "peak", "flat", "valley"]


class SeasonIn(Strict):
    months: Annotated[list[Annotated[int, Field(ge=1, le=12)]], Field(min_length=1)]
    schedule: Annotated[list[SegmentIn], Field(min_length=1, max_length=14)]


class BandPrices(Strict):
    sharp: PricePer1e4
    peak: PricePer1e4
    flat: PricePer1e4
    valley: PricePer1e4


class TierIn(Strict):
    up_to_kwh: TierKwh | None = None
    price: SurchargePer1e4


class TariffSpecIn(Strict):
    kind: Literal["flat", "tou", "tiered"]
    price: PricePer1e4 | None = None
    band_prices: BandPrices | None = None
    schedule: Annotated[list[SegmentIn], Field(max_length=14)] | None = None
    seasons: list[SeasonIn] | None = None
    tiers: Annotated[list[TierIn], Field(max_length=10)] | None = None

    def spec_dict(self) -> dict:
        return {
            "kind": self.kind, "price_1e4": self.price,
            "band_prices_1e4": self.band_prices.model_dump() if self.band_prices else {},
            "schedule": [s.model_dump() for s in self.schedule or []],
            "seasons": [{"months": s.months, "schedule": [x.model_dump() for x in s.schedule]}
                        for s in self.seasons or []],
            # kWh with two decimals -> Wh
            "tiers": [{"up_to_wh": None if t.up_to_kwh is None else t.up_to_kwh * 10,
                       "price_1e4": t.price} for t in self.tiers or []],
        }


class TariffIn(TariffSpecIn):
    name: Text200
    utility: Literal["electricity", "water"] = "electricity"
    effective_from: datetime

    _aware = field_validator("effective_from")(lambda v: _require_aware(v))


class TariffVersionIn(TariffSpecIn):
    effective_from: datetime

    _aware = field_validator("effective_from")(lambda v: _require_aware(v))


class MeterIn(Strict):
    meter_no: Annotated[str, Field(pattern=r"^\d{12}$")]
    kind: Literal["electricity", "water"]
    mode: Literal["prepaid", "monitoring"]
    gateway_id: str | None = None
    address: Annotated[int, Field(ge=1, le=247)] | None = None  # not for dlt645-2007
    profile: Literal["ref-prepaid-v1", "dlt645-2007", "acrel-ddsy1352"] = "ref-prepaid-v1"
    account_id: str | None = None
    tariff_id: str | None = None
    ct_ratio: Annotated[int, Field(ge=1, le=10_000)] = 1
    site_id: str | None = None
    building: Annotated[str, Field(max_length=64)] | None = None
    floor: Annotated[str, Field(max_length=32)] | None = None
    unit: Annotated[str, Field(max_length=64)] | None = None
    tariff_from: AwareDatetime = None


class MeterTariffIn(Strict):
    tariff_id: str
    effective_from: datetime

    _aware = field_validator("effective_from")(lambda v: _require_aware(v))


class BindIn(Strict):
    account_id: str


class RegistersIn(Strict):
    read_at: datetime
    total_kwh: KwhCenti | None = None
    total_m3: M3Litres | None = None
    sharp_kwh: KwhCenti | None = None
    peak_kwh: KwhCenti | None = None
    flat_kwh: KwhCenti | None = None
    valley_kwh: KwhCenti | None = None

    _aware = field_validator("read_at")(lambda v: _require_aware(v))

    @model_validator(mode="after")
    def _one_total(self):
        if (self.total_kwh is None) == (self.total_m3 is None):
            raise ValueError("give total_kwh (electricity) or total_m3 (water)")
        bands = [self.sharp_kwh, self.peak_kwh, self.flat_kwh, self.valley_kwh]
        if any(b is not None for b in bands) and any(b is None for b in bands):
            raise ValueError("give all four band registers or none")
        return self

    def total(self) -> int:
        return self.total_kwh if self.total_kwh is not None else self.total_m3  # type: ignore

    def bands(self) -> dict[str, int] | None:
        if self.sharp_kwh is None:
            return None
        return {"sharp": self.sharp_kwh, "peak": self.peak_kwh, "flat": self.flat_kwh,
                "valley": self.valley_kwh}  # type: ignore[dict-item]


class ReadingIn(RegistersIn):
    meter_no: Annotated[str, Field(max_length=32)]
    power_kw: Annotated[Decimal, Field(ge=-100_000, le=100_000, decimal_places=3)] | None = None
    voltage_v: Annotated[Decimal, Field(ge=0, le=100_000, decimal_places=1)] | None = None
    current_a: Annotated[Decimal, Field(ge=0, le=100_000, decimal_places=2)] | None = None
    relay: Literal["closed", "open"] | None = None


class ReadingsIn(Strict):
    readings: Annotated[list[ReadingIn], Field(min_length=1, max_length=20_000)]


class ReplaceIn(Strict):
    new_meter_no: Annotated[str, Field(pattern=r"^\d{12}$")]
    final: RegistersIn
    initial: RegistersIn
    gateway_id: str | None = None
    address: Annotated[int, Field(ge=1, le=247)] | None = None


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone offset (RFC 3339)")
    return value


def _real_month(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        year, month = (int(part) for part in value.split("-"))
        date(year, month, 1)
    except ValueError:
        raise ValueError("must be a month YYYY-MM") from None
    return value


def _real_day(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a day YYYY-MM-DD") from None
    return value


def _real_period(value: str) -> str:
    return _real_day(value) if len(value) == 10 else _real_month(value)


RealMonth = AfterValidator(_real_month)
RealDay = AfterValidator(_real_day)
RealPeriod = AfterValidator(_real_period)
