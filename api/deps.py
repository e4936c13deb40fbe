"""Request-scoped helpers: the platform, the acting party, the idempotency key, paging.

The dependencies are ``async def``: they only look at the request, and FastAPI runs a
plain ``def`` dependency in a worker thread, a hop that cost more than the rest of a
small request.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Header, Query, Request

from bootstrap import Platform
from api.problems import ApiProblem

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


async def platform(request: Request) -> Platform:
    return request.app.state.platform


async def actor(request: Request) -> dict:
    """Who acts: the authenticated caller (set by the route's guard), with the request id."""
    return current_actor(request)


def current_actor(request: Request) -> dict:
    who = getattr(request.state, "principal", None)
    if who is None:
        raise ApiProblem(401, "not-authenticated", "log in or send an API key")
    return who.actor(request.state.request_id)


def _checked_key(key: str | None) -> str | None:
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ApiProblem(400, "bad-idempotency-key",
                         "Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


async def idempotency_key(
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
) -> str | None:
    return _checked_key(idempotency_key)


async def required_idempotency_key(
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
) -> str:
    if idempotency_key is None:
        raise ApiProblem(400, "missing-idempotency-key",
                         "money operations need an Idempotency-Key header")
    return _checked_key(idempotency_key) or ""


def parse_id(value: str, what: str) -> uuid.UUID:
    """Ids in paths: a malformed one names nothing, so it is a 404 like an unknown one."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiProblem(404, f"{what}-not-found", f"{what} {value} does not exist") from None


async def page_limit(request: Request, limit: Annotated[int | None, Query(ge=1)] = None) -> int:
    settings = request.app.state.platform.settings
    if limit is None:
        return settings.page_size_default
    if limit > settings.page_size_max:
        raise ApiProblem(422, "limit-too-large",
                         f"limit may be at most {settings.page_size_max}")
    return limit


def aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ApiProblem(422, "validation-error", f"{name} needs a time zone offset (RFC 3339)")
    return value
