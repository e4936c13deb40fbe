"""Serving over HTTP with deadlines for slow clients.

uvicorn closes idle keep-alive connections but has no deadline for a request that is
*being* sent: a client that sends its headers a byte a second holds a connection (and its
memory) for ever. Here the request headers must all arrive within
``PREPAID_REQUEST_HEADER_TIMEOUT_S`` of the connection opening (or of the request's first
byte on a kept-alive connection), and the body within ``PREPAID_REQUEST_BODY_TIMEOUT_S`` of
the headers; otherwise the client is answered 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
             b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
TIMED_OUT_BODY = (b'{"type":"/problems/request-timeout","title":"Request timeout",'
                  b'"status":408,"detail":"the request %s did not arrive in time"}')


class TimedHttpToolsProtocol(HttpToolsProtocol):
    # None: read from the settings (each worker process reads its own environment).
    header_timeout_s: float | None = None
    body_timeout_s: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(self._header_timeout(), "headers")

    def _header_timeout(self) -> float:
        if TimedHttpToolsProtocol.header_timeout_s is None:
            _load_timeouts()
        return TimedHttpToolsProtocol.header_timeout_s  # type: ignore[return-value]

    def _body_timeout(self) -> float:
        if TimedHttpToolsProtocol.body_timeout_s is None:
            _load_timeouts()
        return TimedHttpToolsProtocol.body_timeout_s  # type: ignore[return-value]

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info("closing a connection from %s: its request %s did not arrive in time",
                 self.client, what)
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            body = TIMED_OUT_BODY % what.encode()
            self.transport.write(TIMED_OUT % (len(body), body))
        if cycle is not None:
            cycle.keep_alive = False
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm(self._header_timeout(), "headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self._body_timeout(), "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _load_timeouts() -> None:
    from ledger.config import Settings

    settings = Settings()
    TimedHttpToolsProtocol.header_timeout_s = settings.request_header_timeout_s
    TimedHttpToolsProtocol.body_timeout_s = settings.request_body_timeout_s


def run(app, *, settings, host: str, port: int, **options) -> None:
    """``uvicorn.run`` with the deadlines above (``app`` may be an import string)."""
    import uvicorn

    TimedHttpToolsProtocol.header_timeout_s = settings.request_header_timeout_s
    TimedHttpToolsProtocol.body_timeout_s = settings.request_body_timeout_s
    uvicorn.run(app, host=host, port=port, http=TimedHttpToolsProtocol, **options)
