"""Balance alerts: once per downward crossing, re-armed above the threshold plus a
hysteresis; notifications leave the outbox once, even across a crash."""

from __future__ import annotations

import uuid

import pytest

from ledger.commands import RecordNotification

API = "/api/v1"


def key():
    return {"Idempotency-Key": str(uuid.uuid4())}


def move(client, account, yuan: str):
    if yuan.startswith("-"):
        path, amount = "refunds", yuan[1:]
    else:
        path, amount = "top-ups", yuan
    response = client.post(f"{API}/accounts/{account}/{path}",
                           json={"amount": amount, "channel": "cash"}, headers=key())
    assert response.status_code == 201, response.text


def alerts(client, platform, account):
    platform.enforce()
    return client.get(f"{API}/alerts", params={"account_id": account}).json()["items"]


def test_a_balance_oscillating_around_a_threshold_warns_once(client, platform):
    account = client.post(f"{API}/accounts", json={"name": "Shop",
                                                   "phone": "13800000000"}).json()["id"]
    move(client, account, "60.00")
    assert alerts(client, platform, account) == []
    for step in ["-11.00", "2.00", "-2.00", "2.00", "-2.00"]:  # 49, 51, 49, 51, 49
        move(client, account, step)
        platform.enforce()
    raised = alerts(client, platform, account)
    assert [a["level"] for a in raised] == ["alarm1"]
    assert raised[0]["balance"] == "49.00"
    move(client, account, "7.00")  # 56.00: above 50.00 + 5.00, re-armed
    platform.enforce()
    move(client, account, "-8.00")  # 48.00: warned again
    move(client, account, "-30.00")  # 18.00: below alarm2 too
    move(client, account, "-18.00")  # 0.00: arrears
    levels = [a["level"] for a in alerts(client, platform, account)]
    assert levels == ["arrears", "alarm2", "alarm1", "alarm1"]
    assert platform.send_notifications() == 4
    assert all(a["notified"] for a in alerts(client, platform, account))
    assert platform.send_notifications() == 0


class Receiver:
    """A webhook that counts what it receives by idempotency key, like a real gateway."""

    def __init__(self) -> None:
        self.deliveries: list[str] = []

    def send(self, notification_id: str, recipient, text) -> None:
        self.deliveries.append(notification_id)


def test_a_crash_between_sending_and_recording_still_sends_once(client, platform,
                                                                 monkeypatch):
    receiver = Receiver()
    platform.notifiers["log"] = receiver
    account = client.post(f"{API}/accounts", json={"name": "Shop"}).json()["id"]
    move(client, account, "10.00")  # below alarm1 and alarm2 at once
    platform.enforce()
    real_execute = platform.ledger.execute
    calls = {"n": 0}

    def crash_once(command, actor):
        if isinstance(command, RecordNotification):
            calls["n"] += 1
            if calls["n"] == 1:
                raise SystemExit("power cut after the send, before it was recorded")
        return real_execute(command, actor)

    monkeypatch.setattr(platform.ledger, "execute", crash_once)
    with pytest.raises(SystemExit):
        platform.send_notifications()
    monkeypatch.setattr(platform.ledger, "execute", real_execute)
    platform.send_notifications()  # after the restart
    assert len(receiver.deliveries) == 3  # one repeated...
    assert len(set(receiver.deliveries)) == 2  # ...under the same key: two messages
    assert platform.send_notifications() == 0
    assert all(a["notified"] for a in alerts(client, platform, account))


def test_an_account_can_have_its_own_levels(client, platform):
    account = client.post(f"{API}/accounts", json={"name": "Big shop"}).json()["id"]
    response = client.put(f"{API}/accounts/{account}/alert-thresholds",
                          json={"alarm1": "500.00", "alarm2": "200.00"})
    assert response.status_code == 200, response.text
    move(client, account, "600.00")
    move(client, account, "-150.00")  # 450.00: below its own alarm1, far above the default
    assert [a["level"] for a in alerts(client, platform, account)] == ["alarm1"]
    bad = client.put(f"{API}/accounts/{account}/alert-thresholds",
                     json={"alarm1": "10.00", "alarm2": "20.00"})
    assert bad.status_code == 422
