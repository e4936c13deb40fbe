"""Responses: fen become yuan strings here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.account import Account
from domain.meter import FROM_FIRST_READING
from domain.money import fen_to_yuan_text
from domain.transaction import Transaction


def yuan(fen: int | None) -> str | None:
    return None if fen is None else fen_to_yuan_text(int(fen))


def in_yuan(value: Any) -> Any:
    """Stored parameters and results as a client reads them: every ``..._fen`` field
    becomes the same name without the suffix, in yuan (nested dicts and lists too)."""
    if isinstance(value, list):
        return [in_yuan(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(name, str) and name.endswith("_fen"):
            name = name[:-4]
            if isinstance(item, dict):
                item = {k: yuan(v) for k, v in item.items()}
            elif isinstance(item, int) and not isinstance(item, bool):
                item = yuan(item)
        else:
            item = in_yuan(item)
        out[name] = item
    return out


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def money_result(result: dict[str, Any]) -> dict[str, Any]:
    body = {
        "id": result["transaction_id"], "transaction_id": result["transaction_id"],
        "account_id": result["account_id"], "kind": result["kind"], "wallet": result["wallet"],
        "amount": yuan(result["amount_fen"]), "balance_after": yuan(result["balance_after_fen"]),
        "balances_after": {w: yuan(f) for w, f in result["balances_after_fen"].items()},
        "channel": result["channel"], "reference": result["reference"],
        "effective_at": result["effective_at"], "recorded_at": result["recorded_at"],
        "corrects": result["corrects"], "account_status": result["status"],
    }
    return body


def account(a: Account) -> dict[str, Any]:
    return {
        "id": str(a.id), "name": a.name, "site_id": a.site_id, "unit": a.unit,
        "contact": a.contact, "phone": a.phone, "area_m2": a.area_m2, "status": a.status,
        "balance": yuan(a.balance_fen("electricity")),
        "wallets": {w: yuan(f) for w, f in a.balances_fen.items()},
        "available": {w: yuan(a.available_fen(w)) for w in a.balances_fen},
        "opened_at": iso(a.created_on), "closed_at": iso(a.closed_at),
    }


def opened(result: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    zero = yuan(0)
    return {"id": result["account_id"], **{k: a.get(k) for k in (
        "name", "site_id", "unit", "contact", "phone", "area_m2")},
        "status": result["status"], "balance": zero,
        "wallets": {"electricity": zero, "water": zero, "property_fee": zero},
        "opened_at": result["opened_at"], "closed_at": None}


def transaction(t: Transaction) -> dict[str, Any]:
    postings = t.posting_list
    return {
        "id": str(t.id), "account_id": str(t.account_id), "kind": t.kind, "wallet": t.wallet,
        "amount": yuan(t.amount_fen), "effective_at": iso(t.effective_at),
        "recorded_at": iso(t.recorded_at), "actor": t.actor,
        "idempotency_key": t.idempotency_key,
        "corrects": str(t.corrects) if t.corrects else None,
        "reversed_by": str(t.reversed_by) if t.reversed_by else None,
        "postings": [{"ledger_account": p.ledger_account, "debit": yuan(p.debit_fen),
                      "credit": yuan(p.credit_fen)} for p in postings],
        "total_debit": yuan(sum(p.debit_fen for p in postings)),
        "total_credit": yuan(sum(p.credit_fen for p in postings)),
    }


def statement_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "transaction_id": row["transaction_id"], "wallet": row["wallet"], "kind": row["kind"],
        "amount": yuan(row["amount_fen"]), "balance_after": yuan(row["balance_after_fen"]),
        "effective_at": iso(row["effective_at"]), "recorded_at": iso(row["recorded_at"]),
        "actor": row["actor"], "channel": row["channel"], "reference": row["reference"],
        "reason": row["reason"], "corrects": row["corrects"],
    }


# -- receipts ------------------------------------------------------------------------

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")  # a shop with no site: the default site time zone
RECEIPT_TITLES = {"top_up": "充值收据 Top-up receipt", "refund": "退费收据 Refund receipt",
                  "reversal": "冲正凭证 Reversal receipt", "open": "开户凭证 Account opening"}


def receipt_fields(*, account: Account, site: Any | None, kind: str, number: str,
                   wallet: str | None, amount_fen: int, balance_after_fen: int | None,
                   channel: str | None, when: datetime | None, actor: dict | None,
                   username_of: Callable[[str], str | None]) -> dict[str, str]:
    """What a receipt prints: the shop's name and unit, amounts in yuan, the time on the
    site's clock to the second, and who took the money by name."""
    from adapters.receipts import CHANNELS, KINDS, WALLETS, actor_name, label, local_time

    zone = site.zone if site is not None else DEFAULT_ZONE
    return {
        "title": RECEIPT_TITLES.get(kind, f"{label(KINDS, kind)} 收据 receipt"),
        "transaction_id": number, "account_id": str(account.id),
        "account_name": account.name, "unit": _unit_text(account.unit, site),
        "site_name": site.name if site is not None else "-",
        "kind": label(KINDS, kind), "wallet": label(WALLETS, wallet),
        "amount": yuan(amount_fen), "balance_after": yuan(balance_after_fen) or "-",
        "channel": label(CHANNELS, channel), "effective_at": local_time(when, zone),
        "operator": actor_name(actor, username_of)}


