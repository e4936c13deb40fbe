"""The one shape of an error answer: an RFC 9457 problem document."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"/problems/{code}", "title": title, "status": status, "detail": detail,
            **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)
