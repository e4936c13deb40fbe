"""Pages of rows and the opaque cursors that continue them, for every feature's lists."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode()


# Positions and ids are 64-bit signed integers in both databases.
CURSOR_MAX = 2**63 - 1
CURSOR_MAX_CHARS = 200


def decode_cursor(cursor: str | None) -> int:
    """Opaque cursors; a malformed one raises ``ValueError`` (the API answers 400).

    Only what ``encode_cursor`` makes is accepted: a JSON object with the one key
    ``after``, a whole number (not a boolean, float or string) from 0 to 2**63 - 1.
    """
    if not cursor:
        return 0
    if len(cursor) > CURSOR_MAX_CHARS:
        raise ValueError("malformed cursor: too long")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except Exception as error:
        raise ValueError("malformed cursor: not one this API gave out") from error
    if not isinstance(data, dict) or set(data) != {"after"}:
        raise ValueError("malformed cursor: not one this API gave out")
    value = data["after"]
    if type(value) is not int or not 0 <= value <= CURSOR_MAX:
        raise ValueError("malformed cursor: not one this API gave out")
    return value


def page_of(rows: list[dict[str, Any]], limit: int, key: str) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1][key]) if more and rows else None)
