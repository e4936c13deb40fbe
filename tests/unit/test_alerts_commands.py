"""The alert commands' decisions on a dict-backed loader and the in-memory event store:
what each saves, what it answers and each of its errors; then each carried out through
``Ledger.execute``. No database, no threads (group commit off), a frozen clock."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from domain.account import Account
from domain.alerts import BalanceAlerts, Notification, alerts_id_for
from domain.errors import AccountNotFound, InvalidRequest
from ledger.app import Ledger
from ledger.commands import (
    AlertNotFound,
    NotificationContext,
    ObservationContext,
    ObserveBalance,
    ObserveBalances,
    RecordNotification,
    SetAlertThresholds,
    ThresholdContext,
)

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=timezone.utc)
STAFF = {"kind": "operator", "id": "staff"}
POLICY = {"kind": "policy", "id": "alerts"}


def shop(name: str = "Noodle bar") -> Account:
    return Account.open(account_id=uuid.uuid4(), name=name, site_id=None, unit=None,
                        contact=None, phone="13800000000", area_m2=None, actor=STAFF,
                        idempotency_key=None, request_fingerprint="")


def loader(*aggregates):
    """A loader over these aggregates, as a decision sees stored state."""
    found = {a.id: a for a in aggregates}

    def load(aggregate_id, kind, missing):
        aggregate = found.get(aggregate_id)
        if not isinstance(aggregate, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
        return aggregate
    return load


class Describe:
    """The arrears description the service hands over, and what it was asked about."""

    def __init__(self, arrears: str | None) -> None:
        self.arrears = arrears
        self.asked: list[tuple[uuid.UUID, str]] = []

    def __call__(self, account: Account, wallet: str) -> str | None:
        self.asked.append((account.id, wallet))
        return self.arrears


def observing(*, channels=("log",), describe: Describe | None = None) -> ObservationContext:
    return ObservationContext(NOW, {"alarm1": 5000, "alarm2": 2000}, 500, channels,
                              describe or Describe(None))


# -- observing balances -------------------------------------------------------------------


def test_a_first_observation_above_the_alarms_starts_the_wallets_state_and_raises_none():
    account = shop()
    saved, answer = ObserveBalance(account.id, "electricity", 9000, "t1").decide(
        loader(account), observing())
    assert answer == {"raised": 0}
    assert [type(a) for a in saved] == [BalanceAlerts]
    assert saved[0].id == alerts_id_for(account.id, "electricity")


def test_a_balance_below_an_alarm_queues_a_notification_per_channel():
    account = shop()
    describe = Describe(None)
    saved, answer = ObserveBalance(account.id, "electricity", 2500, "t2", 3).decide(
        loader(account), observing(channels=("log", "sms"), describe=describe))
    assert answer == {"raised": 1}
    queued = [a for a in saved if isinstance(a, Notification)]
    assert sorted(n.channel for n in queued) == ["log", "sms"]
    assert {(n.recipient, n.level, n.next_attempt_at) for n in queued} == {
        ("13800000000", "alarm1", NOW)}
    assert {n.text for n in queued} == {
        "Noodle bar: the electricity balance is getting low (25.00 yuan, about 3 days "
        "left)"}
    assert describe.asked == []  # no arrears: the cut-off book is not asked about


def test_arrears_are_told_as_the_cut_off_policy_describes_them():
    account = shop()
    describe = Describe("is used up: in grace until 2026-03-02 14:00 (UTC+0800)")
    saved, answer = ObserveBalance(account.id, "electricity", -50, "t1").decide(
        loader(account), observing(describe=describe))
    assert answer == {"raised": 3}  # below both alarms and in arrears at once
    texts = [n.text for n in saved if isinstance(n, Notification) and n.level == "arrears"]
    assert texts == ["Noodle bar: the electricity balance is used up: in grace until "
                     "2026-03-02 14:00 (UTC+0800) (-0.50 yuan)"]
    assert describe.asked == [(account.id, "electricity")]


def test_arrears_the_cut_off_policy_says_nothing_of_are_told_as_a_cut():
    account = shop()
    saved, _ = ObserveBalance(account.id, "water", -1, "t1").decide(loader(account),
                                                                   observing())
    assert [n.text for n in saved if isinstance(n, Notification) and n.level == "arrears"] \
        == ["Noodle bar: the water balance is used up: power will be cut (-0.01 yuan)"]


def test_an_alert_raised_before_is_not_raised_again():
    account = shop()
    first, _ = ObserveBalance(account.id, "electricity", 2500, "t1").decide(
        loader(account), observing())
    alerts = first[0]
    saved, answer = ObserveBalance(account.id, "electricity", 2400, "t2").decide(
        loader(account, alerts), observing())
    assert (saved, answer) == ([alerts], {"raised": 0})


def test_an_observation_of_an_unknown_account_is_refused():
    with pytest.raises(AccountNotFound):
        ObserveBalance(uuid.uuid4(), "electricity", 100, "t1").decide(loader(), observing())


def test_observations_are_built_from_the_rows_the_alert_policy_gives():
    account = uuid.UUID(int=1)
    command = ObserveBalances.of([(account, "electricity", 100, "t1", 4),
                                  (account, "water", 7, "t2", None)])
    assert command.observations == (ObserveBalance(account, "electricity", 100, "t1", 4),
                                    ObserveBalance(account, "water", 7, "t2", None))


# -- thresholds ---------------------------------------------------------------------------


def test_thresholds_of_a_wallet_are_set_on_its_state_started_on_first_use():
    account = shop()
    saved, answer = SetAlertThresholds(account.id, "water", 3000, 1000).decide(
        loader(account), ThresholdContext(STAFF))
    assert answer == {}
    assert saved[0].id == alerts_id_for(account.id, "water")
    assert saved[0].thresholds == {"alarm1": 3000, "alarm2": 1000}


@pytest.mark.parametrize("alarm1, alarm2", [(1000, 2000), (500, 0), (0, 0)])
def test_thresholds_out_of_order_or_not_above_zero_are_refused(alarm1, alarm2):
    with pytest.raises(InvalidRequest, match="alarm1 must be at least alarm2"):
        SetAlertThresholds(uuid.uuid4(), "electricity", alarm1, alarm2).check()


def test_thresholds_need_the_account():
    with pytest.raises(AccountNotFound):
        SetAlertThresholds(uuid.uuid4(), "electricity", 3000, 1000).decide(
            loader(), ThresholdContext(STAFF))


# -- notifications ------------------------------------------------------------------------


def queued() -> Notification:
    return Notification.queue(alert_key="k", channel="log", account_id=uuid.uuid4(),
                              recipient=None, text="low", level="alarm1", queued_at=NOW)


def test_a_notification_sent_is_recorded_and_then_stays_sent():
    notification = queued()
    saved, answer = RecordNotification(notification.id, True).decide(
        loader(notification), NotificationContext(NOW))
    assert (saved, answer, notification.status) == ([notification], {}, "sent")
    again = RecordNotification(notification.id, False, "late").decide(
        loader(notification), NotificationContext(NOW))
    assert again == ([], {}) and notification.status == "sent"


def test_a_failed_send_is_recorded_with_its_error_and_tried_again_later():
    notification = queued()
    saved, _ = RecordNotification(notification.id, False, "timeout").decide(
        loader(notification), NotificationContext(NOW))
    assert saved == [notification] and notification.status != "sent"
    assert notification.next_attempt_at > NOW


def test_an_unknown_notification_is_refused():
    with pytest.raises(AlertNotFound):
        RecordNotification(uuid.uuid4(), True).decide(loader(), NotificationContext(NOW))


# -- carried out through the ledger --------------------------------------------------------


@pytest.fixture
def ledger():
    ledger = Ledger(clock=lambda: NOW, group_commit_max_commands=1, notify_channels=("log",))
    yield ledger
    ledger.close()


def open_shop(ledger: Ledger) -> uuid.UUID:
    return uuid.UUID(ledger.accounts.open_account(name="Noodle bar", phone="13800000000",
                                         actor=STAFF).result["account_id"])


def test_the_ledger_observes_balances_and_counts_the_alerts_raised(ledger):
    account = open_shop(ledger)
    rows = [(account, "electricity", 2500, "t1", None), (uuid.uuid4(), "water", 1, "t2", None)]
    # The unknown account is refused in its place; the other raises alarm1.
    assert ledger.execute(ObserveBalances.of(rows), POLICY) == 1
    assert ledger.execute(ObserveBalances.of(rows[:1]), POLICY) == 0
    assert ledger.execute(ObserveBalances(()), POLICY) == 0


def test_the_ledger_sets_thresholds_and_refuses_them_out_of_order(ledger):
    account = open_shop(ledger)
    alerts = ledger.execute(SetAlertThresholds(account, "electricity", 3000, 1000), STAFF)
    assert alerts.thresholds == {"alarm1": 3000, "alarm2": 1000}
    with pytest.raises(InvalidRequest):
        ledger.execute(SetAlertThresholds(account, "electricity", 1000, 3000), STAFF)
    with pytest.raises(AccountNotFound):
        ledger.execute(SetAlertThresholds(uuid.uuid4(), "electricity", 3000, 1000), STAFF)


def test_the_ledger_records_a_notifications_outcome(ledger):
    account = open_shop(ledger)
    ledger.execute(ObserveBalances.of([(account, "electricity", 100, "t1", None)]), POLICY)
    ids = dict.fromkeys(n.originator_id
                        for n in ledger.recorder.select_notifications(1, 10_000))
    notification = next(a for a in ledger.load_many(list(ids)).values()
                        if isinstance(a, Notification))
    failed = ledger.execute(RecordNotification(notification.id, False, "timeout"), POLICY)
    assert failed.status != "sent" and failed.next_attempt_at > NOW
    sent = ledger.execute(RecordNotification(notification.id, True), POLICY)
    assert sent.status == "sent"
    with pytest.raises(AlertNotFound):
        ledger.execute(RecordNotification(uuid.uuid4(), True), POLICY)