def _unit_text(unit: str | None, site: Any | None) -> str:
    """The unit code, with its building and floor when the site lists the unit."""
    if not unit:
        return "-"
    known = (site.units if site is not None else {}).get(unit)
    if not known:
        return unit
    building = site.buildings.get(known.get("building"), known.get("building"))
    where = " ".join(str(p) for p in (building, known.get("floor") and
                                      f"{known['floor']}层 floor") if p)
    return f"{unit} ({where})" if where else unit


def event(e: Any) -> dict[str, Any]:
    data = {k: _plain(v) for k, v in vars(e).items()
            if k not in ("originator_id", "originator_version", "timestamp")}
    return {"type": type(e).__qualname__, "version": e.originator_version,
            "timestamp": iso(e.timestamp), "data": data}


def _plain(value: Any) -> Any:
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- metering ------------------------------------------------------------------------

def kwh(wh: int | None) -> str | None:
    """Wh as kWh with two places (display only: rounded half up to 0.01 kWh)."""
    if wh is None:
        return None
    sign = "-" if wh < 0 else ""
    centi = (abs(int(wh)) + 5) // 10
    return f"{sign}{centi // 100}.{centi % 100:02d}"


def register_text(units: int | None, kind: str) -> str | None:
    """A register value: 0.01 kWh (electricity) or litres shown as m³ (water)."""
    if units is None:
        return None
    if kind == "water":
        return f"{units // 1000}.{units % 1000:03d}"
    return f"{units // 100}.{units % 100:02d}"


def price(price_1e4: int | None) -> str | None:
    if price_1e4 is None:
        return None
    return f"{price_1e4 // 10_000}.{price_1e4 % 10_000:04d}"


def site(s: Any) -> dict[str, Any]:
    return {"id": str(s.id), "name": s.name, "timezone": s.timezone,
            "poll_interval_s": s.poll_interval_s,
            "buildings": [{"code": c, "name": n} for c, n in s.buildings.items()],
            "units": [{"code": c, **u} for c, u in s.units.items()]}


def gateway(g: Any) -> dict[str, Any]:
    inbound = g.connect == "inbound"
    return {"id": str(g.id), "site_id": str(g.site_id), "name": g.name,
            "host": None if inbound else g.host, "port": None if inbound else g.port,
            "protocol": g.protocol, "connect": g.connect,
            "registration_id": g.registration_id, "heartbeat": g.heartbeat, "baud": g.baud}


