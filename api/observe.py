"""Per request: the latency histogram (route template, status) and one access log line
with the request id, actor, route, status and duration."""

from __future__ import annotations

import logging
import time

from adapters import logs
from adapters.metrics import REQUEST_SECONDS

API_PREFIX = "/api/v1"
access = logging.getLogger(logs.ACCESS_LOGGER)
# Not timed or logged: probes and scrapes would drown everything else.
QUIET = ("/metrics", "/health", "/health/live", "/health/ready")


class Observe:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        token = logs.request_id.set(state.get("request_id"))
        status = {"code": 500}

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if route is not None and scope["path"].startswith(API_PREFIX + "/") and \
                    not template.startswith(API_PREFIX):
                template = API_PREFIX + template  # routes of included routers
            REQUEST_SECONDS.labels(scope["method"], template, str(status["code"])) \
                .observe(seconds)
            if scope["path"] not in QUIET:
                principal = state.get("principal")
                who = f"{principal.kind}:{principal.id}" if principal is not None else None
                access.info("%s %s %s %.1f ms", scope["method"], template, status["code"],
                            seconds * 1000,
                            extra={"request_id": state.get("request_id"), "actor": who,
                                   "route": template, "method": scope["method"],
                                   "status": status["code"],
                                   "duration_ms": round(seconds * 1000, 2)})
            logs.request_id.reset(token)
