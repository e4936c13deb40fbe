"""People and integrations that use the platform, and the second-person approvals.

Operators (staff and tenants) and API keys are aggregates: who was given which roles and
sites, by whom and when, is history like everything else. Only hashes of passwords and
keys are ever stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.access import Role
from domain.errors import Conflict, InvalidRequest, NotFound

OPERATOR_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/operator")
APPROVAL_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/approval")


class OperatorNotFound(NotFound):
    code = "operator-not-found"


class ApiKeyNotFound(NotFound):
    code = "api-key-not-found"


class ApprovalNotFound(NotFound):
    code = "approval-not-found"


def operator_id_for(username: str) -> UUID:
    return uuid5(OPERATOR_NAMESPACE, username.casefold())


def approval_id_for(key: str) -> UUID:
    return uuid5(APPROVAL_NAMESPACE, key)


def check_grant(roles: list[str], site_ids: list[str], account_ids: list[str]) -> None:
    if not roles:
        raise InvalidRequest("an operator needs at least one role")
    for role in roles:
        if role not in Role.__members__.values():
            raise InvalidRequest(f"unknown role {role!r}")
    if Role.TENANT in roles:
        if len(roles) > 1:
            raise InvalidRequest("a tenant login has the tenant role only")
        if not account_ids:
            raise InvalidRequest("a tenant login needs account_ids")
    elif account_ids:
        raise InvalidRequest("account_ids are for tenant logins only")


class Operator(Aggregate):
    @event("Registered")
    def __init__(self, username: str, password_hash: str, roles: list[str],
                 site_ids: list[str], account_ids: list[str], actor: dict) -> None:
        self.username = username
        self.password_hash = password_hash
        self.roles = list(roles)
        self.site_ids = list(site_ids)
        self.account_ids = list(account_ids)
        self.active = True
        self.created_by = actor

    @classmethod
    def register(cls, *, username: str, password_hash: str, roles: list[str],
                 site_ids: list[str], account_ids: list[str], actor: dict) -> Operator:
        check_grant(roles, site_ids, account_ids)
        return cls._create(cls.Registered, id=operator_id_for(username), username=username,
                           password_hash=password_hash, roles=roles, site_ids=site_ids,
                           account_ids=account_ids, actor=actor)

    def change_grant(self, roles: list[str], site_ids: list[str], account_ids: list[str],
                     actor: dict) -> None:
        check_grant(roles, site_ids, account_ids)
        self._grant_changed(roles=roles, site_ids=site_ids, account_ids=account_ids,
                            actor=actor)

    @event("GrantChanged")
    def _grant_changed(self, roles: list[str], site_ids: list[str], account_ids: list[str],
                       actor: dict) -> None:
        self.roles = list(roles)
        self.site_ids = list(site_ids)
        self.account_ids = list(account_ids)

    @event("PasswordChanged")
    def change_password(self, password_hash: str, actor: dict) -> None:
        self.password_hash = password_hash

    def deactivate(self, actor: dict) -> None:
        if self.active:
            self._deactivated(actor=actor)

    @event("Deactivated")
    def _deactivated(self, actor: dict) -> None:
        self.active = False

    def activate(self, actor: dict) -> None:
        if not self.active:
            self._activated(actor=actor)

    @event("Activated")
    def _activated(self, actor: dict) -> None:
        self.active = True


class ApiKey(Aggregate):
    """A key for an integration. The secret is shown once; only its SHA-256 is kept
    (the secret is 256 random bits, so a slow hash adds nothing)."""

    @event("Issued")
    def __init__(self, name: str, secret_hash: str, roles: list[str], site_ids: list[str],
                 expires_at: datetime | None, actor: dict) -> None:
        self.name = name
        self.secret_hash = secret_hash
        self.roles = list(roles)
        self.site_ids = list(site_ids)
        self.expires_at = expires_at
        self.revoked = False
        self.issued_by = actor

    def revoke(self, actor: dict) -> None:
        if not self.revoked:
            self._revoked(actor=actor)

    @event("Revoked")
    def _revoked(self, actor: dict) -> None:
        self.revoked = True


class Approval(Aggregate):
    """Maker-checker: one person asks, a different one approves or rejects."""

    @event("Requested")
    def __init__(self, action: str, target: str, params: dict[str, Any],
                 idempotency_key: str, site_id: str | None, summary: str,
                 actor: dict) -> None:
        self.action = action
        self.target = target
        self.params = params
        self.idempotency_key = idempotency_key
        self.site_id = site_id
        self.summary = summary
        self.requested_by = actor
        self.status = "pending"
        self.decided_by: dict | None = None
        self.result: dict | None = None
        self.note: str | None = None

    def _check_decider(self, actor: dict) -> None:
        if self.status != "pending":
            raise Conflict(f"the approval is already {self.status}")
        if (actor.get("kind"), actor.get("id")) == (self.requested_by.get("kind"),
                                                    self.requested_by.get("id")):
            raise Conflict("the person who asked cannot approve or reject their own request")

    def approve(self, result: dict, note: str | None, actor: dict) -> None:
        self._check_decider(actor)
        self._approved(result=result, note=note, actor=actor)

    @event("Approved")
    def _approved(self, result: dict, note: str | None, actor: dict) -> None:
        self.status = "approved"
        self.decided_by = actor
        self.result = result
        self.note = note

    def reject(self, note: str | None, actor: dict) -> None:
        self._check_decider(actor)
        self._rejected(note=note, actor=actor)

    @event("Rejected")
    def _rejected(self, note: str | None, actor: dict) -> None:
        self.status = "rejected"
        self.decided_by = actor
        self.note = note
