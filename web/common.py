"""What the console and the tenant page share: templates, languages, the session cookie,
CSRF tokens, the permission checks of the API, and error pages."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.auth import Authenticator
from api.auth import Guard
from api.problems import STATUS_OF, ApiProblem
from domain import errors
from domain.access import Principal
from domain.money import fen_to_yuan_text
from web.i18n import pick_language, translator

TEMPLATES = Path(__file__).parent / "templates"
LANG_COOKIE = "prepaid_lang"
DEFAULT_ZONE = "Asia/Shanghai"
# Pages keep the rendered form (and its idempotency key) when the browser goes back:
# "no-cache" makes a normal visit ask again; only "no-store" would make Back re-render.
PAGE_CACHE = "private, no-cache"

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                  trim_blocks=True, lstrip_blocks=True)


def yuan(fen: int | None) -> str:
    return "" if fen is None else fen_to_yuan_text(int(fen))


def local_time(value: datetime | str | None, zone: str | None = None,
               seconds: bool = False) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M")
    local = value.astimezone(ZoneInfo(zone or DEFAULT_ZONE))
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


env.filters["yuan"] = yuan
env.filters["local"] = local_time


class Refused(Exception):
    """A page answer other than the page: an error page, or a redirect to log in."""

    def __init__(self, status: int, message: str, login: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.login = status, message, login


def language(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE),
                         request.headers.get("accept-language"))


def secure(request: Request) -> bool:
    """Cookies are marked Secure when the page is served over TLS (directly or behind a
    proxy that says so)."""
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def signing_key(auth: Authenticator) -> bytes:
    return auth.signing_key().encode()


def mac(auth: Authenticator, purpose: str, value: str) -> str:
    """Signed with the key the login tokens are signed with."""
    return hmac.new(signing_key(auth), f"{purpose}|{value}".encode(),
                    hashlib.sha256).hexdigest()


def csrf_token(auth: Authenticator, session: str) -> str:
    """Tied to the session cookie: a page of another origin can neither read nor make it."""
    return mac(auth, "csrf", session)


def check_csrf(auth: Authenticator, session: str | None, form) -> None:
    given = str(form.get("csrf", ""))
    if not session or not hmac.compare_digest(given, csrf_token(auth, session)):
        raise Refused(403, "The form has expired; please try again")


def form_key(form) -> str:
    """The idempotency key rendered into a money form, as the API checks it."""
    from api.deps import IDEMPOTENCY_KEY

    key = str(form.get("idempotency_key", ""))
    if not IDEMPOTENCY_KEY.match(key):
        raise Refused(400, "The form has expired; please try again")
    return key


async def guard(request: Request, who: Principal, permission: str,
                scope: str = "path") -> None:
    """The API's own check for ``permission`` (and the ids in the path), on a page."""
    request.state.principal = who
    try:
        await Guard(permission, scope)(request, who)
    except ApiProblem as problem:
        raise Refused(problem.status, "Forbidden" if problem.status == 403 else "Not found")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    body = env.get_template(template).render(
        request=request, t=translator(lang), lang=lang, new_key=lambda: str(uuid.uuid4()),
        path=request.url.path, **context)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": PAGE_CACHE})


def set_language(request: Request, to: str, back: str) -> RedirectResponse:
    if not back.startswith("/") or back.startswith("//") or "\\" in back:
        back = "/console/"
    response = RedirectResponse(back, status_code=303)
    if to in ("en", "zh"):
        response.set_cookie(LANG_COOKIE, to, max_age=365 * 86400, samesite="lax",
                            httponly=True, secure=secure(request))
    return response


def status_of(error: errors.DomainError) -> int:
    return next((s for cls, s in STATUS_OF.items() if isinstance(error, cls)), 422)


def install_errors(app: FastAPI, error_template: str, login_path: str) -> None:
    @app.exception_handler(Refused)
    async def _refused(request: Request, error: Refused) -> Response:
        if error.login:
            return RedirectResponse(f"{login_path}?next={request.url.path}", status_code=303)
        return render(request, error_template, status=error.status, message=error.message)

    @app.exception_handler(errors.DomainError)
    async def _domain(request: Request, error: errors.DomainError) -> Response:
        return render(request, error_template, status=status_of(error), message=error.detail)

    @app.exception_handler(ApiProblem)
    async def _api(request: Request, error: ApiProblem) -> Response:
        return render(request, error_template, status=error.status, message=error.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        return render(request, error_template, status=error.status_code,
                      message="Not found" if error.status_code == 404 else str(error.detail))


async def threaded(fn, *args, **kwargs):
    return await run_in_threadpool(fn, *args, **kwargs)


def body_of(response: Response) -> Any:
    import json

    return json.loads(response.body)
