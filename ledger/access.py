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

from domain.errors import AlreadyExists
from domain.operator import (
    ApiKey,
    ApiKeyNotFound,
    Approval,
    ApprovalNotFound,
    Operator,
    OperatorNotFound,
    operator_id_for,
)
from ledger.commands import (
    AccessContext,
    ApprovalContext,
    Approve,
    ChangeOperator,
    Command,
    Handler,
    IssueApiKey,
    Reject,
    RegisterOperator,
    RequestApproval,
    RevokeApiKey,
)
from ledger.core.store import EventStore
from ledger.core.types import holding
from ledger.outcome import Outcome, position_of

# The not-found errors live beside the aggregates they name (domain/operator.py) and are
# imported from here as before.
__all__ = ["AccessService", "ApiKeyNotFound", "ApprovalNotFound", "Execute",
           "OperatorNotFound"]


# Carries out a command as the given actor: what a granted approval's command is handed to.
Execute = Callable[[Command, dict], Outcome]


class AccessService:
    """Operators, API keys and approvals, over the event store.

    ``execute`` carries out an approved request's command (the ledger's own ``execute``):
    access decides who may ask and who may grant, not how a command is done.

    These writes are rare and save directly (not through the command bus). Each decision
    is handed the aggregate the service has just read, so it is read once, and a missing
    one is refused with the same words as before."""

    def __init__(self, store: EventStore, *, execute: Execute) -> None:
        self.store = store
        self.execute = execute

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {RegisterOperator: self.carry_out_registration,
                ChangeOperator: self.carry_out_change, IssueApiKey: self.carry_out_issue,
                RevokeApiKey: self.carry_out_revocation,
                RequestApproval: self.carry_out_request, Approve: self.carry_out_approval,
                Reject: self.carry_out_rejection}

    # -- operators ---------------------------------------------------------------------

    def register_operator(self, *, username: str, password_hash: str,
                          roles: list[str], site_ids: list[str], account_ids: list[str],
                          actor: dict) -> Outcome:
        return self.carry_out_registration(RegisterOperator(
            username, password_hash, tuple(roles), tuple(site_ids), tuple(account_ids)), actor)

    def carry_out_registration(self, command: RegisterOperator, actor: dict) -> Outcome:
        operators, result = command.decide(self.store.load, AccessContext(actor))
        try:
            recordings = self.store.save(*operators)
        except IntegrityError:
            raise AlreadyExists(f"an operator named {command.username!r} exists") from None
        return Outcome(result, True, position_of(recordings))

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
        return self.carry_out_change(ChangeOperator(
            operator_id, _tuple(roles), _tuple(site_ids), _tuple(account_ids), active,
            password_hash), actor)

    def carry_out_change(self, command: ChangeOperator, actor: dict) -> Outcome:
        operator = self.get_operator(command.operator_id)
        return self._saved(*command.decide(holding(operator), AccessContext(actor)))

    # -- API keys ----------------------------------------------------------------------

    def issue_api_key(self, *, key_id: UUID, name: str, secret_hash: str,
                      roles: list[str],
                      site_ids: list[str], expires_at: datetime | None,
                      actor: dict) -> Outcome:
        return self.carry_out_issue(IssueApiKey(key_id, name, secret_hash, tuple(roles),
                                                tuple(site_ids), expires_at), actor)

    def carry_out_issue(self, command: IssueApiKey, actor: dict) -> Outcome:
        keys, result = command.decide(holding(), AccessContext(actor))
        return Outcome(result, True, position_of(self.store.save(*keys)))

    def get_api_key(self, key_id: UUID) -> ApiKey:
        key = self.store.find(key_id, ApiKey)
        if not isinstance(key, ApiKey):
            raise ApiKeyNotFound(f"API key {key_id} does not exist")
        return key

    def revoke_api_key(self, key_id: UUID, actor: dict) -> Outcome:
        return self.carry_out_revocation(RevokeApiKey(key_id), actor)

    def carry_out_revocation(self, command: RevokeApiKey, actor: dict) -> Outcome:
        key = self.get_api_key(command.key_id)
        return self._saved(*command.decide(holding(key), AccessContext(actor)))

    # -- approvals ---------------------------------------------------------------------

    def request_approval(self, *, action: str, target: str, params: dict[str, Any],
                         idempotency_key: str, site_id: str | None, summary: str,
                         actor: dict) -> Outcome:
        """Ask for a sensitive action; the same key again answers the same request."""
        return self.carry_out_request(RequestApproval(action, target, params,
                                                      idempotency_key, site_id, summary),
                                      actor)

    def carry_out_request(self, command: RequestApproval, actor: dict) -> Outcome:
        approvals, result = command.decide(self.store.load, AccessContext(actor))
        if approvals:
            try:
                recordings = self.store.save(*approvals)
                return Outcome(result, True, position_of(recordings))
            except IntegrityError:
                pass
        return Outcome(result, False, None)

    def get_approval(self, approval_id: UUID) -> Approval:
        approval = self.store.find(approval_id, Approval)
        if not isinstance(approval, Approval):
            raise ApprovalNotFound(f"approval {approval_id} does not exist")
        return approval

    def approve(self, approval_id: UUID, *, note: str | None, actor: dict) -> Outcome:
        """Carry out the requested action as the requester, approved by ``actor``."""
        return self.carry_out_approval(Approve(approval_id, note), actor)

    def carry_out_approval(self, command: Approve, actor: dict) -> Outcome:
        """The stored command goes to ``execute`` with the request's idempotency key; the
        approval read before it is the one that records the answer."""
        load = holding(self.get_approval(command.approval_id))
        granted, acting = command.granted(load, AccessContext(actor))
        outcome = self.execute(granted, acting)
        approvals, result = command.decide(load, ApprovalContext(actor, outcome.result))
        try:
            recordings = self.store.save(*approvals)
        except IntegrityError:
            return Outcome(result, False, outcome.position)
        return Outcome(result, True, position_of(recordings) or outcome.position)

    def reject(self, approval_id: UUID, *, note: str | None, actor: dict) -> Outcome:
        return self.carry_out_rejection(Reject(approval_id, note), actor)

    def carry_out_rejection(self, command: Reject, actor: dict) -> Outcome:
        approval = self.get_approval(command.approval_id)
        approvals, result = command.decide(holding(approval), AccessContext(actor))
        return Outcome(result, True, position_of(self.store.save(*approvals)))

    def _saved(self, aggregates: list[Any], result: dict[str, Any]) -> Outcome:
        """Saved as decided; changed only when there was something to record."""
        recordings = self.store.save(*aggregates)
        return Outcome(result, bool(recordings), position_of(recordings))


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)
