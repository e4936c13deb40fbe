"""The access commands on the in-memory event store: no database, no threads (group commit
off). Each command's decision on aggregates handed to it, its typed errors, and the command
carried out through ``Ledger.execute``."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from domain.errors import AlreadyExists, Conflict, InvalidRequest
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
from ledger.app import Ledger
from ledger.commands import (
    AccessContext,
    ApprovalContext,
    Approve,
    ChangeOperator,
    IssueApiKey,
    Refund,
    Reject,
    RegisterOperator,
    RequestApproval,
    RevokeApiKey,
)
from ledger.core.types import holding

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
MAKER = {"kind": "operator", "id": "maker"}
CHECKER = {"kind": "operator", "id": "checker"}
ACCOUNT = uuid.UUID(int=1)
REFUND = Refund(ACCOUNT, amount_fen=2000, channel="cash", reason="moving out",
                idempotency_key="a1")


@pytest.fixture
def ledger():
    ledger = Ledger(clock=lambda: NOW, group_commit_max_commands=1)
    yield ledger
    ledger.close()


def operator(**change) -> Operator:
    fields = dict(username="wang", password_hash="h", roles=("operator",)) | change
    [registered], _ = RegisterOperator(**fields).decide(holding(), AccessContext(MAKER))
    return registered


def requested(command=REFUND, actor=MAKER) -> Approval:
    [approval], _ = RequestApproval.of(command, idempotency_key="a1", site_id="s1",
                                       summary="refund 20.00").decide(holding(),
                                                                     AccessContext(actor))
    return approval


# -- operators ------------------------------------------------------------------------------

def test_registering_decides_an_operator_named_by_its_username():
    command = RegisterOperator("Wang", "h", ("finance",), ("s1",))
    [registered], result = command.decide(holding(), AccessContext(MAKER))
    assert registered.id == command.operator_id() == operator_id_for("wang")
    assert result == {"id": str(registered.id)}
    assert (registered.username, registered.roles, registered.site_ids,
            registered.account_ids, registered.active, registered.created_by) == \
        ("Wang", ["finance"], ["s1"], [], True, MAKER)


def test_a_name_taken_is_refused():
    with pytest.raises(AlreadyExists, match="an operator named 'wang' exists"):
        RegisterOperator("wang", "h", ("operator",)).decide(holding(operator()),
                                                            AccessContext(MAKER))


@pytest.mark.parametrize("roles, account_ids, message", [
    ((), (), "at least one role"),
    (("owner",), (), "unknown role"),
    (("tenant",), (), "needs account_ids"),
    (("operator",), ("a1",), "for tenant logins only"),
])
def test_a_grant_that_does_not_hold_together_is_refused(roles, account_ids, message):
    with pytest.raises(InvalidRequest, match=message):
        RegisterOperator("wang", "h", roles, account_ids=account_ids).decide(
            holding(), AccessContext(MAKER))


def test_registering_through_execute_stores_the_operator_once(ledger):
    outcome = ledger.execute(RegisterOperator("wang", "h", ("operator",)), MAKER)
    assert outcome.created and outcome.position is not None
    assert str(ledger.access.find_operator("wang").id) == outcome.result["id"]
    with pytest.raises(AlreadyExists):
        ledger.execute(RegisterOperator("wang", "h2", ("finance",)), MAKER)


def test_changing_a_grant_to_what_it_is_records_nothing():
    unchanged = operator()
    unchanged.collect_events()
    [same], _ = ChangeOperator(unchanged.id, roles=("operator",), site_ids=()).decide(
        holding(unchanged), AccessContext(CHECKER))
    assert same.pending_events == []


def test_a_change_records_only_what_it_names():
    changed = operator(site_ids=("s1",))
    changed.collect_events()
    saved, result = ChangeOperator(changed.id, roles=("finance",), active=False,
                                   password_hash="h2").decide(holding(changed),
                                                              AccessContext(CHECKER))
    assert (saved, result) == ([changed], {"id": str(changed.id)})
    assert (changed.roles, changed.site_ids, changed.active, changed.password_hash) == \
        (["finance"], ["s1"], False, "h2")
    assert len(changed.pending_events) == 3


def test_changing_an_unknown_operator_is_not_found(ledger):
    with pytest.raises(OperatorNotFound):
        ChangeOperator(uuid.uuid4(), active=False).decide(holding(), AccessContext(CHECKER))
    missing = uuid.uuid4()
    with pytest.raises(OperatorNotFound, match=f"operator {missing} does not exist"):
        ledger.execute(ChangeOperator(missing, active=False), CHECKER)


def test_changing_through_execute_stores_the_change_and_nothing_for_none(ledger):
    operator_id = uuid.UUID(ledger.execute(RegisterOperator("wang", "h", ("operator",)),
                                           MAKER).result["id"])
    same = ledger.execute(ChangeOperator(operator_id, roles=("operator",)), CHECKER)
    changed = ledger.execute(ChangeOperator(operator_id, active=False), CHECKER)
    assert (same.created, changed.created) == (False, True)
    assert ledger.access.get_operator(operator_id).active is False


# -- API keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("roles, message", [
    ((), "needs at least one role"),
    (("tenant",), "cannot have the role 'tenant'"),
    (("owner",), "cannot have the role 'owner'"),
])
def test_an_api_key_needs_staff_roles(roles, message):
    command = IssueApiKey(uuid.uuid4(), "meter bridge", "h", roles)
    with pytest.raises(InvalidRequest, match=message):
        command.check()
    with pytest.raises(InvalidRequest, match=message):
        command.decide(holding(), AccessContext(MAKER))


def test_issuing_decides_a_key_with_the_id_it_was_given():
    key_id = uuid.uuid4()
    [key], result = IssueApiKey(key_id, "meter bridge", "h", ("operator", "auditor"),
                                ("s1",), NOW).decide(holding(), AccessContext(MAKER))
    assert (key.id, result) == (key_id, {"id": str(key_id)})
    assert (key.name, key.roles, key.site_ids, key.expires_at, key.revoked) == \
        ("meter bridge", ["operator", "auditor"], ["s1"], NOW, False)


def test_revoking_marks_the_key_revoked_and_an_unknown_key_is_not_found():
    [key], _ = IssueApiKey(uuid.uuid4(), "bridge", "h", ("operator",)).decide(
        holding(), AccessContext(MAKER))
    saved, result = RevokeApiKey(key.id).decide(holding(key), AccessContext(MAKER))
    assert (saved, result, key.revoked) == ([key], {"id": str(key.id)}, True)
    with pytest.raises(ApiKeyNotFound):
        RevokeApiKey(uuid.uuid4()).decide(holding(), AccessContext(MAKER))


def test_issuing_and_revoking_through_execute(ledger):
    key_id = uuid.uuid4()
    issued = ledger.execute(IssueApiKey(key_id, "bridge", "h", ("operator",)), MAKER)
    assert issued.created and isinstance(ledger.access.get_api_key(key_id), ApiKey)
    assert ledger.execute(RevokeApiKey(key_id), MAKER).created
    assert ledger.access.get_api_key(key_id).revoked is True
    missing = uuid.uuid4()
    with pytest.raises(ApiKeyNotFound, match=f"API key {missing} does not exist"):
        ledger.execute(RevokeApiKey(missing), MAKER)


# -- approvals ------------------------------------------------------------------------------

def test_a_request_stores_the_command_as_action_target_and_params():
    request = RequestApproval.of(REFUND, idempotency_key="a1", site_id="s1", summary="s")
    assert (request.requested_action, request.requested_target, request.requested_params) \
        == ("refund", str(ACCOUNT), REFUND.params())
    approval = requested()
    assert approval.id == request.approval_id() == approval_id_for(f"refund/{ACCOUNT}/a1")
    assert (approval.action, approval.target, approval.params, approval.idempotency_key,
            approval.site_id, approval.status, approval.requested_by) == \
        ("refund", str(ACCOUNT), REFUND.params(), "a1", "s1", "pending", MAKER)


def test_the_same_request_again_decides_nothing_new():
    approval = requested()
    request = RequestApproval.of(REFUND, idempotency_key="a1", site_id="s1", summary="s")
    assert request.decide(holding(approval), AccessContext(MAKER)) == \
        ([], {"id": str(approval.id)})


def test_requesting_through_execute_answers_the_same_approval_twice(ledger):
    request = RequestApproval.of(REFUND, idempotency_key="a1", site_id=None, summary="s")
    first, again = ledger.execute(request, MAKER), ledger.execute(request, MAKER)
    assert (first.created, again.created) == (True, False)
    assert first.result == again.result
    assert ledger.access.get_approval(uuid.UUID(first.result["id"])).params == REFUND.params()


def test_granting_rebuilds_the_stored_command_as_the_requester():
    approval = requested()
    command, acting = Approve(approval.id).granted(holding(approval), AccessContext(CHECKER))
    assert command == REFUND
    assert acting == dict(MAKER, approved_by=CHECKER)


def test_nobody_grants_or_refuses_their_own_request():
    approval = requested()
    with pytest.raises(Conflict, match="cannot approve or reject their own"):
        Approve(approval.id).granted(holding(approval), AccessContext(MAKER))
    with pytest.raises(Conflict, match="cannot approve or reject their own"):
        Reject(approval.id).decide(holding(approval), AccessContext(MAKER))
    assert approval.status == "pending"


def test_an_approval_records_what_the_command_answered():
    approval = requested()
    saved, result = Approve(approval.id, "checked").decide(
        holding(approval), ApprovalContext(CHECKER, {"transaction_id": "t1"}))
    assert (saved, result) == ([approval], {"transaction_id": "t1"})
    assert (approval.status, approval.decided_by, approval.result, approval.note) == \
        ("approved", CHECKER, {"transaction_id": "t1"}, "checked")
    with pytest.raises(Conflict, match="already approved"):
        Approve(approval.id).granted(holding(approval), AccessContext(CHECKER))


def test_a_rejection_is_recorded_and_a_decided_request_is_final():
    approval = requested()
    saved, result = Reject(approval.id, "no lease").decide(holding(approval),
                                                           AccessContext(CHECKER))
    assert (saved, result) == ([approval], {"id": str(approval.id)})
    assert (approval.status, approval.note) == ("rejected", "no lease")
    with pytest.raises(Conflict, match="already rejected"):
        Approve(approval.id).granted(holding(approval), AccessContext(CHECKER))


@pytest.mark.parametrize("command", [Approve(uuid.UUID(int=9)), Reject(uuid.UUID(int=9))])
def test_an_unknown_approval_is_not_found(ledger, command):
    with pytest.raises(ApprovalNotFound):
        ledger.execute(command, CHECKER)


def test_approving_through_execute_carries_out_the_stored_refund_once(ledger):
    account = uuid.UUID(ledger.accounts.open_account(name="Tea shop", actor=MAKER)
                        .result["account_id"])
    ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor=MAKER)
    refund = Refund(account, amount_fen=2000, channel="cash", reason="moving out",
                    idempotency_key="a1")
    approval_id = uuid.UUID(ledger.execute(RequestApproval.of(
        refund, idempotency_key="a1", site_id=None, summary="s"), MAKER).result["id"])
    outcome = ledger.execute(Approve(approval_id, "checked"), CHECKER)
    assert outcome.created and outcome.result["balance_after_fen"] == 3000
    assert ledger.accounts.get_account(account).balance_fen("electricity") == 3000
    approval = ledger.access.get_approval(approval_id)
    assert (approval.status, approval.result) == ("approved", outcome.result)
    with pytest.raises(Conflict):
        ledger.execute(Approve(approval_id), {"kind": "operator", "id": "third"})
    assert ledger.accounts.get_account(account).balance_fen("electricity") == 3000


def test_rejecting_through_execute_never_carries_it_out(ledger):
    account = uuid.UUID(ledger.accounts.open_account(name="Tea shop", actor=MAKER)
                        .result["account_id"])
    refund = Refund(account, amount_fen=2000, channel="cash", idempotency_key="a1")
    approval_id = uuid.UUID(ledger.execute(RequestApproval.of(
        refund, idempotency_key="a1", site_id=None, summary="s"), MAKER).result["id"])
    assert ledger.execute(Reject(approval_id, "no"), CHECKER).created
    assert ledger.access.get_approval(approval_id).status == "rejected"
    assert ledger.accounts.get_account(account).balance_fen("electricity") == 0
