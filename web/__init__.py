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
    """Mount the console, the tenant page and their static files on the API's app.

    The pages are handed their services and queries as the API's routes are, by the
    dependencies of ``api/services.py``; the mounted apps share the API app's state, on
    which those find the platform.
    """
    from web.console import console_app
    from web.tenant import tenant_app

    app.mount("/console", console_app(app.state), name="console")
    app.mount("/t", tenant_app(app.state), name="tenant")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False, **allow(PUBLIC))
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)
