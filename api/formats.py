"""Reports answer JSON by default, or CSV / XLSX with ``format=`` or the Accept header."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from adapters.sheets import CSV_TYPE, XLSX_TYPE, write_sheet
from api.problems import ApiProblem

FORMATS = ("json", "csv", "xlsx")
ZONE = ZoneInfo("Asia/Shanghai")  # reports use the default site time zone


def report_format(request: Request, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ApiProblem(422, "validation-error", "format must be json, csv or xlsx")
        return format
    accept = request.headers.get("accept", "")
    if XLSX_TYPE in accept:
        return "xlsx"
    if CSV_TYPE in accept:
        return "csv"
    return "json"


def report_response(name: str, columns: Sequence[str], rows: list[dict[str, Any]], fmt: str,
                    meta: dict[str, Any]) -> Response:
    if fmt == "json":
        return JSONResponse({**meta, "items": rows})
    data = write_sheet(columns, rows, fmt, title=name)
    return Response(data, media_type=CSV_TYPE if fmt == "csv" else XLSX_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})
