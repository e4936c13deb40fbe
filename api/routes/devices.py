"""Device commands and meter state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from api import render
from api.auth import Me, allow
from api.problems import ApiProblem
from api.routes.access import pending_command
from api.routes.cutoff import router as cutoff_router
from api.deps import actor, idempotency_key, parse_id
from api.schemas import PositiveFen, Strict, _require_aware
from api.services import Access, Approvals, Cutoff, DeviceReads, Devices, Metering, \
    MeteringReads, ReadModels
from ledger.commands import IssueDeviceCommand, KeepPower

router = APIRouter(tags=["devices"])


class CommandIn(Strict):
    action: Literal["trip", "close", "keep_power", "release_keep_power", "restore_prepaid",
                    "sync_tariff", "sync_thresholds", "read_now"]
    reason: Annotated[str, Field(max_length=1000)] | None = None
    until: datetime | None = None
    alarm1: PositiveFen | None = None
    alarm2: PositiveFen | None = None
    overload_kw: Annotated[int, Field(ge=1, le=100_000)] | None = None

    _aware = field_validator("until")(lambda v: v if v is None else _require_aware(v))


@router.post("/meters/{meter_id}/commands", status_code=202,
             summary="Trip, close, keep power (保电), restore prepaid, sync, read now",
             **allow("devices.command"))
def command(meter_id: str, body: CommandIn, devices: Devices, metering: Metering,
            approvals: Approvals, access: Access, catch_up: ReadModels, me: Me,
            who: Annotated[dict, Depends(actor)],
            key: Annotated[str | None, Depends(idempotency_key)]) -> JSONResponse:
    thresholds = None
    if body.action == "sync_thresholds" and body.overload_kw is not None:
        thresholds = {"alarm1_fen": body.alarm1 or 0, "alarm2_fen": body.alarm2 or 0,
                      "overload_w": body.overload_kw * 1000}
    if body.action == "keep_power" and not body.reason:
        raise ApiProblem(422, "validation-error", "keep_power needs a reason")
    if body.action == "keep_power":
        if not me.can("devices.keep_power"):
            raise ApiProblem(403, "forbidden", "keep_power needs devices.keep_power")
        command_ = KeepPower(parse_id(meter_id, "meter"), reason=body.reason,
                             until=body.until, idempotency_key=key)
        if approvals.needs_second_person(command_):
            meter = metering.get_meter(command_.meter_id)
            until = body.until.isoformat() if body.until else None
            return pending_command(
                access, catch_up, command_, who=who,
                site_id=None if meter.site_id is None else str(meter.site_id),
                summary=f"keep power on meter {meter.meter_no} until "
                        f"{until or 'released'}: {body.reason}")
    issue = IssueDeviceCommand(parse_id(meter_id, "meter"), body.action, reason=body.reason,
                               until=body.until, thresholds=thresholds, idempotency_key=key)
    result = devices.carry_out_device_command(issue, who)
    catch_up()
    command_ = devices.get_command(parse_id(result["command_id"], "command"))
    return JSONResponse({"id": str(command_.id), "status": command_.status,
                         "action": command_.action}, status_code=202)


@router.get("/commands/{command_id}", summary="A device command and its history",
             **allow("meters.read"))
def get_command(command_id: str, devices: Devices) -> dict[str, Any]:
    the_id = parse_id(command_id, "command")
    command_ = devices.get_command(the_id)
    return {"id": str(command_.id), "meter_id": str(command_.meter_id),
            "meter_no": command_.meter_no, "action": command_.action,
            "reason": command_.reason, "cause": command_.cause, "status": command_.status,
            "attempts": command_.attempts, "last_error": command_.last_error,
            "next_attempt_at": render.iso(command_.next_attempt_at),
            "history": [render.event(e) for e in devices.command_history(the_id)]}


@router.get("/meters/{meter_id}/state", summary="Relay, keep-power, online, last reading",
             **allow("meters.read"))
def meter_state(meter_id: str, metering: Metering, metering_reads: MeteringReads,
                device_reads: DeviceReads, cutoff: Cutoff) -> dict[str, Any]:
    meter = metering.get_meter(parse_id(meter_id, "meter"))
    last = metering_reads.readings(str(meter.id), limit=1, from_=None, to=None,
                                   cursor=None, newest_first=True).items
    # The newest thing known about the relay: the last reading (a poll, read_now or
    # POST /readings) or a command's read-back from the meter, whichever was seen later.
    reported, seen_at, source, by_command = None, None, None, None
    if last and last[0]["relay"]:
        reported, seen_at, source = last[0]["relay"], last[0]["read_at"], "reading"
    back = meter.relay_seen
    if back is not None and (seen_at is None or back["at"] >= seen_at):
        reported, seen_at, source = back["relay"], back["at"], "command"
        by_command = str(back["command_id"])
    return {
        "meter_id": str(meter.id), "meter_no": meter.meter_no,
        "relay": reported or meter.desired_relay, "relay_reported": reported,
        "relay_seen_at": render.iso(seen_at), "relay_source": source,
        "relay_seen_by_command": by_command,
        "relay_wanted": meter.desired_relay, "relay_reason": meter.relay_reason,
        "relay_command_pending": str(meter.relay_pending) if meter.relay_pending else None,
        "keep_power": meter.keep_power, "keep_power_until": render.iso(meter.keep_power_until),
        "online": meter.online, "failed_polls": meter.failed_polls,
        "thresholds": render.in_yuan(meter.thresholds),
        "last_reading": render.reading_row(last[0], meter.kind) if last else None,
        "recent_commands": [{"id": c["id"], "action": c["action"], "status": c["status"],
                             "attempts": c["attempts"]}
                            for c in device_reads.commands_of_meter(str(meter.id))],
        # why the relay is as it is, and what is planned (docs/cutoff.md)
        "cutoff": cutoff.meter_cutoff_state(meter),
    }


router.include_router(cutoff_router)
