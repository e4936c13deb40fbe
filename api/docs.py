"""The API's documentation pages (Swagger UI at ``/docs``, ReDoc at ``/redoc``), served
with their scripts and styles from the ``fastapi-offline`` package installed with the
project: nothing is fetched from the internet, so the pages work on a mall network without
it. ``PREPAID_PUBLIC_DOCS=false`` leaves the pages and ``/openapi.json`` out.

Each page carries its own Content-Security-Policy: scripts only from this server plus the
page's one inline script, pinned by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.auth import allow
from domain.access import PUBLIC

ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
OPENAPI_URL = "/openapi.json"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)

# Swagger UI and ReDoc set styles inline. ReDoc parses the document in a worker started
# from a blob: URL, and its bundled JSON-schema validator (ajv) compiles validators with
# ``new Function``, hence 'unsafe-eval' on that page only.
SWAGGER_POLICY = ("default-src 'none'; script-src 'self' {hashes}; "
                  "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                  "connect-src 'self'; font-src 'self' data:; base-uri 'none'; "
                  "form-action 'self'; frame-ancestors 'none'")
REDOC_POLICY = ("default-src 'none'; script-src 'self' 'unsafe-eval' {hashes}; "
                "worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _with_policy(page: HTMLResponse, policy: str) -> HTMLResponse:
    html = page.body.decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(html))
    return HTMLResponse(html, headers={
        "Content-Security-Policy": " ".join(policy.format(hashes=hashes).split()).replace(
            " ;", ";")})


def install(app: FastAPI) -> None:
    """Serve the pages and their assets (the app is made with its own docs switched off)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False, **allow(PUBLIC))
    async def swagger_ui() -> HTMLResponse:
        return _with_policy(get_swagger_ui_html(
            openapi_url=OPENAPI_URL, title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css", swagger_favicon_url=favicon,
            swagger_ui_parameters={"validatorUrl": None}), SWAGGER_POLICY)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False, **allow(PUBLIC))
    async def swagger_ui_redirect() -> HTMLResponse:
        return _with_policy(get_swagger_ui_oauth2_redirect_html(), SWAGGER_POLICY)

    @app.get("/redoc", include_in_schema=False, **allow(PUBLIC))
    async def redoc() -> HTMLResponse:
        return _with_policy(get_redoc_html(
            openapi_url=OPENAPI_URL, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js", redoc_favicon_url=favicon,
            with_google_fonts=False), REDOC_POLICY)
