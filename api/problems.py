"""RFC 9457 problem responses, and the map from typed domain errors to HTTP statuses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import bodies
from api.problem_json import PROBLEM_JSON, problem
from domain import errors

__all__ = ["PROBLEM_JSON", "STATUS_OF", "ApiProblem", "install", "problem"]

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.DomainError], int] = {
    errors.InvalidAmount: 422,
    errors.AmountTooLarge: 422,
    errors.InvalidRequest: 422,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.AccountClosed: 409,
    errors.InsufficientBalance: 409,
    errors.AlreadyReversed: 409,
    errors.NotReversible: 409,
    errors.AccountInArrears: 409,
    errors.IdempotencyConflict: 409,
    errors.ConcurrencyLimitExceeded: 503,
    errors.Conflict: 409,
}


def _payment_statuses() -> None:
    from domain.payment import PaymentMismatch
    from ledger.payments import ChannelNotConfigured, ProviderUnavailable

    STATUS_OF.update({ChannelNotConfigured: 503, ProviderUnavailable: 502,
                      PaymentMismatch: 409})


_payment_statuses()


class ApiProblem(Exception):
    """A problem detected in the API layer itself (missing header, bad cursor, ...)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _title(code: str) -> str:
    return code.replace("-", " ").capitalize()


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.DomainError)
    async def _domain(_: Request, error: errors.DomainError) -> JSONResponse:
        status = next((s for cls, s in STATUS_OF.items() if isinstance(error, cls)), 422)
        return problem(status, error.code, _title(error.code), error.detail)

    @app.exception_handler(ApiProblem)
    async def _api(_: Request, error: ApiProblem) -> JSONResponse:
        return problem(error.status, error.code, _title(error.code), error.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        items = error.errors()
        if (unsupported := bodies.unsupported_body(request, items)) is not None:
            return unsupported
        if any(item.get("type") == "json_invalid" for item in items):
            return problem(400, "malformed-json", "Malformed JSON",
                           "the request body is not valid JSON")
        fields = [{"field": bodies.field_name(item.get("loc", ())),
                   "message": item.get("msg", "")} for item in items]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return problem(422, "validation-error", "Invalid request", detail, errors=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if (undecodable := bodies.undecodable_body(error)) is not None:
            return undecodable
        code = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        return problem(error.status_code, code, _title(code), str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(500, "internal-error", "Internal error",
                       "the request failed unexpectedly; a write may or may not have been "
                       "stored: repeat it with the same Idempotency-Key")
