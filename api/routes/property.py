"""Common-area pools and property fees."""

from __future__ import annotations


from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api import render
from api.schemas import RealMonth, RealPeriod
from api.auth import allow, require_account, require_site
from api.deps import actor, idempotency_key, parse_id
from api.problems import problem
from api.schemas import PositiveFen, Strict  # noqa: F811
from api.services import Property, ReadModels
from ledger.commands import (
    AllocatePool,
    ChangePoolRule,
    CreatePool,
    RunPropertyFees,
    SetFeeSchedule,
    UnpricedEnergy,
)

router = APIRouter(tags=["property"])


class ShareIn(Strict):
    account_id: str
    weight: Annotated[int, Field(ge=0, le=10**9)] | None = None


class PoolIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    site_id: str
    meter_ids: Annotated[list[str], Field(min_length=1, max_length=1000)]
    method: Literal["ratio", "area"]
    shares: Annotated[list[ShareIn], Field(min_length=1, max_length=10_000)]
    period: Literal["day", "month"] = "month"


class AllocationIn(Strict):
    period: Annotated[str, Field(pattern=r"^\d{4}-\d{2}(-\d{2})?$"), RealPeriod]


class ScheduleIn(Strict):
    account_id: str
    monthly_amount: PositiveFen | None = None
    per_m2: PositiveFen | None = None
    day_of_month: Annotated[int, Field(ge=1, le=28)] = 1


class RunIn(Strict):
    month: Annotated[str, Field(pattern=r"^\d{4}-\d{2}$"), RealMonth]


def pool_body(pool) -> dict[str, Any]:
    return {"id": str(pool.id), "name": pool.name, "site_id": str(pool.site_id),
            "meter_ids": pool.meter_ids, "period": pool.period,
            "rule": pool.rule, "allocated_periods": sorted(pool.allocations)}


def allocation_body(pool_id: str, period: str, allocation: dict) -> dict[str, Any]:
    return {"pool_id": pool_id, "period": period, "total": render.yuan(allocation["total_fen"]),
            "energy_kwh": render.kwh(allocation["energy_wh"]),
            "rule_version": allocation["rule_version"],
            "shares": [{"account_id": s["account_id"], "amount": render.yuan(s["amount_fen"])}
                       for s in allocation["shares"]]}


@router.post("/common-area-pools", status_code=201, summary="Define a common-area pool (公区)",
             **allow("property.write"))
def create_pool(request: Request, body: PoolIn, property_: Property,
                who: Annotated[dict, Depends(actor)],
                key: Annotated[str | None, Depends(idempotency_key)]) -> JSONResponse:
    require_site(request, body.site_id)
    for share in body.shares:
        require_account(request, share.account_id)
    shares = [{"account_id": str(parse_id(s.account_id, "account")),
               **({"weight": s.weight} if body.method == "ratio" else {})}
              for s in body.shares]
    pool = property_.carry_out_create_pool(CreatePool(
        name=body.name, site_id=parse_id(body.site_id, "site"),
        meter_ids=tuple(parse_id(m, "meter") for m in body.meter_ids), method=body.method,
        shares=tuple(shares), period=body.period, idempotency_key=key), who)
    return JSONResponse(pool_body(pool), status_code=201)


@router.get("/common-area-pools/{pool_id}", summary="A pool, its rule and allocated periods",
             **allow("property.read"))
def get_pool(pool_id: str, property_: Property) -> dict[str, Any]:
    return pool_body(property_.get_pool(parse_id(pool_id, "pool")))


class RuleIn(Strict):
    method: Literal["ratio", "area"]
    shares: Annotated[list[ShareIn], Field(min_length=1, max_length=10_000)]


@router.put("/common-area-pools/{pool_id}/rule",
            summary="A new version of the pool's sharing rule, for the periods not yet allocated",
             **allow("property.write"))
def change_rule(pool_id: str, body: RuleIn, property_: Property,
                who: Annotated[dict, Depends(actor)]) -> dict[str, Any]:
    shares = [{"account_id": str(parse_id(s.account_id, "account")),
               **({"weight": s.weight} if body.method == "ratio" else {})}
              for s in body.shares]
    pool = property_.carry_out_change_pool_rule(
        ChangePoolRule(parse_id(pool_id, "pool"), method=body.method, shares=tuple(shares)),
        who)
    return pool_body(pool)


@router.post("/common-area-pools/{pool_id}/allocations", status_code=201,
             summary="Allocate a period's cost among the shops (the same period again "
                     "returns the same allocation)",
             **allow("property.write"))
def allocate(pool_id: str, body: AllocationIn, property_: Property, catch_up: ReadModels,
             who: Annotated[dict, Depends(actor)]) -> JSONResponse:
    catch_up()  # the period's consumption must be in the read model
    try:
        allocation = property_.carry_out_allocate_pool(
            AllocatePool(parse_id(pool_id, "pool"), body.period), who)
    except UnpricedEnergy as error:
        return problem(409, error.code, "Unpriced energy", error.detail, unpriced=[
            {"meter_id": str(meter.id), "meter_no": meter.meter_no,
             "unpriced_kwh": render.kwh(wh)} for meter, wh in error.meters])
    catch_up()
    return JSONResponse(allocation_body(pool_id, body.period, allocation), status_code=201)


@router.post("/property-fees/schedules", status_code=201,
             summary="Set an account's monthly property fee",
             **allow("property.write"))
def schedule(request: Request, body: ScheduleIn, property_: Property, catch_up: ReadModels,
             who: Annotated[dict, Depends(actor)]) -> JSONResponse:
    require_account(request, body.account_id)
    saved = property_.carry_out_set_fee_schedule(SetFeeSchedule(
        parse_id(body.account_id, "account"), monthly_fen=body.monthly_amount,
        per_m2_fen=body.per_m2, day_of_month=body.day_of_month), who)
    catch_up()
    return JSONResponse({"id": str(saved.id), "account_id": str(saved.account_id),
                         "monthly_amount": render.yuan(saved.monthly_fen),
                         "per_m2": render.yuan(saved.per_m2_fen),
                         "day_of_month": saved.day_of_month}, status_code=201)


@router.post("/property-fees/runs", status_code=201,
             summary="Deduct a month's property fees (the same month again changes nothing)",
             **allow("property.write", "global"))
def run(body: RunIn, property_: Property, catch_up: ReadModels,
        who: Annotated[dict, Depends(actor)]) -> JSONResponse:
    catch_up()
    results = property_.carry_out_property_fees(RunPropertyFees(body.month), who)
    catch_up()
    return JSONResponse({"month": body.month, "results": [
        {"account_id": r["account_id"], "deducted": render.yuan(r.get("deducted_fen", 0)),
         "arrears": r.get("arrears", False), "first_run": r.get("first_run", False),
         **({"error": r["error"]} if "error" in r else {})} for r in results]},
        status_code=201)



