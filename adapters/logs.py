"""Logging: readable text by default, one JSON object per line with
``PREPAID_LOG_FORMAT=json``.

Each line carries the request it was written for (request id, actor, route, status,
duration) from context variables set by the request middleware, so that a line written
deep inside a command can be traced back to the request that caused it. Secrets never
reach a line: the known secret-bearing fields are dropped and anything that looks like a
bearer token, a password or key assignment, a database URL's password or a full WeChat
openid is masked in the message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
actor: ContextVar[str | None] = ContextVar("actor", default=None)
route: ContextVar[str | None] = ContextVar("route", default=None)

ACCESS_LOGGER = "prepaid.access"

_MASKS = [
    # Authorization: Bearer xxx / Basic xxx
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # key=value or "key": "value" where the key names a secret
    (re.compile(r"(?i)([\"']?\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|"
                r"master[_-]?key|private[_-]?key|sign(?:ature)?)\b[\"']?"
                r"\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}]+)"), r"\1***"),
    # scheme://user:password@host
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1***@"),
    # JWTs anywhere
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), "***"),
    # PEM blocks
    (re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S), "***"),
    # WeChat openids (o + 27 chars): keep the first and last four
    (re.compile(r"\b(o[A-Za-z0-9_-]{3})[A-Za-z0-9_-]{20}([A-Za-z0-9_-]{4})\b"), r"\1…\2"),
    # 24-byte 3DES master keys and 32-byte keys written as hex
    (re.compile(r"\b[0-9a-fA-F]{48}\b|\b[0-9a-fA-F]{64}\b"), "***"),
]


# Whatever any mask needs to see; most lines have none of it and skip the masks.
_TRIGGERS = re.compile(r"(?i)bearer|basic|passw|secret|token|key|sign|://|eyJ|-----BEGIN|"
                       r"[A-Za-z0-9_-]{28}")


def redact(text: str) -> str:
    if not _TRIGGERS.search(text):
        return text
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _message(record: logging.LogRecord) -> str:
    # Access lines are made of the method, the route *template* and numbers: nothing to
    # mask, and they are the most frequent line by far (the masks cost tens of µs).
    message = record.getMessage()
    return message if record.name == ACCESS_LOGGER else redact(message)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        for name, var in (("request_id", request_id), ("actor", actor), ("route", route)):
            value = getattr(record, name, None) or var.get()
            if value:
                out[name] = value
        for name in ("method", "status", "duration_ms"):
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        record.message = _message(record)
        return super().formatMessage(record)

    def formatException(self, exc_info) -> str:  # noqa: N802
        return redact(super().formatException(exc_info))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None) or request_id.get()
        return f"{line} [request {rid}]" if rid and record.name != ACCESS_LOGGER else line


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of writing."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(log_format: str = "text", level: int = logging.INFO,
                      stream=None) -> None:
    """Install the platform's handler on the root logger (replacing one installed
    before), and route uvicorn's loggers through it."""
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler._prepaid = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_prepaid", False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The platform writes its own access lines (with route, actor, duration).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def uvicorn_log_config(log_format: str) -> dict:
    """uvicorn's ``log_config`` so that its worker processes log the same way."""
    formatter = "adapters.logs.JsonFormatter" if log_format == "json" else \
        "adapters.logs.TextFormatter"
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {"uvicorn": {"handlers": [], "propagate": True},
                    "uvicorn.error": {"handlers": [], "propagate": True},
                    "uvicorn.access": {"handlers": [], "propagate": True,
                                       "level": "WARNING"}},
    }
