"""How requests whose body is not what a JSON endpoint reads are answered.

FastAPI reads a body as JSON only when it says ``Content-Type: application/json`` (or
``+json``); anything else reaches validation as raw bytes and would be reported as an
invalid object with no field name. Those become a 415 that says what to send; a JSON body
that is not UTF-8 is a 400 that says so; every other validation error names its field,
``body`` for the body as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import Message
from typing import Any

from fastapi import Request
from fastapi.params import Form
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.problem_json import problem


def is_json(content_type: str) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json"))


def _reads_a_form(request: Request) -> bool:
    route = request.scope.get("route")
    field = getattr(route, "body_field", None) if isinstance(route, APIRoute) else None
    return field is not None and isinstance(field.field_info, Form)


def unsupported_body(request: Request, items: Sequence[dict[str, Any]]) -> JSONResponse | None:
    """A 415 when a JSON endpoint was sent a body of another type, else None."""
    content_type = request.headers.get("content-type", "")
    if is_json(content_type) or _reads_a_form(request):
        return None
    raw = any(tuple(item.get("loc", ()))[:1] == ("body",)
              and isinstance(item.get("input"), (bytes, bytearray)) and item["input"]
              for item in items)
    if not raw:
        return None
    sent = f"Content-Type: {content_type}" if content_type else "no Content-Type"
    return problem(415, "unsupported-media-type", "Unsupported media type",
                   f"this endpoint reads a JSON object: send the body as UTF-8 JSON with "
                   f"Content-Type: application/json (the request had {sent})")


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "amount")`` -> ``amount``; the body itself -> ``body``."""
    return ".".join(str(part) for part in loc if part != "body") or "body"


def undecodable_body(error: Exception) -> JSONResponse | None:
    """A 400 for a JSON body that is not UTF-8 (FastAPI's own answer says only that the
    body could not be parsed)."""
    if isinstance(error.__cause__, UnicodeDecodeError):
        return problem(400, "malformed-json", "Malformed JSON",
                       "the request body is not valid UTF-8; send JSON encoded as UTF-8")
    return None