def gateway_row(row: dict[str, Any]) -> dict[str, Any]:
    inbound = row["connect"] == "inbound"
    return {**{k: v for k, v in row.items() if k != "position"},
            "host": None if inbound else row["host"], "port": None if inbound else row["port"]}


def tariff_spec(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": spec["kind"]}
    if spec.get("price_1e4") is not None:
        out["price"] = price(spec["price_1e4"])
    if spec.get("band_prices_1e4"):
        out["band_prices"] = {b: price(v) for b, v in spec["band_prices_1e4"].items()}
    if spec.get("schedule"):
        out["schedule"] = [_segment(s) for s in spec["schedule"]]
    if spec.get("seasons"):
        out["seasons"] = [{"months": s["months"], "schedule": [_segment(x) for x in s["schedule"]]}
                          for s in spec["seasons"]]
    if spec.get("tiers"):
        out["tiers"] = [{"up_to_kwh": kwh(t["up_to_wh"]), "price": price(t["price_1e4"])}
                        for t in spec["tiers"]]
    return out


def _segment(segment: dict[str, Any]) -> dict[str, str]:
    minute = segment["start_minute"]
    return {"start": f"{minute // 60:02d}:{minute % 60:02d}", "band": segment["band"]}


def tariff(t: Any) -> dict[str, Any]:
    return {"id": str(t.id), "name": t.name, "utility": t.utility,
            "versions": [{"version": v["version"], "effective_from": iso(v["effective_from"]),
                          **tariff_spec(v["spec"])} for v in t.versions]}


def meter(m: Any) -> dict[str, Any]:
    last = m.last or {}
    return {
        "id": str(m.id), "meter_no": m.meter_no, "kind": m.kind, "mode": m.mode,
        "site_id": _text(m.site_id), "gateway_id": _text(m.gateway_id), "address": m.address,
        "profile": m.profile, "ct_ratio": m.ct_ratio, "building": m.building,
        "floor": m.floor, "unit": m.unit, "account_id": _text(m.account_id),
        "status": m.status, "replaced_by": _text(m.replaced_by),
        "tariffs": [{"tariff_id": str(t), "effective_from": None if first else iso(when),
                     "from_first_reading": first}
                    for when, t in m.tariffs for first in [when == FROM_FIRST_READING]],
        "last_billed_reading": {"read_at": iso(last.get("read_at")),
                                **register_totals(last.get("total"), m.kind)}
        if last else None,
    }


def meter_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "position"}


def register_totals(units: int | None, kind: str | None) -> dict[str, str | None]:
    """A reading's total register: as ``total`` and as ``total_kwh`` (electricity) or
    ``total_m3`` (water), the names readings are sent with."""
    if kind is None:
        return {"total": None}
    text = register_text(units, kind)
    return {"total": text, ("total_m3" if kind == "water" else "total_kwh"): text}


def reading_answer(answer: dict[str, Any]) -> dict[str, Any]:
    return {"meter_no": answer["meter_no"], "read_at": iso(answer["read_at"]),
            **register_totals(answer.get("total"), answer.get("kind")),
            "status": answer["status"], "reason": answer["reason"],
            "billing": answer["billing"], "energy_kwh": kwh(answer["energy_wh"]),
            "amount": yuan(answer["charge_fen"]), "transaction_id": answer["transaction_id"]}


def reading_row(row: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"read_at": iso(row["read_at"]), **register_totals(row["total"], kind),
            **{f"{b}_kwh": register_text(row[b], kind) for b in ("sharp", "peak", "flat",
                                                                  "valley")},
            "power_kw": None if row["power_w"] is None else f"{row['power_w'] / 1000:.3f}",
            "voltage_v": None if row["voltage_dv"] is None else f"{row['voltage_dv'] / 10:.1f}",
            "current_a": None if row["current_ca"] is None else f"{row['current_ca'] / 100:.2f}",
            "relay": row["relay"], "billing": row["billing"],
            "recorded_at": iso(row["recorded_at"])}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
