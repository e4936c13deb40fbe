"""Operators, API keys and approvals on the in-memory event store, the command an approval
grants carried out by a fake ``execute`` written here."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from domain.errors import AlreadyExists, Conflict, InvalidRequest
from ledger.access import AccessService, ApprovalNotFound, OperatorNotFound
from ledger.app import Ledger
from ledger.commands import Refund
from ledger.core.store import EventStore
from ledger.outcome import Outcome

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
MAKER = {"kind": "operator", "id": "maker"}
CHECKER = {"kind": "operator", "id": "checker"}
ACCOUNT = uuid.UUID(int=1)


class Executor:
    """The ``execute`` port: records each command and who it was carried out as."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, dict]] = []

    def __call__(self, command, actor: dict) -> Outcome:
        self.calls.append((command, actor))
        return Outcome({"transaction_id": f"t{len(self.calls)}"}, True, None)


@pytest.fixture
def executor():
    return Executor()


@pytest.fixture
def access(executor):
    return AccessService(EventStore(), execute=executor)


REFUND = Refund(ACCOUNT, amount_fen=200_000, channel="cash", reason="moving out",
                idempotency_key="a1")


def ask(access: AccessService, command=REFUND, actor=MAKER) -> uuid.UUID:
    outcome = access.request_approval(action=command.action, target=command.target(),
                                      params=command.params(),
                                      idempotency_key=command.idempotency_key, site_id=None,
                                      summary="refund 2000.00", actor=actor)
    return uuid.UUID(outcome.result["id"])


def test_the_same_request_again_is_the_same_approval(access):
    first = access.request_approval(action="refund", target=str(ACCOUNT),
                                    params=REFUND.params(), idempotency_key="a1",
                                    site_id=None, summary="s", actor=MAKER)
    again = access.request_approval(action="refund", target=str(ACCOUNT),
                                    params=REFUND.params(), idempotency_key="a1",
                                    site_id=None, summary="s", actor=MAKER)
    assert (first.created, again.created) == (True, False)
    assert first.result == again.result
    assert access.get_approval(uuid.UUID(first.result["id"])).status == "pending"


def test_an_approval_carries_out_the_stored_command_once_as_the_requester(access, executor):
    approval_id = ask(access)
    outcome = access.approve(approval_id, note="checked the lease", actor=CHECKER)
    assert executor.calls == [(REFUND, dict(MAKER, approved_by=CHECKER))]
    assert outcome.created and outcome.result == {"transaction_id": "t1"}
    approval = access.get_approval(approval_id)
    assert (approval.status, approval.decided_by, approval.result, approval.note) == \
        ("approved", CHECKER, {"transaction_id": "t1"}, "checked the lease")
    with pytest.raises(Conflict):
        access.approve(approval_id, note=None, actor=CHECKER)
    assert len(executor.calls) == 1


def test_nobody_approves_or_rejects_their_own_request(access, executor):
    approval_id = ask(access)
    with pytest.raises(Conflict):
        access.approve(approval_id, note=None, actor=MAKER)
    with pytest.raises(Conflict):
        access.reject(approval_id, note=None, actor=MAKER)
    assert executor.calls == []
    assert access.get_approval(approval_id).status == "pending"


def test_a_rejected_request_is_never_carried_out(access, executor):
    approval_id = ask(access)
    access.reject(approval_id, note="no lease on file", actor=CHECKER)
    with pytest.raises(Conflict):
        access.approve(approval_id, note=None, actor={"kind": "operator", "id": "third"})
    assert executor.calls == []
    approval = access.get_approval(approval_id)
    assert (approval.status, approval.note) == ("rejected", "no lease on file")


def test_an_unknown_approval_is_not_found(access, executor):
    with pytest.raises(ApprovalNotFound):
        access.approve(uuid.uuid4(), note=None, actor=CHECKER)
    assert executor.calls == []


def test_an_operator_name_is_taken_once(access):
    grant = dict(password_hash="h", roles=["operator"], site_ids=[], account_ids=[],
                 actor=MAKER)
    outcome = access.register_operator(username="wang", **grant)
    with pytest.raises(AlreadyExists):
        access.register_operator(username="wang", **grant)
    found = access.find_operator("wang")
    assert str(found.id) == outcome.result["id"]
    assert access.find_operator("li") is None
    with pytest.raises(OperatorNotFound):
        access.get_operator(uuid.uuid4())


def test_changing_an_operator_to_what_it_is_stores_nothing(access):
    operator_id = uuid.UUID(access.register_operator(
        username="wang", password_hash="h", roles=["operator"], site_ids=[], account_ids=[],
        actor=MAKER).result["id"])
    same = access.change_operator(operator_id, actor=CHECKER, roles=["operator"])
    changed = access.change_operator(operator_id, actor=CHECKER, roles=["finance"],
                                     active=False)
    assert (same.created, changed.created) == (False, True)
    operator = access.get_operator(operator_id)
    assert (operator.roles, operator.active) == (["finance"], False)


@pytest.mark.parametrize("roles", [[], ["tenant"], ["owner"]])
def test_an_api_key_needs_staff_roles(access, roles):
    with pytest.raises(InvalidRequest):
        access.issue_api_key(key_id=uuid.uuid4(), name="meter bridge", secret_hash="h",
                             roles=roles, site_ids=[], expires_at=None, actor=MAKER)


def test_a_revoked_api_key_is_marked_revoked(access):
    key_id = uuid.uuid4()
    access.issue_api_key(key_id=key_id, name="meter bridge", secret_hash="h",
                         roles=["operator"], site_ids=[], expires_at=NOW, actor=MAKER)
    assert access.revoke_api_key(key_id, MAKER).created
    assert access.get_api_key(key_id).revoked is True


def test_the_ledger_grants_approvals_through_its_own_execute():
    ledger = Ledger(clock=lambda: NOW, group_commit_max_commands=1)
    try:
        assert isinstance(ledger.access, AccessService)
        account = uuid.UUID(ledger.accounts.open_account(name="Tea shop", actor=MAKER)
                            .result["account_id"])
        ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor=MAKER)
        command = Refund(account, amount_fen=2000, channel="cash", reason="moving out",
                         idempotency_key="a1")
        approval_id = ask(ledger.access, command)
        ledger.access.approve(approval_id, note=None, actor=CHECKER)
        assert ledger.accounts.get_account(account).balance_fen("electricity") == 3000
        assert ledger.access.get_approval(approval_id).status == "approved"
    finally:
        ledger.close()
