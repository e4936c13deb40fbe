"""The staff console (``/console``) and the tenant phone page (``/t/``).

Server-rendered pages over the same route functions and queries as the REST API, with the
same permission checks. Everything a page loads (style, script, charts, QR codes) comes
from the platform itself; nothing is fetched from another host.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.auth import allow
from domain.access import PUBLIC

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the console, the tenant page and their static files on the API's app."""
    from web.console import console_app
    from web.tenant import tenant_app

    platform = app.state.platform
    app.mount("/console", console_app(platform), name="console")
    app.mount("/t", tenant_app(platform), name="tenant")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False, **allow(PUBLIC))
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)
