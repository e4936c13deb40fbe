"""Alerts: balance warnings (alarm1, alarm2, arrears) and whether they were sent."""

from __future__ import annotations

from typing import Annotated, Any

from typing import Literal

from fastapi import APIRouter, Depends, Query

from api.deps import actor, parse_id
from api.schemas import PositiveFen, Strict

from api import render
from api.auth import Me, allow
from api.deps import page_limit
from api.services import AlertReads, Alerts, ReadModels
from ledger.commands import SetAlertThresholds

router = APIRouter(tags=["alerts"])


@router.get("/alerts", summary="Alert history, newest first",
             **allow("alerts.read", "list"))
def list_alerts(alert_reads: AlertReads, catch_up: ReadModels, me: Me,
                limit: Annotated[int, Depends(page_limit)],
                level: Annotated[str | None, Query(pattern="^(alarm1|alarm2|arrears)$")] = None,
                account_id: str | None = None) -> dict[str, Any]:
    catch_up()
    rows = alert_reads.alerts(level=level, account_id=account_id, limit=limit,
                                  account_ids=me.account_ids, site_ids=me.site_ids)
    return {"items": [{"id": r["key"], "level": r["level"], "account_id": r["account_id"],
                       "wallet": r["wallet"], "balance": render.yuan(r["balance_fen"]),
                       "threshold": render.yuan(r["threshold_fen"]),
                       "days_left": r["days_left"], "raised_at": render.iso(r["raised_at"]),
                       "notified": r["sent"] > 0} for r in rows]}


class ThresholdsIn(Strict):
    wallet: Literal["electricity", "water", "property_fee"] = "electricity"
    alarm1: PositiveFen
    alarm2: PositiveFen


@router.put("/accounts/{account_id}/alert-thresholds",
            summary="This account's own alarm1 and alarm2 levels for a wallet",
             **allow("accounts.open"))
def set_thresholds(account_id: str, body: ThresholdsIn,
                   alerts: Alerts, who: Annotated[dict, Depends(actor)]) -> dict[str, Any]:
    levels = alerts.carry_out_set_alert_thresholds(SetAlertThresholds(
        parse_id(account_id, "account"), body.wallet, body.alarm1, body.alarm2), who)
    return {"account_id": account_id, "wallet": body.wallet,
            "alarm1": render.yuan(levels.thresholds["alarm1"]),
            "alarm2": render.yuan(levels.thresholds["alarm2"])}
