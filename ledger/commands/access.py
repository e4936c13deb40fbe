"""Access commands: operators, API keys and second-person approvals.

Hashing passwords and keys is the caller's business (``adapters/auth.py``): a command
carries hashes only. An approval stores the command it waits for as its ``action``,
``target`` and ``params`` (their shape is a contract); ``Approve`` rebuilds that command
and names who carries it out, and records the answer once it has been carried out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.access import Role
from domain.errors import AlreadyExists, InvalidRequest
from domain.operator import (
    ApiKey,
    ApiKeyNotFound,
    Approval,
    ApprovalNotFound,
    Operator,
    OperatorNotFound,
    approval_id_for,
    operator_id_for,
)
from ledger.commands.approvals import command_from_approval
from ledger.commands.base import Command
from ledger.core.types import Loader


@dataclass(frozen=True)
class AccessContext:
    """Who asks."""

    actor: dict


@dataclass(frozen=True)
class ApprovalContext:
    """Who approves, and what the approved command answered when it was carried out."""

    actor: dict
    result: dict[str, Any]


@dataclass(frozen=True)
class RegisterOperator(Command):
    """A staff or tenant login; a name is taken once."""

    action: ClassVar[str] = "register_operator"
    repeat: ClassVar[str] = "refused: a name is taken once (409)"
    username: str
    password_hash: str
    roles: tuple[str, ...]
    site_ids: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()

    def operator_id(self) -> UUID:
        return operator_id_for(self.username)

    def decide(self, load: Loader, ctx: AccessContext) -> tuple[list[Any], dict[str, Any]]:
        try:
            load(self.operator_id(), Operator, OperatorNotFound)
        except OperatorNotFound:
            pass
        else:
            raise AlreadyExists(f"an operator named {self.username!r} exists")
        operator = Operator.register(username=self.username, password_hash=self.password_hash,
                                     roles=list(self.roles), site_ids=list(self.site_ids),
                                     account_ids=list(self.account_ids), actor=ctx.actor)
        return [operator], {"id": str(operator.id)}


@dataclass(frozen=True)
class ChangeOperator(Command):
    """Roles, sites, accounts, password, active or not: what is None stays; changing a
    grant to what it is records nothing."""

    action: ClassVar[str] = "change_operator"
    repeat: ClassVar[str] = "records nothing more: a grant changed to what it is records nothing"
    operator_id: UUID
    roles: tuple[str, ...] | None = None
    site_ids: tuple[str, ...] | None = None
    account_ids: tuple[str, ...] | None = None
    active: bool | None = None
    password_hash: str | None = None

    def decide(self, load: Loader, ctx: AccessContext) -> tuple[list[Any], dict[str, Any]]:
        operator = load(self.operator_id, Operator, OperatorNotFound)
        if self.roles is not None or self.site_ids is not None or \
                self.account_ids is not None:
            new = (list(self.roles) if self.roles is not None else operator.roles,
                   list(self.site_ids) if self.site_ids is not None else operator.site_ids,
                   list(self.account_ids) if self.account_ids is not None
                   else operator.account_ids)
            if new != (operator.roles, operator.site_ids, operator.account_ids):
                operator.change_grant(*new, actor=ctx.actor)
        if self.password_hash is not None:
            operator.change_password(self.password_hash, actor=ctx.actor)
        if self.active is True:
            operator.activate(actor=ctx.actor)
        elif self.active is False:
            operator.deactivate(actor=ctx.actor)
        return [operator], {"id": str(operator.id)}


@dataclass(frozen=True)
class IssueApiKey(Command):
    """A key for an integration, with staff roles only; its id is fixed by the caller,
    who shows the key once."""

    action: ClassVar[str] = "issue_api_key"
    repeat: ClassVar[str] = "refused: the key's id is taken once"
    key_id: UUID
    name: str
    secret_hash: str
    roles: tuple[str, ...]
    site_ids: tuple[str, ...] = ()
    expires_at: datetime | None = None

    def check(self) -> None:
        if not self.roles:
            raise InvalidRequest("an API key needs at least one role")
        for role in self.roles:
            if role not in Role.__members__.values() or role == Role.TENANT:
                raise InvalidRequest(f"an API key cannot have the role {role!r}")

    def decide(self, load: Loader, ctx: AccessContext) -> tuple[list[Any], dict[str, Any]]:
        self.check()
        key = ApiKey._create(ApiKey.Issued, id=self.key_id, name=self.name,
                             secret_hash=self.secret_hash, roles=list(self.roles),
                             site_ids=list(self.site_ids), expires_at=self.expires_at,
                             actor=ctx.actor)
        return [key], {"id": str(key.id)}


@dataclass(frozen=True)
class RevokeApiKey(Command):
    repeat: ClassVar[str] = "records nothing more: a revoked key stays revoked"
    action: ClassVar[str] = "revoke_api_key"
    key_id: UUID

    def decide(self, load: Loader, ctx: AccessContext) -> tuple[list[Any], dict[str, Any]]:
        key = load(self.key_id, ApiKey, ApiKeyNotFound)
        key.revoke(actor=ctx.actor)
        return [key], {"id": str(key.id)}


@dataclass(frozen=True)
class RequestApproval(Command):
    """A sensitive command stored for a second person (as its action, target and params);
    the same key again answers the same request."""

    action: ClassVar[str] = "request_approval"
    requested_action: str
    requested_target: str
    requested_params: dict[str, Any]
    idempotency_key: str
    site_id: str | None
    summary: str

    @classmethod
    def of(cls, command: Command, *, idempotency_key: str, site_id: str | None,
           summary: str) -> RequestApproval:
        return cls(command.action, command.target(), command.params(), idempotency_key,
                   site_id, summary)

    def approval_id(self) -> UUID:
        return approval_id_for(f"{self.requested_action}/{self.requested_target}/"
                               f"{self.idempotency_key}")

    def decide(self, load: Loader, ctx: AccessContext) -> tuple[list[Any], dict[str, Any]]:
        """The new approval, or nothing when the same request was made before."""
        approval_id = self.approval_id()
        try:
            load(approval_id, Approval, ApprovalNotFound)
        except ApprovalNotFound:
            approval = Approval._create(Approval.Requested, id=approval_id,
                                        action=self.requested_action,
                                        target=self.requested_target,
                                        params=self.requested_params,
                                        idempotency_key=self.idempotency_key,
                                        site_id=self.site_id, summary=self.summary,
                                        actor=ctx.actor)
            return [approval], {"id": str(approval_id)}
        return [], {"id": str(approval_id)}


@dataclass(frozen=True)
class Approve(Command):
    """Carry out the requested command as the requester, approved by the actor.

    The command runs with the request's idempotency key, so an approval repeated after a
    crash between the command and the record of the approval does it once."""

    action: ClassVar[str] = "approve"
    repeat: ClassVar[str] = "refused: an approval is granted or refused once (409)"
    approval_id: UUID
    note: str | None = None

    def granted(self, load: Loader, ctx: AccessContext) -> tuple[Command, dict]:
        """The stored command and who it is carried out as; refused before anything is
        done when the actor may not decide."""
        approval = load(self.approval_id, Approval, ApprovalNotFound)
        approval._check_decider(ctx.actor)  # noqa: SLF001 - fail before acting
        acting = dict(approval.requested_by, approved_by=ctx.actor)
        return command_from_approval(approval.action, approval.target, approval.params,
                                     approval.idempotency_key), acting

    def decide(self, load: Loader, ctx: ApprovalContext) -> tuple[list[Any], dict[str, Any]]:
        approval = load(self.approval_id, Approval, ApprovalNotFound)
        approval.approve(result=ctx.result, note=self.note, actor=ctx.actor)
        return [approval], ctx.result


@dataclass(frozen=True)
class Reject(Command):
    repeat: ClassVar[str] = "refused: an approval is granted or refused once (409)"
    action: ClassVar[str] = "reject"
    approval_id: UUID
    note: str | None = None

    def decide(self, load: Loader, ctx: AccessContext) -> tuple[list[Any], dict[str, Any]]:
        approval = load(self.approval_id, Approval, ApprovalNotFound)
        approval.reject(note=self.note, actor=ctx.actor)
        return [approval], {"id": str(approval.id)}
