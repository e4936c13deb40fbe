"""Operators, API keys and second-person approvals.

Hashing passwords and keys is the caller's business (``adapters/auth.py``); the ledger
only ever sees and stores hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.access import Role
from domain.errors import AlreadyExists, InvalidRequest, NotFound
from domain.operator import ApiKey, Approval, Operator, approval_id_for, operator_id_for
from ledger.commands import Command, Handler, command_from_approval
from ledger.core.store import EventStore
from ledger.outcome import Outcome, position_of


class OperatorNotFound(NotFound):
    code = "operator-not-found"


class ApiKeyNotFound(NotFound):
    code = "api-key-not-found"


class ApprovalNotFound(NotFound):
    code = "approval-not-found"


# Carries out a command as the given actor: what a granted approval's command is handed to.
Execute = Callable[[Command, dict], Outcome]


class AccessService:
    """Operators, API keys and approvals, over the event store.

    ``execute`` carries out an approved request's command (the ledger's own ``execute``):
    access decides who may ask and who may grant, not how a command is done."""

    def __init__(self, store: EventStore, *, execute: Execute) -> None:
        self.store = store
        self.execute = execute

    # -- operators ---------------------------------------------------------------------

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {}

    def register_operator(self, *, username: str, password_hash: str,
                          roles: list[str], site_ids: list[str], account_ids: list[str],
                          actor: dict) -> Outcome:
        if self.store.find(operator_id_for(username), Operator) is not None:
            raise AlreadyExists(f"an operator named {username!r} exists")
        operator = Operator.register(username=username, password_hash=password_hash,
                                     roles=roles, site_ids=site_ids, account_ids=account_ids,
                                     actor=actor)
        try:
            recordings = self.store.save(operator)
        except IntegrityError:
            raise AlreadyExists(f"an operator named {username!r} exists") from None
        return Outcome({"id": str(operator.id)}, True, position_of(recordings))

    def get_operator(self, operator_id: UUID) -> Operator:
        operator = self.store.find(operator_id, Operator)
        if not isinstance(operator, Operator):
            raise OperatorNotFound(f"operator {operator_id} does not exist")
        return operator

    def find_operator(self, username: str) -> Operator | None:
        operator = self.store.find(operator_id_for(username), Operator)
        return operator if isinstance(operator, Operator) else None

    def change_operator(self, operator_id: UUID, *, actor: dict,
                        roles: list[str] | None = None, site_ids: list[str] | None = None,
                        account_ids: list[str] | None = None, active: bool | None = None,
                        password_hash: str | None = None) -> Outcome:
        operator = self.get_operator(operator_id)
        if roles is not None or site_ids is not None or account_ids is not None:
            new = (roles if roles is not None else operator.roles,
                   site_ids if site_ids is not None else operator.site_ids,
                   account_ids if account_ids is not None else operator.account_ids)
            if new != (operator.roles, operator.site_ids, operator.account_ids):
                operator.change_grant(*new, actor=actor)
        if password_hash is not None:
            operator.change_password(password_hash, actor=actor)
        if active is True:
            operator.activate(actor=actor)
        elif active is False:
            operator.deactivate(actor=actor)
        recordings = self.store.save(operator)
        return Outcome({"id": str(operator.id)}, bool(recordings), position_of(recordings))

    # -- API keys ----------------------------------------------------------------------

    def issue_api_key(self, *, key_id: UUID, name: str, secret_hash: str,
                      roles: list[str],
                      site_ids: list[str], expires_at: datetime | None,
                      actor: dict) -> Outcome:
        if not roles:
            raise InvalidRequest("an API key needs at least one role")
        for role in roles:
            if role not in Role.__members__.values() or role == Role.TENANT:
                raise InvalidRequest(f"an API key cannot have the role {role!r}")
        key = ApiKey._create(ApiKey.Issued, id=key_id, name=name, secret_hash=secret_hash,
                             roles=roles, site_ids=site_ids, expires_at=expires_at,
                             actor=actor)
        recordings = self.store.save(key)
        return Outcome({"id": str(key.id)}, True, position_of(recordings))

    def get_api_key(self, key_id: UUID) -> ApiKey:
        key = self.store.find(key_id, ApiKey)
        if not isinstance(key, ApiKey):
            raise ApiKeyNotFound(f"API key {key_id} does not exist")
        return key

    def revoke_api_key(self, key_id: UUID, actor: dict) -> Outcome:
        key = self.get_api_key(key_id)
        key.revoke(actor=actor)
        recordings = self.store.save(key)
        return Outcome({"id": str(key.id)}, bool(recordings), position_of(recordings))

    # -- approvals ---------------------------------------------------------------------

    def request_approval(self, *, action: str, target: str, params: dict[str, Any],
                         idempotency_key: str, site_id: str | None, summary: str,
                         actor: dict) -> Outcome:
        """Ask for a sensitive action; the same key again answers the same request."""
        approval_id = approval_id_for(f"{action}/{target}/{idempotency_key}")
        existing = self.store.find(approval_id, Approval)
        if existing is None:
            approval = Approval._create(Approval.Requested, id=approval_id, action=action,
                                        target=target, params=params,
                                        idempotency_key=idempotency_key, site_id=site_id,
                                        summary=summary, actor=actor)
            try:
                recordings = self.store.save(approval)
                return Outcome({"id": str(approval_id)}, True, position_of(recordings))
            except IntegrityError:
                pass
        return Outcome({"id": str(approval_id)}, False, None)

    def get_approval(self, approval_id: UUID) -> Approval:
        approval = self.store.find(approval_id, Approval)
        if not isinstance(approval, Approval):
            raise ApprovalNotFound(f"approval {approval_id} does not exist")
        return approval

    def approve(self, approval_id: UUID, *, note: str | None, actor: dict) -> Outcome:
        """Carry out the requested action as the requester, approved by ``actor``.

        The action runs with the request's idempotency key, so an approval repeated after
        a crash between the action and the record of the approval does it once.
        """
        approval = self.get_approval(approval_id)
        approval._check_decider(actor)  # noqa: SLF001 - fail before acting
        acting = dict(approval.requested_by, approved_by=actor)
        outcome = self.execute(command_from_approval(approval.action, approval.target,
                                                     approval.params,
                                                     approval.idempotency_key), acting)
        approval.approve(result=outcome.result, note=note, actor=actor)
        try:
            recordings = self.store.save(approval)
        except IntegrityError:
            return Outcome(outcome.result, False, outcome.position)
        return Outcome(outcome.result, True, position_of(recordings) or outcome.position)

    def reject(self, approval_id: UUID, *, note: str | None, actor: dict) -> Outcome:
        approval = self.get_approval(approval_id)
        approval.reject(note=note, actor=actor)
        recordings = self.store.save(approval)
        return Outcome({"id": str(approval.id)}, True, position_of(recordings))
