"""Importing the gateways-and-meters sheet staff already keep: all rows or none.

Every row is checked first (its columns, the account and tariff it names, the gateway it
sits behind); any problem is reported with its row, column and reason and nothing is
saved. A valid sheet is saved in one atomic write. A row for a meter that exists with the
same values changes nothing, so importing the same file again is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.errors import DomainError
from domain.meter import ADDRESSED_BY_METER_NO, meter_id_for
from domain.site import Gateway, gateway_id_for
from ledger.commands import RegisterMeter


SHEET_COLUMNS = ("gateway_name", "gateway_host", "gateway_port", "gateway_protocol",
                 "gateway_connect", "gateway_registration_id", "gateway_heartbeat",
                 "gateway_baud", "meter_no", "kind", "mode", "address", "profile",
                 "ct_ratio", "account_id", "tariff_id", "building", "floor", "unit")
REQUIRED = ("gateway_name", "meter_no", "kind", "mode")
# Required unless the row says otherwise: an inbound DTU has no host or port, a DL/T 645
# meter's address is its meter number.
REQUIRED_OUTBOUND = ("gateway_host", "gateway_port")
REQUIRED_ADDRESSED = ("address",)
MAX_ROWS = 20_000
if TYPE_CHECKING:
    from ledger.app import Ledger


@dataclass
class ImportReport:
    errors: list[dict[str, Any]] = field(default_factory=list)
    gateways_created: int = 0
    meters_created: int = 0
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def import_sheet(ledger: Ledger, site_id: UUID, rows: list[tuple[int, dict[str, str]]],
                 actor: dict, on_row: Callable[[int], None] | None = None) -> ImportReport:
    report = ImportReport()
    if not rows:
        report.errors.append({"row": None, "column": None, "reason": "the sheet has no rows"})
        return report
    if len(rows) > MAX_ROWS:
        report.errors.append({"row": None, "column": None,
                              "reason": f"at most {MAX_ROWS} rows per import"})
        return report
    missing = [c for c in REQUIRED if c not in rows[0][1]]
    if missing:
        report.errors.append({"row": 1, "column": ", ".join(missing),
                              "reason": "required column missing from the header"})
        return report
    ledger.metering.get_site(site_id)
    new_gateways: dict[UUID, Gateway] = {}
    new_meters = []
    seen_meters: dict[str, int] = {}
    for number, row in rows:
        if on_row is not None:
            on_row(1)

        def fail(column: str, reason: str) -> None:
            report.errors.append({"row": number, "column": column, "reason": reason})

        inbound = (row.get("gateway_connect") or "outbound") == "inbound"
        by_number = (row.get("profile") or "") in ADDRESSED_BY_METER_NO
        required = REQUIRED + (() if inbound else REQUIRED_OUTBOUND) + (
            () if by_number else REQUIRED_ADDRESSED)
        for column in required:
            if not row.get(column):
                fail(column, "required")
        if any(e["row"] == number for e in report.errors):
            continue
        numbers: dict[str, int | None] = {}
        for column in ("gateway_port", "address", "ct_ratio", "gateway_baud"):
            text = row.get(column) or ("1" if column == "ct_ratio" else "")
            if not text and column not in required and column != "ct_ratio":
                numbers[column] = None
            elif not text.isdigit():
                fail(column, "must be a whole number")
            else:
                numbers[column] = int(text)
        ids = {}
        for column in ("account_id", "tariff_id"):
            text = row.get(column)
            if text:
                try:
                    ids[column] = UUID(text)
                except ValueError:
                    fail(column, "not an id")
        meter_no = row["meter_no"]
        if meter_no in seen_meters:
            fail("meter_no", f"appears again (first in row {seen_meters[meter_no]})")
        seen_meters[meter_no] = number
        if any(e["row"] == number for e in report.errors):
            continue

        gateway_id = gateway_id_for(site_id, row["gateway_name"])
        protocol = row.get("gateway_protocol") or "modbus-tcp"
        connection = {"connect": row.get("gateway_connect") or "outbound",
                      "registration_id": row.get("gateway_registration_id") or None,
                      "heartbeat": row.get("gateway_heartbeat") or None,
                      "baud": numbers["gateway_baud"]}
        host = row.get("gateway_host") or None
        gateway = new_gateways.get(gateway_id) or ledger.find(gateway_id)
        try:
            if gateway is None:
                gateway = Gateway.register(site_id=site_id, name=row["gateway_name"],
                                           host=host, port=numbers["gateway_port"],
                                           protocol=protocol, actor=actor, **connection)
                if not inbound:
                    try:
                        ledger.gateway_hosts.check(row["gateway_host"])
                    except DomainError as error:
                        fail("gateway_host", error.detail)
                        continue
                new_gateways[gateway_id] = gateway
            elif not gateway.same_as(host, numbers["gateway_port"], protocol, **connection):
                fail("gateway_host", f"gateway {row['gateway_name']!r} is at "
                                     f"{gateway.host}:{gateway.port} already")
                continue
        except DomainError as error:
            fail("gateway_name", error.detail)
            continue

        existing = ledger.find(meter_id_for(meter_no)) if len(meter_no) == 12 else None
        wanted = {"meter_no": meter_no, "kind": row["kind"], "mode": row["mode"],
                  "site_id": site_id, "gateway_id": gateway_id,
                  "address": 0 if by_number else numbers["address"],
                  "profile": row.get("profile") or
                  "ref-prepaid-v1", "ct_ratio": numbers["ct_ratio"],
                  "building": row.get("building") or None, "floor": row.get("floor") or None,
                  "unit": row.get("unit") or None}
        if existing is not None:
            differs = [k for k, v in wanted.items() if existing.registration()[k] != v]
            if existing.account_id != ids.get("account_id"):
                differs.append("account_id")
            if ids.get("tariff_id") and ids["tariff_id"] not in existing.tariff_ids():
                differs.append("tariff_id")
            if differs:
                fail(differs[0], "the meter exists with another value; change it through "
                                 "the API")
            else:
                report.unchanged += 1
            continue
        try:
            new_meters.append(ledger.metering.prepare(RegisterMeter(
                account_id=ids.get("account_id"), tariff_id=ids.get("tariff_id"), **wanted),
                actor, pending_gateways=new_gateways))
        except DomainError as error:
            fail(_column_of(error.detail), error.detail)

    if report.errors:
        return report
    if new_gateways or new_meters:
        ledger.save_new(*new_gateways.values(), *new_meters)
    report.gateways_created = len(new_gateways)
    report.meters_created = len(new_meters)
    return report


def _column_of(detail: str) -> str:
    for column in SHEET_COLUMNS:
        if column in detail:
            return column
    if "account" in detail:
        return "account_id"
    if "tariff" in detail:
        return "tariff_id"
    return "meter_no"
