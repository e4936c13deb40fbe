"""Sites, gateways, tariffs, meters and readings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from adapters.sheets import CSV_TYPE, XLSX_TYPE, SheetError, read_sheet, write_sheet
from api import render
from domain.meter import ADDRESSED_BY_METER_NO
from api.auth import Me, allow, require_account, require_gateway, require_site
from api.deps import actor, aware, current_actor, page_limit, parse_id
from api.problems import ApiProblem, problem
from api.services import AccessReads, LinkState, Metering, MeteringReads, ReadModels, \
    SheetImport
from api.schemas import (
    BindIn,
    BuildingIn,
    GatewayIn,
    MeterIn,
    MeterTariffIn,
    ReadingsIn,
    ReplaceIn,
    SiteIn,
    TariffIn,
    TariffVersionIn,
    UnitIn,
)
from domain.meter import Meter, Reading
from domain.tariff import TariffSpec
from ledger.commands import (
    AddBuilding,
    AddTariffVersion,
    AddUnit,
    AssignTariff,
    BindMeter,
    CreateSite,
    CreateTariff,
    ReadingInput,
    RegisterGateway,
    RegisterMeter,
    ReplaceMeter,
    TakeReadings,
    UnbindMeter,
)
from ledger.sheet_import import SHEET_COLUMNS

router = APIRouter(tags=["metering"])
Actor = Annotated[dict, Depends(actor)]


def _id(value: str | None, what: str):
    return None if value is None else parse_id(value, what)


# -- sites and gateways ----------------------------------------------------------------

@router.post("/sites", status_code=201, summary="Describe a site (time zone, polling)",
             **allow("sites.write", "global"))
def create_site(body: SiteIn, metering: Metering, catch_up: ReadModels,
                who: Actor) -> JSONResponse:
    site = metering.carry_out_create_site(CreateSite(body.name, body.timezone,
                                                     body.poll_interval_s), who)
    catch_up()
    return JSONResponse(render.site(site), status_code=201)


@router.get("/sites", summary="List sites",
             **allow("sites.read", "list"))
def list_sites(metering_reads: MeteringReads, catch_up: ReadModels, me: Me) -> dict[str, Any]:
    catch_up()
    return {"items": metering_reads.list_sites(_sites(me))}


def _sites(me) -> frozenset[str] | None:
    """The sites a caller may list: tenants none, limited staff theirs, others all."""
    return frozenset() if me.account_ids is not None else me.site_ids


@router.get("/sites/{site_id}", summary="A site with its buildings and units",
             **allow("sites.read"))
def get_site(site_id: str, metering: Metering) -> dict[str, Any]:
    return render.site(metering.get_site(parse_id(site_id, "site")))


@router.post("/sites/{site_id}/buildings", status_code=201, summary="Add a building",
             **allow("sites.write"))
def add_building(site_id: str, body: BuildingIn, metering: Metering,
                 who: Actor) -> JSONResponse:
    site = metering.carry_out_add_building(
        AddBuilding(parse_id(site_id, "site"), code=body.code, name=body.name), who)
    return JSONResponse(render.site(site), status_code=201)


@router.post("/sites/{site_id}/units", status_code=201, summary="Add a shop unit",
             **allow("sites.write"))
def add_unit(site_id: str, body: UnitIn, metering: Metering, catch_up: ReadModels,
             who: Actor) -> JSONResponse:
    site = metering.carry_out_add_unit(AddUnit(
        parse_id(site_id, "site"), code=body.code, building=body.building, floor=body.floor,
        area_m2=None if body.area_m2 is None else f"{body.area_m2:.2f}"), who)
    catch_up()
    return JSONResponse(render.site(site), status_code=201)


@router.post("/gateways", status_code=201, summary="Register a gateway (communication manager)",
             **allow("meters.write"))
def create_gateway(request: Request, body: GatewayIn, metering: Metering,
                   metering_reads: MeteringReads, catch_up: ReadModels,
                   who: Actor) -> JSONResponse:
    require_site(request, body.site_id)
    if body.registration_id is not None:
        # A DTU's registration id names one gateway: the listener matches on it alone.
        catch_up()
        taken = [g for g in metering_reads.list_gateways()
                 if g["registration_id"] == body.registration_id
                 and (g["site_id"], g["name"]) != (body.site_id, body.name)]
        if taken:
            raise ApiProblem(409, "registration-id-taken",
                             "another gateway has this registration_id")
    gateway = metering.carry_out_register_gateway(RegisterGateway(
        site_id=parse_id(body.site_id, "site"), name=body.name, host=body.host, port=body.port,
        protocol=body.protocol, connect=body.connect, registration_id=body.registration_id,
        heartbeat=body.heartbeat, baud=body.baud), who)
    catch_up()
    return JSONResponse(render.gateway(gateway), status_code=201)


@router.get("/gateways/{gateway_id}", summary="A gateway, with its DTU's connection state",
            **allow("sites.read"))
def get_gateway(request: Request, gateway_id: str, metering: Metering,
                link_state: LinkState) -> dict[str, Any]:
    require_gateway(request, gateway_id)
    gateway = metering.get_gateway(parse_id(gateway_id, "gateway"))
    return {**render.gateway(gateway), "link": link_state(gateway)}


@router.get("/gateways", summary="List gateways",
             **allow("sites.read", "list"))
def list_gateways(metering_reads: MeteringReads, catch_up: ReadModels, me: Me,
                  site_id: str | None = None) -> dict[str, Any]:
    catch_up()
    return {"items": [render.gateway_row(row) for row in
                      metering_reads.list_gateways(site_id, _sites(me))]}


# -- tariffs ---------------------------------------------------------------------------

@router.post("/tariffs", status_code=201, summary="Define a tariff (flat, tou, tiered)",
             **allow("meters.write", "global"))
def create_tariff(body: TariffIn, metering: Metering, catch_up: ReadModels,
                  who: Actor) -> JSONResponse:
    tariff = metering.carry_out_create_tariff(CreateTariff(
        name=body.name, utility=body.utility, spec=TariffSpec.from_dict(body.spec_dict()),
        effective_from=body.effective_from), who)
    catch_up()
    return JSONResponse(render.tariff(tariff), status_code=201)


@router.get("/tariffs", summary="List tariffs",
             **allow("meters.read"))
def list_tariffs(metering_reads: MeteringReads, catch_up: ReadModels) -> dict[str, Any]:
    catch_up()
    return {"items": [{**row, "current_from": render.iso(row["current_from"])}
                      for row in metering_reads.list_tariffs()]}


@router.get("/tariffs/{tariff_id}", summary="A tariff with every version",
             **allow("meters.read"))
def get_tariff(tariff_id: str, metering: Metering) -> dict[str, Any]:
    return render.tariff(metering.get_tariff(parse_id(tariff_id, "tariff")))


@router.get("/tariffs/{tariff_id}/versions", summary="A tariff's versions",
             **allow("meters.read"))
def tariff_versions(tariff_id: str, metering: Metering) -> dict[str, Any]:
    return {"items": render.tariff(metering.get_tariff(parse_id(tariff_id, "tariff")))[
        "versions"]}


@router.post("/tariffs/{tariff_id}/versions", status_code=201,
             summary="Change a tariff from a future instant",
             **allow("meters.write", "global"))
def add_tariff_version(tariff_id: str, body: TariffVersionIn, metering: Metering,
                       catch_up: ReadModels, who: Actor) -> JSONResponse:
    tariff = metering.carry_out_add_tariff_version(AddTariffVersion(
        parse_id(tariff_id, "tariff"), effective_from=body.effective_from,
        spec=TariffSpec.from_dict(body.spec_dict())), who)
    catch_up()
    return JSONResponse(render.tariff(tariff), status_code=201)


# -- meters ----------------------------------------------------------------------------

@router.post("/meters", status_code=201, summary="Register a meter and bind it",
             **allow("meters.write"))
def create_meter(request: Request, body: MeterIn, metering: Metering, catch_up: ReadModels,
                 who: Actor) -> JSONResponse:
    require_gateway(request, body.gateway_id)
    require_account(request, body.account_id)
    if body.site_id is not None:
        require_site(request, body.site_id)
    meter = metering.carry_out_register_meter(RegisterMeter(
        meter_no=body.meter_no, kind=body.kind, mode=body.mode,
        gateway_id=_id(body.gateway_id, "gateway"), address=body.address, profile=body.profile,
        account_id=_id(body.account_id, "account"), tariff_id=_id(body.tariff_id, "tariff"),
        ct_ratio=body.ct_ratio, site_id=_id(body.site_id, "site"), building=body.building,
        floor=body.floor, unit=body.unit, tariff_from=body.tariff_from), who)
    catch_up()
    return JSONResponse(render.meter(meter), status_code=201)


@router.get("/meters", summary="List meters",
             **allow("meters.read", "list"))
def list_meters(metering_reads: MeteringReads, catch_up: ReadModels, me: Me,
                limit: Annotated[int, Depends(page_limit)],
                cursor: str | None = None,
                site_id: str | None = None, gateway_id: str | None = None,
                account_id: str | None = None) -> dict[str, Any]:
    catch_up()
    try:
        page = metering_reads.list_meters(limit=limit, cursor=cursor, site_id=site_id,
                                          gateway_id=gateway_id, account_id=account_id,
                                          site_ids=me.site_ids, account_ids=me.account_ids)
    except ValueError as error:
        raise ApiProblem(400, "bad-cursor", str(error)) from None
    return {"items": [render.meter_row(row) for row in page.items],
            "next_cursor": page.next_cursor}


@router.get("/meters/export", summary="The gateways-and-meters sheet (CSV or XLSX)",
             **allow("sites.read", "list"))
def export_meters(request: Request, metering_reads: MeteringReads, catch_up: ReadModels,
                  site_id: str | None = None,
                  format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv") -> Response:
    require_site(request, site_id)
    catch_up()
    rows = [{**row, "gateway_protocol": row["gateway_protocol"],
             **({"gateway_host": None, "gateway_port": None}
                if row.get("gateway_connect") == "inbound" else {}),
             **({"address": None} if row["profile"] in ADDRESSED_BY_METER_NO else {})}
            for row in metering_reads.sheet_rows(site_id)]
    data = write_sheet(SHEET_COLUMNS, rows, format, title="meters")
    return Response(data, media_type=CSV_TYPE if format == "csv" else XLSX_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="meters.{format}"'})


@router.post("/meters/import", summary="Import the gateways-and-meters sheet: all rows or none",
             **allow("meters.write", "global", openapi_extra={"requestBody": {"content": {
                 CSV_TYPE: {"schema": {"type": "string"}},
                 XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}))
async def import_meters(request: Request, sheet_import: SheetImport, catch_up: ReadModels,
                        site_id: str,
                        format: Annotated[str | None, Query(pattern="^(csv|xlsx)$")] = None
                        ) -> JSONResponse:
    fmt = format or ("xlsx" if request.headers.get("content-type", "").startswith(XLSX_TYPE)
                     else "csv")
    data = await request.body()
    try:
        rows = read_sheet(data, fmt)
    except SheetError as error:
        raise ApiProblem(422, "unreadable-sheet", str(error)) from None
    who = current_actor(request)
    from starlette.concurrency import run_in_threadpool

    report = await run_in_threadpool(sheet_import, parse_id(site_id, "site"), rows, who)
    if not report.ok:
        return problem(422, "invalid-sheet", "Invalid sheet",
                       f"{len(report.errors)} problem(s); nothing was imported",
                       errors=report.errors)
    await run_in_threadpool(catch_up)
    return JSONResponse({"gateways_created": report.gateways_created,
                         "meters_created": report.meters_created,
                         "unchanged": report.unchanged}, status_code=200)


@router.get("/meters/{meter_id}", summary="A meter with its bindings",
             **allow("meters.read"))
def get_meter(meter_id: str, metering: Metering) -> dict[str, Any]:
    return render.meter(metering.get_meter(parse_id(meter_id, "meter")))


@router.put("/meters/{meter_id}/tariff", summary="Assign a tariff from an instant",
             **allow("meters.write"))
def assign_tariff(meter_id: str, body: MeterTariffIn, metering: Metering,
                  catch_up: ReadModels, who: Actor) -> dict[str, Any]:
    meter = metering.carry_out_assign_tariff(AssignTariff(
        parse_id(meter_id, "meter"), tariff_id=parse_id(body.tariff_id, "tariff"),
        effective_from=body.effective_from), who)
    catch_up()
    return render.meter(meter)


@router.post("/meters/{meter_id}/bind", summary="Bind the meter to an account (一户多表)",
             **allow("meters.write"))
def bind(request: Request, meter_id: str, body: BindIn, metering: Metering,
         catch_up: ReadModels, who: Actor) -> dict[str, Any]:
    require_account(request, body.account_id)
    meter = metering.carry_out_bind_meter(BindMeter(parse_id(meter_id, "meter"),
                                                    parse_id(body.account_id, "account")), who)
    catch_up()
    return render.meter(meter)


@router.post("/meters/{meter_id}/unbind", summary="Unbind the meter from its account",
             **allow("meters.write"))
def unbind(meter_id: str, metering: Metering, catch_up: ReadModels,
           who: Actor) -> dict[str, Any]:
    meter = metering.carry_out_unbind_meter(UnbindMeter(parse_id(meter_id, "meter")), who)
    catch_up()
    return render.meter(meter)


@router.post("/meters/{meter_id}/replace", status_code=201,
             summary="Replace a broken meter; the account carries over",
             **allow("meters.write"))
def replace(request: Request, meter_id: str, body: ReplaceIn, metering: Metering,
            catch_up: ReadModels, who: Actor) -> JSONResponse:
    require_gateway(request, body.gateway_id)
    new = metering.carry_out_replace_meter(ReplaceMeter(
        parse_id(meter_id, "meter"), new_meter_no=body.new_meter_no,
        final_reading=Reading(body.final.read_at, body.final.total(), body.final.bands()),
        initial_reading=Reading(body.initial.read_at, body.initial.total(),
                                body.initial.bands()),
        gateway_id=_id(body.gateway_id, "gateway"), address=body.address), who)
    catch_up()
    return JSONResponse(render.meter(new), status_code=201)


# -- readings --------------------------------------------------------------------------

@router.post("/readings", summary="A batch of cumulative register readings",
             **allow("readings.write", "list"))
def post_readings(body: ReadingsIn, metering: Metering, access_reads: AccessReads,
                  catch_up: ReadModels, me: Me) -> dict[str, Any]:
    """Callers limited to sites may report their sites' meters only; readings of other
    meters are answered ``rejected`` one by one, the rest of the batch goes on."""
    outside: set[str] = set()
    if me.is_restricted:
        numbers = list({r.meter_no for r in body.readings})
        sites = access_reads.sites_of_meter_numbers(numbers)
        outside = {n for n in numbers if n in sites and not me.sees_site(sites[n])}
    items = [ReadingInput(
        meter_no=r.meter_no, read_at=r.read_at, total=r.total(), bands=r.bands(),
        power_w=None if r.power_kw is None else int(r.power_kw * 1000),
        voltage_dv=None if r.voltage_v is None else int(r.voltage_v * 10),
        current_ca=None if r.current_a is None else int(r.current_a * 100), relay=r.relay)
        for r in body.readings]
    inside = [item for item in items if item.meter_no not in outside]
    ingested = metering.carry_out_take_readings(TakeReadings(inside))
    catch_up(ingested.position)
    answers = iter(ingested.answers)
    return {"results": [
        {"meter_no": item.meter_no, "read_at": render.iso(item.read_at), "total": None,
         "status": "rejected",
         "reason": "the meter is not in your sites", "billing": None, "energy_kwh": None,
         "amount": None, "transaction_id": None}
        if item.meter_no in outside else render.reading_answer(next(answers))
        for item in items]}


@router.get("/meters/{meter_id}/readings", summary="Stored readings of a meter",
             **allow("meters.read"))
def meter_readings(meter_id: str, metering: Metering, metering_reads: MeteringReads,
                   limit: Annotated[int, Depends(page_limit)],
                   cursor: str | None = None,
                   from_: Annotated[datetime | None, Query(alias="from")] = None,
                   to: datetime | None = None) -> dict[str, Any]:
    meter: Meter = metering.get_meter(parse_id(meter_id, "meter"))
    try:
        page = metering_reads.readings(str(meter.id), limit=limit, cursor=cursor,
                                       from_=aware(from_, "from"), to=aware(to, "to"))
    except ValueError as error:
        raise ApiProblem(400, "bad-cursor", str(error)) from None
    return {"meter_id": str(meter.id), "meter_no": meter.meter_no,
            "items": [render.reading_row(row, meter.kind) for row in page.items],
            "alerts": [{**a, "read_at": render.iso(a["read_at"]),
                        "raised_at": render.iso(a["raised_at"])}
                       for a in metering_reads.alerts(str(meter.id))],
            "next_cursor": page.next_cursor}

