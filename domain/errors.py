"""Typed domain errors: the expected failures a caller can act on.

Entry points map each one to an HTTP status (see ``api/problems.py``). Impossible states
are assertions, not errors.
"""


class DomainError(Exception):
    """Base of every expected failure; ``code`` names it in problem responses."""

    code = "domain-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidAmount(DomainError):
    code = "invalid-amount"


class AmountTooLarge(DomainError):
    code = "amount-too-large"


class InvalidRequest(DomainError):
    code = "invalid-request"


class NotFound(DomainError):
    code = "not-found"


class AccountNotFound(NotFound):
    code = "account-not-found"


class TransactionNotFound(NotFound):
    code = "transaction-not-found"


class MeterNotFound(NotFound):
    code = "meter-not-found"


class TariffNotFound(NotFound):
    code = "tariff-not-found"


class SiteNotFound(NotFound):
    code = "site-not-found"


class GatewayNotFound(NotFound):
    code = "gateway-not-found"


class AlreadyExists(DomainError):
    code = "already-exists"


class AccountClosed(DomainError):
    code = "account-closed"


class InsufficientBalance(DomainError):
    code = "insufficient-balance"


class AlreadyReversed(DomainError):
    code = "already-reversed"


class NotReversible(DomainError):
    code = "not-reversible"


class AccountInArrears(DomainError):
    code = "account-in-arrears"


class IdempotencyConflict(DomainError):
    """The idempotency key was used before with a different request."""

    code = "idempotency-conflict"


class ConcurrencyLimitExceeded(DomainError):
    """Too many concurrent writers on one aggregate; the caller may retry."""

    code = "concurrency-limit"


class Conflict(DomainError):
    """The request clashes with the current state (already decided, same person, ...)."""

    code = "conflict"
