"""WeChat Pay and Alipay: orders out, notifications in, each paid order credited once."""

from __future__ import annotations

import json
import random
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

from bootstrap import Platform
from api.app import create_app
from tests.conftest import FrozenClock, login
from tests.payment_fakes import (
    APPID,
    MCHID,
    OLD_PUB_KEY_ID,
    FakeProvider,
    Keys,
    alipay_params,
    alipay_sign,
    serve_in_thread,
    wechat_notification,
    wechat_paid,
)

API = "/api/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
def fake(keys):
    provider = FakeProvider(keys)
    port = free_port()
    server, thread = serve_in_thread(provider.app(), port)
    provider.base = f"http://127.0.0.1:{port}"
    yield provider
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def world(backend, make_settings, keys, fake, tmp_path, monkeypatch):
    for name, value in keys.write(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WECHATPAY_API_BASE", fake.base)
    monkeypatch.setenv("ALIPAY_GATEWAY", f"{fake.base}/alipay/gateway.do")
    clock = FrozenClock()
    platform = Platform(make_settings(backend), clock=clock)
    with TestClient(create_app(platform, background=False), headers=login(platform)) as client:
        account = client.post(f"{API}/accounts", json={"name": "Tea House"}).json()["id"]
        yield {"client": client, "platform": platform, "account": account, "fake": fake,
               "clock": clock, "keys": keys}
    platform.close()


def order(world, channel="wechat", scene="native", amount="88.00", **extra):
    response = world["client"].post(f"{API}/payments/orders", json={
        "account_id": world["account"], "amount": amount, "channel": channel,
        "scene": scene, **extra}, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    return response.json()


def balance(world) -> str:
    return world["client"].get(f"{API}/accounts/{world['account']}").json()["balance"]


def notify_wechat(world, body: bytes, headers: dict):
    return world["client"].post(f"{API}/payments/wechat/notify", content=body, headers=headers)


def notify_alipay(world, params: dict):
    return world["client"].post(f"{API}/payments/alipay/notify", content=urlencode(params),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})


def rejected(world) -> int:
    from sqlalchemy import func, select

    from projections.payments.tables import rejected_notifications

    world["platform"].catch_up()
    with world["platform"].engines.reader.connect() as conn:
        return conn.execute(select(func.count()).select_from(rejected_notifications)).scalar()


def test_orders_go_out_as_signed_requests_for_every_scene(world):
    native = order(world, "wechat", "native")
    assert native["code_url"].startswith("weixin://") and native["status"] == "created"
    jsapi = order(world, "wechat", "jsapi", payer_openid="o-abc")
    assert jsapi["prepay_id"].startswith("wx")
    qr = order(world, "alipay", "qr")
    assert qr["qr_code"].startswith("https://qr.alipay.com/")
    page = order(world, "alipay", "page")
    assert "sign=" in page["pay_url"] and "alipay.trade.page.pay" in page["pay_url"]
    assert world["fake"].refused == 0
    assert {native["out_trade_no"], jsapi["out_trade_no"], qr["out_trade_no"]} <= \
        set(world["fake"].orders)
    again = world["client"].get(f"{API}/payments/orders/{native['out_trade_no']}").json()
    assert again["code_url"] == native["code_url"]


def test_a_wechat_payment_is_credited_once_however_often_it_is_notified(world):
    placed = order(world, amount="88.00")
    body, headers = wechat_notification(world["keys"], wechat_paid(placed["out_trade_no"], 8800))
    for _ in range(3):
        assert notify_wechat(world, body, headers).status_code == 204
    assert balance(world) == "88.00"
    got = world["client"].get(f"{API}/payments/orders/{placed['out_trade_no']}").json()
    assert got["status"] == "credited" and got["provider_transaction_id"].startswith("4200")
    tb = world["client"].get(f"{API}/ledger/trial-balance").json()
    assert tb["total_debit"] == tb["total_credit"]
    rows = {r["ledger_account"]: r for r in tb["accounts"]}
    assert rows["clearing:wechat"]["debit"] == "88.00"
    # A key being rotated out still verifies.
    body2, headers2 = wechat_notification(world["keys"], wechat_paid(placed["out_trade_no"],
                                                                     8800),
                                          key=world["keys"].wechat_old, serial=OLD_PUB_KEY_ID)
    assert notify_wechat(world, body2, headers2).status_code == 204
    assert balance(world) == "88.00"


def test_a_database_failure_is_answered_so_the_provider_delivers_again(world, monkeypatch):
    """The event store fails while a payment is being credited: WeChat Pay is answered
    500 FAIL and Alipay ``failure`` (each delivers again), nothing is credited, and the
    next deliveries credit once."""
    from eventsourcing.persistence import OperationalError

    wechat = order(world, amount="10.00")
    alipay = order(world, "alipay", "qr", amount="2.50")
    recorder = world["platform"].ledger.recorder
    real_insert = recorder.insert_events

    def down(stored, **kwargs):
        raise OperationalError("connection lost")

    body, headers = wechat_notification(world["keys"], wechat_paid(wechat["out_trade_no"], 1000))
    params = alipay_sign(world["keys"], alipay_params(alipay["out_trade_no"], "2.50"))
    monkeypatch.setattr(recorder, "insert_events", down)
    failed = notify_wechat(world, body, headers)
    assert failed.status_code == 500 and failed.json()["code"] == "FAIL"
    refused = notify_alipay(world, params)
    assert refused.status_code == 500 and refused.text == "failure"
    monkeypatch.setattr(recorder, "insert_events", real_insert)
    assert balance(world) == "0.00"
    assert notify_wechat(world, body, headers).status_code == 204
    assert notify_alipay(world, params).text == "success"
    assert balance(world) == "12.50"


def test_an_alipay_payment_is_credited_once_and_answered_success(world):
    placed = order(world, "alipay", "qr", amount="12.30")
    params = alipay_sign(world["keys"], alipay_params(placed["out_trade_no"], "12.30"))
    for _ in range(2):
        response = notify_alipay(world, params)
        assert response.status_code == 200 and response.text == "success"
    assert balance(world) == "12.30"
    closed = alipay_sign(world["keys"], alipay_params(
        order(world, "alipay", "qr")["out_trade_no"], "88.00", trade_status="TRADE_CLOSED"))
    assert notify_alipay(world, closed).text == "success"


def _wechat_cases(keys):
    """(name, build(out_trade_no, total) -> (body, headers), expected status)."""
    def paid(no, total, **o):
        return wechat_notification(keys, wechat_paid(no, total, **o))

    def flip_body(no, total):
        body, headers = paid(no, total)
        return body.replace(b'"summary": "ok"', b'"summary": "ok!"'), headers

    def reserialised(no, total):
        body, headers = paid(no, total)
        return json.dumps(json.loads(body), indent=2).encode(), headers

    def header(name, value):
        def build(no, total):
            body, headers = paid(no, total)
            return body, {**headers, name: value}
        return build

    def drop(name):
        def build(no, total):
            body, headers = paid(no, total)
            return body, {k: v for k, v in headers.items() if k != name}
        return build

    def bad_tag(no, total):
        body, headers = paid(no, total)
        data = json.loads(body)
        ct = data["resource"]["ciphertext"]
        data["resource"]["ciphertext"] = ct[:-4] + ("AAAA" if ct[-4:] != "AAAA" else "BBBB")
        return _resign(keys, data, headers)

    def resource_edit(**changes):
        def build(no, total):
            body, headers = paid(no, total)
            data = json.loads(body)
            data["resource"].update(changes)
            return _resign(keys, data, headers)
        return build

    def body_edit(**changes):
        def build(no, total):
            body, headers = paid(no, total)
            data = json.loads(body)
            data.update(changes)
            return _resign(keys, data, headers)
        return build

    other_key = keys.alipay  # a real key, but not WeChat Pay's
    return [
        ("flipped byte in body", flip_body, 401),
        ("re-serialised JSON", reserialised, 401),
        ("wrong serial", header("Wechatpay-Serial", "PUB_KEY_ID_9999"), 401),
        ("stale timestamp", lambda no, t: wechat_notification(
            keys, wechat_paid(no, t), timestamp=1_700_000_000), 401),
        ("future timestamp", lambda no, t: wechat_notification(
            keys, wechat_paid(no, t), timestamp=4_100_000_000), 401),
        ("non-numeric timestamp", header("Wechatpay-Timestamp", "yesterday"), 401),
        ("signed by another key", lambda no, t: wechat_notification(
            keys, wechat_paid(no, t), key=other_key), 401),
        ("signature garbage", header("Wechatpay-Signature", "!!!not-base64!!!"), 401),
        ("signature empty", header("Wechatpay-Signature", ""), 401),
        ("unknown signature type", header("Wechatpay-Signature-Type", "HMAC-SHA1"), 401),
        ("nonce changed", header("Wechatpay-Nonce", "different"), 401),
        ("missing serial", drop("Wechatpay-Serial"), 401),
        ("missing signature", drop("Wechatpay-Signature"), 401),
        ("missing timestamp", drop("Wechatpay-Timestamp"), 401),
        ("missing nonce", drop("Wechatpay-Nonce"), 401),
        ("bad GCM tag", bad_tag, 401),
        ("wrong associated data", resource_edit(associated_data="other"), 401),
        ("wrong resource nonce", resource_edit(nonce="000000000000"), 401),
        ("unknown algorithm", resource_edit(algorithm="AES_128_CBC"), 204),
        ("resource missing", body_edit(resource=None), 204),
        ("event type missing", body_edit(event_type=None), 204),
        ("wrong mchid", lambda no, t: paid(no, t, mchid="1900000002"), 204),
        ("wrong appid", lambda no, t: paid(no, t, appid="wx0000000000000002"), 204),
        ("amount one fen short", lambda no, t: paid(no, t - 1), 204),
        ("amount one fen over", lambda no, t: paid(no, t + 1), 204),
        ("amount as a string", lambda no, t: paid(no, t, amount={"total": str(t),
                                                                  "currency": "CNY"}), 204),
        ("currency USD", lambda no, t: paid(no, t, amount={"total": t, "currency": "USD"}),
         204),
        ("amount missing", lambda no, t: paid(no, t, amount={}), 204),
        ("unknown order", lambda no, t: paid("P" + "0" * 31, t), 204),
        ("trade not successful", lambda no, t: paid(no, t, trade_state="NOTPAY"), 204),
        ("out_trade_no missing", lambda no, t: paid(no, t, out_trade_no=None), 204),
    ]


def _resign(keys, data, headers):
    from tests.payment_fakes import rsa_sign

    body = json.dumps(data).encode()
    message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode() + \
        body + b"\n"
    return body, {**headers, "Wechatpay-Signature": rsa_sign(keys.wechat, message)}


def _alipay_cases(keys):
    def signed(no, yuan, **o):
        return alipay_sign(keys, alipay_params(no, yuan, **o))

    def tamper(**o):
        def build(no, yuan):
            return {**signed(no, yuan), **o}
        return build

    return [
        ("changed amount after signing", tamper(total_amount="1.00"), "failure"),
        ("changed order after signing", tamper(out_trade_no="P" + "1" * 31), "failure"),
        ("sign missing", lambda no, y: {k: v for k, v in signed(no, y).items() if k != "sign"},
         "failure"),
        ("sign garbage", tamper(sign="%%%"), "failure"),
        ("signed by another key", lambda no, y: alipay_sign(keys, alipay_params(no, y),
                                                            key=keys.wechat), "failure"),
        ("sign_type RSA", tamper(sign_type="RSA"), "failure"),
        ("blank value dropped after signing", lambda no, y: {
            k: v for k, v in signed(no, y).items() if k != "subject"}, "failure"),
        ("wrong app_id", lambda no, y: signed(no, y, app_id="2021000000000009"), "success"),
        ("wrong seller_id", lambda no, y: signed(no, y, seller_id="2088000000000009"),
         "success"),
        ("amount one fen short", lambda no, y: signed(no, "87.99"), "success"),
        ("amount one fen over", lambda no, y: signed(no, "88.01"), "success"),
        ("amount with three decimals", lambda no, y: signed(no, "88.000"), "success"),
        ("amount not a number", lambda no, y: signed(no, "eighty"), "success"),
        ("unknown order", lambda no, y: signed("P" + "2" * 31, y), "success"),
        ("trade_no missing", lambda no, y: signed(no, y, trade_no=""), "success"),
        ("waiting, not paid", lambda no, y: signed(no, y, trade_status="WAIT_BUYER_PAY"),
         "success"),
    ]


# Signed by WeChat Pay, but the resource does not decrypt: authentic, so recorded, and
# refused so that it is delivered again (the APIv3 key may be being changed).
AUTHENTIC_BUT_UNDECRYPTABLE = {"bad GCM tag", "wrong associated data", "wrong resource nonce"}
NOT_REFUSED = {"trade not successful", "waiting, not paid"}  # authentic, nothing to do


def test_at_least_fifty_kinds_of_bad_notification_never_credit(world):
    """Each is answered as the provider expects and credits nothing; an authentic one is
    recorded for review, one whose signature fails is not."""
    keys = world["keys"]
    wechat_cases, alipay_cases = _wechat_cases(keys), _alipay_cases(keys)
    assert len(wechat_cases) + len(alipay_cases) + 5 >= 50
    for name, build, status in wechat_cases:
        placed = order(world, "wechat", "native", amount="88.00")
        before = rejected(world)
        body, headers = build(placed["out_trade_no"], 8800)
        response = notify_wechat(world, body, headers)
        assert response.status_code == status, (name, response.text)
        if status != 204:
            assert response.json()["code"] == "FAIL", name
        assert balance(world) == "0.00", name
        authentic = status == 204 or name in AUTHENTIC_BUT_UNDECRYPTABLE
        assert rejected(world) == before + (authentic and name not in NOT_REFUSED), name
    for name, build, answer in alipay_cases:
        placed = order(world, "alipay", "qr", amount="88.00")
        before = rejected(world)
        response = notify_alipay(world, build(placed["out_trade_no"], "88.00"))
        assert response.text == answer, (name, response.text)
        assert balance(world) == "0.00", name
        authentic = answer == "success"
        assert rejected(world) == before + (authentic and name not in NOT_REFUSED), name
    before = rejected(world)
    client = world["client"]
    junk = [
        client.post(f"{API}/payments/wechat/notify", content=b"{}", headers={}),
        client.post(f"{API}/payments/wechat/notify", content=b"not json",
                    headers={"Wechatpay-Serial": "x"}),
        client.post(f"{API}/payments/wechat/notify", content=b"x" * 100_000),
        client.post(f"{API}/payments/alipay/notify", content=b"\xff\xfe",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}),
        client.post(f"{API}/payments/alipay/notify", content=b"", headers={}),
    ]
    assert [r.status_code for r in junk] == [401, 401, 413, 401, 401]
    assert junk[3].text == "failure"  # not a form: nothing to verify, refused
    assert balance(world) == "0.00"
    assert rejected(world) == before


def stored_events(world) -> tuple[int, int]:
    """Rows in the stored events table and the bytes of their state."""
    rows = world["platform"].ledger.recorder.select_notifications(start=None, limit=10**9)
    return len(rows), sum(len(row.state) for row in rows)


def test_a_flood_of_forged_notifications_leaves_the_event_log_as_it_was(world, monkeypatch,
                                                                       caplog):
    """Twenty unsigned POSTs to each notification path, each with a 60 KB body and 60 KB
    headers: all refused as a failed signature check (the provider's protocol for it),
    counted, logged in one short line per provider, and not one byte is stored."""
    import logging
    import secrets
    import time

    import api.routes.payments as routes
    from adapters.payments.refusals import UnverifiedNotifications
    from tests.payment_fakes import PUB_KEY_ID

    counter = UnverifiedNotifications()
    monkeypatch.setattr(routes, "unverified_notifications", counter)
    wechat_no = order(world, amount="88.00")["out_trade_no"]
    alipay_no = order(world, "alipay", "qr", amount="88.00")["out_trade_no"]
    big = "A" * 60_000
    before = stored_events(world)
    caplog.set_level(logging.WARNING, logger="prepaid.payments")
    for n in range(20):
        body = json.dumps({"id": f"EV-{n}", "event_type": "TRANSACTION.SUCCESS",
                           "resource": {"algorithm": "AEAD_AES_256_GCM", "nonce": "0" * 12,
                                        "ciphertext": big, "associated_data": ""},
                           "out_trade_no": wechat_no}).encode()
        headers = {"Wechatpay-Serial": PUB_KEY_ID,
                   "Wechatpay-Timestamp": str(int(time.time())),
                   "Wechatpay-Nonce": secrets.token_hex(16), "User-Agent": big,
                   "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                   "Content-Type": "application/json"}
        # Half carry a 60 KB signature, half a plausible one and a 60 KB pad header.
        headers |= {"Wechatpay-Signature": big} if n % 2 else \
            {"Wechatpay-Signature": "QUJD" * 86, "X-Pad": big}
        response = notify_wechat(world, body, headers)
        assert response.status_code == 401 and response.json()["code"] == "FAIL"
        form = alipay_params(alipay_no, "88.00")
        form |= {"sign": big} if n % 2 else {"sign": "QUJD" * 86, "body": big}
        response = world["client"].post(
            f"{API}/payments/alipay/notify", content=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Pad": big,
                     "User-Agent": big})
        assert response.status_code == 401 and response.text == "failure"
    assert stored_events(world) == before
    assert counter.total("wechat") == counter.total("alipay") == 20
    assert counter.snapshot()["wechat"] == {"signature does not verify": 10,
                                            "signature header too long": 10}
    assert counter.snapshot()["alipay"] == {"signature does not verify": 10,
                                            "sign too long": 10}
    lines = [r.getMessage() for r in caplog.records if r.name == "prepaid.payments"]
    assert len(lines) == 2 and all(len(line) < 200 for line in lines), lines
    assert balance(world) == "0.00"
    # A genuine notification still gets through.
    body, headers = wechat_notification(world["keys"], wechat_paid(wechat_no, 8800))
    assert notify_wechat(world, body, headers).status_code == 204
    assert balance(world) == "88.00"


def _recorded_rejections(world, since: int) -> list:
    from domain.payment import RejectedNotification

    ledger = world["platform"].ledger
    rows = ledger.recorder.select_notifications(start=since + 1, limit=10**6)
    return [event for event in map(ledger.mapper.to_domain_event, rows)
            if isinstance(event, RejectedNotification.Recorded)]


def test_an_authentic_notification_for_the_wrong_amount_keeps_only_a_hash_and_an_excerpt(
        world):
    import hashlib

    keys = world["keys"]
    ledger = world["platform"].ledger
    wechat_no = order(world, amount="88.00")["out_trade_no"]
    alipay_no = order(world, "alipay", "qr", amount="88.00")["out_trade_no"]
    start = ledger.recorder.max_notification_id() or 0
    body, headers = wechat_notification(keys, wechat_paid(wechat_no, 8700,
                                                          attach="x" * 40_000))
    assert len(body) > 50_000
    assert notify_wechat(world, body, headers).status_code == 204  # stop: never credited
    world["platform"].settings.notification_excerpt_bytes = 512
    form = alipay_sign(keys, alipay_params(alipay_no, "87.99", body="茶" * 6_000))
    raw = urlencode(form).encode()
    assert notify_alipay(world, form).text == "success"
    assert balance(world) == "0.00"
    wechat, alipay = _recorded_rejections(world, start)
    assert (wechat.provider, alipay.provider) == ("wechat", "alipay")
    assert wechat.reason.startswith("payment-mismatch")
    assert wechat.body_sha256 == hashlib.sha256(body).hexdigest()
    assert wechat.body_bytes == len(body)
    assert wechat.body_excerpt == body[:2048].decode()
    assert alipay.body_sha256 == hashlib.sha256(raw).hexdigest()
    assert alipay.body_bytes == len(raw) and len(alipay.body_excerpt.encode()) <= 512 + 3
    assert raw.decode().startswith(alipay.body_excerpt.rstrip("\ufffd"))
    assert set(wechat.headers) <= {"wechatpay-serial", "wechatpay-timestamp",
                                   "wechatpay-nonce", "wechatpay-signature-type",
                                   "wechatpay-signature", "content-type", "user-agent"}
    stored = ledger.recorder.select_notifications(start=start + 1, limit=10**6)
    assert sum(len(row.state) for row in stored) < 8_000, "the bodies were not kept"


def test_a_rejected_notification_stored_by_an_older_version_still_reads():
    """Version 1 of ``RejectedNotification.Recorded`` held the whole body as
    ``raw_body``; it is read as version 2 with that text as the excerpt."""
    from datetime import datetime, timezone

    from eventsourcing.persistence import (
        DatetimeAsISO,
        JSONTranscoder,
        Mapper,
        StoredEvent,
        UUIDAsHex,
    )

    from domain.payment import RejectedNotification

    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    at = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
    v1 = {"timestamp": at, "originator_topic": "domain.payment:RejectedNotification",
          "provider": "alipay", "reason": "signature does not verify",
          "headers": {"content-type": "application/x-www-form-urlencoded"},
          "raw_body": "sign=x&out_trade_no=P1", "received_at": at}
    stored = StoredEvent(originator_id=uuid.uuid4(), originator_version=1,
                         topic="domain.payment:RejectedNotification.Recorded",
                         state=transcoder.encode(v1))
    event = Mapper(transcoder=transcoder).to_domain_event(stored)
    assert isinstance(event, RejectedNotification.Recorded)
    assert (event.body_excerpt, event.body_sha256, event.body_bytes) == (
        "sign=x&out_trade_no=P1", None, None)
    incident = event.mutate(None)
    assert (incident.provider, incident.reason) == ("alipay", "signature does not verify")


def test_unpaid_orders_are_asked_about_and_expired_ones_closed(world):
    platform, clock, fake = world["platform"], world["clock"], world["fake"]
    paid = order(world, "wechat", "native", amount="10.00")
    paid_ali = order(world, "alipay", "qr", amount="20.00")
    never = order(world, "wechat", "native", amount="30.00")
    fake.pay(paid["out_trade_no"])
    fake.pay(paid_ali["out_trade_no"])
    clock.advance(minutes=10)
    platform.catch_up()
    counts = platform.ledger.payments.sync_payment_orders(platform.payment_queries.pending())
    assert counts["credited"] == 2
    assert balance(world) == "30.00"
    clock.advance(minutes=30)
    platform.catch_up()
    counts = platform.ledger.payments.sync_payment_orders(platform.payment_queries.pending())
    assert counts["closed"] == 1
    assert world["client"].get(f"{API}/payments/orders/{never['out_trade_no']}").json()[
        "status"] == "closed"
    assert fake.orders[never["out_trade_no"]]["state"] == "CLOSED"


def test_a_refund_holds_the_money_then_posts_it_or_releases_it(world):
    placed = order(world, amount="50.00")
    body, headers = wechat_notification(world["keys"], wechat_paid(placed["out_trade_no"], 5000))
    assert notify_wechat(world, body, headers).status_code == 204
    world["fake"].refund_outcome = "PROCESSING"
    response = world["client"].post(f"{API}/payments/orders/{placed['out_trade_no']}/refunds",
                                    json={"amount": "20.00", "reason": "moving out"},
                                    headers={"Idempotency-Key": "refund-1"})
    assert response.status_code == 201, response.text
    assert response.json()["refunds"][0]["status"] == "pending"
    account = world["client"].get(f"{API}/accounts/{world['account']}").json()
    assert account["balance"] == "50.00" and account["available"]["electricity"] == "30.00"
    counter = world["client"].post(f"{API}/accounts/{world['account']}/refunds",
                                   json={"amount": "30.01", "channel": "cash"},
                                   headers={"Idempotency-Key": "cash-1"})
    assert counter.status_code == 409  # the held 20.00 cannot be refunded twice
    world["fake"].refund_outcome = "SUCCESS"
    world["fake"].refunds[next(iter(world["fake"].refunds))]["status"] = "SUCCESS"
    platform = world["platform"]
    platform.catch_up()
    platform.ledger.payments.sync_payment_orders(platform.payment_queries.pending())
    assert balance(world) == "30.00"
    got = world["client"].get(f"{API}/payments/orders/{placed['out_trade_no']}").json()
    assert got["status"] == "refunded" and got["refunds"][0]["status"] == "succeeded"

    world["fake"].refund_outcome = "ABNORMAL"
    failed = world["client"].post(f"{API}/payments/orders/{placed['out_trade_no']}/refunds",
                                  json={"amount": "10.00"},
                                  headers={"Idempotency-Key": "refund-2"})
    assert failed.json()["refunds"][1]["status"] == "failed"
    account = world["client"].get(f"{API}/accounts/{world['account']}").json()
    assert account["balance"] == "30.00" and account["available"]["electricity"] == "30.00"


def test_an_unconfigured_channel_is_a_clear_503(make_settings, backend, monkeypatch):
    for name in ("WECHATPAY_MCHID", "ALIPAY_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    platform = Platform(make_settings(backend))
    try:
        with TestClient(create_app(platform, background=False),
                        headers=login(platform)) as client:
            account = client.post(f"{API}/accounts", json={"name": "x"}).json()["id"]
            response = client.post(f"{API}/payments/orders", json={
                "account_id": account, "amount": "1.00", "channel": "wechat",
                "scene": "native"})
            assert response.status_code == 503
            assert response.headers["content-type"].startswith("application/problem+json")
            assert client.post(f"{API}/payments/wechat/notify", content=b"{}").status_code \
                == 503
    finally:
        platform.close()


@pytest.mark.parametrize("backend", ["postgres"])
def test_replay_harness_over_concurrent_http(world):
    """1,000 paid orders, each notified 1 to 5 times in random order; a fifth of them
    20 times at once: exactly one credit per order, none lost, trial balance zero."""
    platform, keys = world["platform"], world["keys"]
    rng = random.Random(7)
    orders = []
    for n in range(1000):
        channel = "wechat" if n % 2 else "alipay"
        fen = rng.randint(100, 50_000)
        created = platform.ledger.payments.create_payment_order(
            account_id=uuid.UUID(world["account"]), amount_fen=fen, channel=channel,
            scene="native" if channel == "wechat" else "qr", wallet="electricity",
            payer_openid=None, actor={}, idempotency_key=f"harness-{n}")
        orders.append((created.out_trade_no, channel, fen))
    deliveries = []
    burst = set(rng.sample(range(1000), 200))
    for index, (no, channel, fen) in enumerate(orders):
        if channel == "wechat":
            body, headers = wechat_notification(keys, wechat_paid(no, fen))
            request = ("wechat", body, headers)
        else:
            params = alipay_sign(keys, alipay_params(no, f"{fen // 100}.{fen % 100:02d}"))
            request = ("alipay", urlencode(params).encode(),
                       {"Content-Type": "application/x-www-form-urlencoded"})
        copies = 20 if index in burst else rng.randint(1, 5)
        deliveries += [request] * copies
    rng.shuffle(deliveries)
    port = free_port()
    server, thread = serve_in_thread(create_app(platform, background=False), port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", timeout=30) as http:
            def deliver(request):
                channel, body, headers = request
                response = http.post(f"/payments/{channel}/notify", content=body,
                                     headers=headers)
                return response.status_code, response.text

            with ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(deliver, deliveries))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    # A provider delivers again what was not acknowledged; do the same here.
    retries = 0
    while any(status not in (200, 204) for status, _ in answers) and retries < 5:
        retries += 1
        again = [d for d, (status, _) in zip(deliveries, answers) if status not in (200, 204)]
        server, thread = serve_in_thread(create_app(platform, background=False), port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", timeout=30) as http:
                redone = [http.post(f"/payments/{c}/notify", content=b, headers=h)
                          for c, b, h in again]
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        answers = [(r.status_code, r.text) for r in redone]
        deliveries = again
    assert all(status in (200, 204) for status, _ in answers), \
        sorted({status for status, _ in answers})
    assert all(text == "success" for status, text in answers if status == 200)
    total = sum(fen for _, _, fen in orders)
    assert platform.ledger.accounts.get_account(uuid.UUID(world["account"])).balance_fen(
        "electricity") == total
    platform.catch_up()
    rows = platform.queries.trial_balance()
    assert sum(r["debit_fen"] for r in rows) == sum(r["credit_fen"] for r in rows)
    statement = platform.queries.statement(world["account"], limit=5000, cursor=None)
    assert len(statement.items) == 1000  # one credit per order


def test_reconciliation_of_both_providers_bills(world):
    keys, client = world["keys"], world["client"]
    matched = order(world, "wechat", "native", amount="10.00")
    differs = order(world, "wechat", "native", amount="20.00")
    not_on_bill = order(world, "wechat", "native", amount="30.00")
    for placed, fen in ((matched, 1000), (differs, 2000), (not_on_bill, 3000)):
        body, headers = wechat_notification(keys, wechat_paid(placed["out_trade_no"], fen))
        assert notify_wechat(world, body, headers).status_code == 204
    header = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
              "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
              "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
              "费率备注")

    def row(no, yuan, status="SUCCESS", refund="0.00"):
        values = ["2026-03-01 10:00:00", APPID, MCHID, "0", "", "4200" + no[-24:], no,
                  "o-test", "NATIVE", status, "OTHERS", "CNY", yuan, "0.00", "", "", refund,
                  "0.00", "", "", "prepaid", "", "0.06", "0.60%", yuan, "0.00", ""]
        return ",".join("`" + v for v in values)

    bill = "\n".join([header, row(matched["out_trade_no"], "10.00"),
                      row(differs["out_trade_no"], "20.01"),
                      row("P" + "9" * 31, "5.00"),
                      row(matched["out_trade_no"], "10.00", status="REFUND", refund="1.00"),
                      "总交易单数,应结订单总金额,退款总金额", "`4,`35.01,`1.00"]).encode()
    response = client.post(f"{API}/payments/reconciliations", params={"channel": "wechat"},
                           content=bill, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["matched"], body["amount_differs"], body["paid_not_credited"],
            body["credited_unknown_to_provider"], body["bill_refunds"]) == (1, 1, 1, 1, 1)
    by_category = {item["category"]: item["out_trade_no"] for item in body["items"]}
    assert by_category["credited_unknown_to_provider"] == not_on_bill["out_trade_no"]
    csv_report = client.post(f"{API}/payments/reconciliations",
                             params={"channel": "wechat", "format": "csv"}, content=bill)
    assert csv_report.text.splitlines()[0].startswith("category,out_trade_no")

    ali = order(world, "alipay", "qr", amount="12.00")
    assert notify_alipay(world, alipay_sign(keys, alipay_params(ali["out_trade_no"],
                                                                 "12.00"))).text == "success"
    alipay_bill = ("#支付宝账务明细查询\n#账号：[20880000000000010156]\n"
                   "账务流水号,业务流水号,商户订单号,商品名称,发生时间,对方账号,收入金额（+元）,"
                   "支出金额（-元）,账户余额（元）,交易渠道,业务类型,备注\n"
                   f"2026030100001,2026{ali['out_trade_no'][-20:]},{ali['out_trade_no']},prepaid,"
                   "2026-03-01 10:00:00,buyer,12.00,0.00,12.00,支付宝,在线支付,\n"
                   "2026030100002,,,,2026-03-01 10:00:00,alipay,0.00,-0.07,11.93,支付宝,"
                   "交易服务费,\n#导出时间：[2026-03-02 00:00:00]\n").encode("gb18030")
    response = client.post(f"{API}/payments/reconciliations", params={"channel": "alipay"},
                           content=alipay_bill)
    assert response.status_code == 200, response.text
    assert response.json()["matched"] == 1 and response.json()["paid_not_credited"] == 0
    bad = client.post(f"{API}/payments/reconciliations", params={"channel": "wechat"},
                      content=b"not,a,bill\n1,2,3")
    assert bad.status_code == 422


# -- the providers' own SDKs check what the platform sends and what the fake answers --------

def _alipay_requests_sent(world) -> list[dict[str, str]]:
    """Every kind of request the platform sends to Alipay, as the gateway received it
    (precreate, query, close, refund, refund query) or as the buyer's browser would
    (page and wap pay URLs)."""
    from datetime import timedelta
    from urllib.parse import parse_qsl, urlsplit

    alipay, fake = world["platform"].ledger.payment_providers["alipay"], world["fake"]
    expires = world["clock"]() + timedelta(minutes=30)
    urls = []
    for scene in ("qr", "page", "wap"):
        reply = alipay.create(out_trade_no=f"P{scene.upper():0>31}", amount_fen=8800,
                              description="Prepaid electricity 茶馆 & Co", scene=scene,
                              payer_openid=None, expires_at=expires)
        urls += [reply["pay_url"]] if "pay_url" in reply else []
    no = "P" + "QR".rjust(31, "0")
    fake.pay(no)
    assert alipay.query(no).paid
    alipay.close(no)
    assert alipay.refund(out_trade_no=no, out_refund_no="R" + "1" * 31, amount_fen=100,
                         total_fen=8800, reason=None).status == "succeeded"
    assert alipay.query_refund("R" + "1" * 31, out_trade_no=no).status == "succeeded"
    sent = list(fake.alipay_requests)
    for url in urls:
        assert url.startswith(f"{fake.base}/alipay/gateway.do?")
        sent.append(dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)))
    return sent


def test_alipay_requests_verify_with_alipays_own_sdk(world):
    """Alipay's published Python SDK (``alipay-sdk-python``) builds the string to sign
    for requests with ``sign_type`` in it; every request the platform sends verifies
    against that string with the app's public key."""
    from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa

    sent = _alipay_requests_sent(world)
    assert sorted(p["method"] for p in sent) == sorted([
        "alipay.trade.precreate", "alipay.trade.query", "alipay.trade.close",
        "alipay.trade.refund", "alipay.trade.fastpay.refund.query",
        "alipay.trade.page.pay", "alipay.trade.wap.pay"])
    app_public = world["keys"].alipay_app.public_key().export_key().decode()
    for params in sent:
        assert params["sign_type"] == "RSA2" and all(params.values()), params
        unsigned = {k: v for k, v in params.items() if k != "sign"}
        # rsa.verify raises VerificationError when the signature does not match.
        assert verify_with_rsa(app_public, get_sign_content(unsigned).encode(),
                               params["sign"]), params["method"]
    assert world["fake"].refused == 0
    refund_query = next(p for p in sent if p["method"] == "alipay.trade.fastpay.refund.query")
    assert json.loads(refund_query["biz_content"])["out_trade_no"] == "P" + "QR".rjust(31, "0")


def test_the_fake_alipay_gateway_agrees_with_alipays_own_sdk(world):
    """The fake gateway accepts a request signed by Alipay's SDK and refuses it once a
    signed parameter changes; the SDK accepts the fake's signed answers. So the fake that
    the other tests use checks what the real gateway checks."""
    from urllib.parse import parse_qsl, urlsplit

    from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
    from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
    from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest

    keys, fake = world["keys"], world["fake"]
    config = AlipayClientConfig()
    config.server_url = f"{fake.base}/alipay/gateway.do"
    config.app_id = "2021000000000001"
    config.app_private_key = keys.alipay_app.export_key().decode()
    config.alipay_public_key = keys.alipay.public_key().export_key().decode()
    client = DefaultAlipayClient(config)
    request = AlipayTradeQueryRequest()
    request.biz_content = {"out_trade_no": "P" + "7" * 31}
    url = client.page_execute(request, http_method="GET")
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    answer = httpx.post(config.server_url, data=params)
    assert fake.refused == 0, answer.text
    node = client._DefaultAlipayClient__parse_response(answer.content)  # verifies `sign`
    assert json.loads(node)["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    for changed in ({"sign_type": "RSA"}, {"timestamp": "2020-01-01 00:00:00"}):
        httpx.post(config.server_url, data={**params, **changed})
    assert fake.refused == 2


def _wechat_sdk_core(keys):
    from wechatpayv3.core import Core

    from tests.payment_fakes import CERT_SERIAL, PUB_KEY_ID

    return Core(mchid=MCHID, cert_serial_no=CERT_SERIAL,
                private_key=keys.merchant.export_key(pkcs=8).decode(),
                apiv3_key=keys.apiv3.decode(),
                public_key=keys.wechat.public_key().export_key().decode(),
                public_key_id=PUB_KEY_ID)


def test_wechat_requests_match_the_wechatpayv3_sdk(world, monkeypatch):
    """For every request the platform sends to WeChat Pay, the ``wechatpayv3`` SDK,
    given the same nonce and timestamp, builds the same Authorization header (PKCS#1
    v1.5 signatures are deterministic, so this checks the message and the signature)."""
    from datetime import timedelta
    from types import SimpleNamespace

    import wechatpayv3.utils as sdk

    from tests.payment_fakes import CERT_SERIAL

    wechat, fake = world["platform"].ledger.payment_providers["wechat"], world["fake"]
    expires = world["clock"]() + timedelta(minutes=30)
    no = "P" + "W".rjust(31, "0")
    wechat.create(out_trade_no=no, amount_fen=8800, description="Prepaid 茶馆",
                  scene="native", payer_openid=None, expires_at=expires)
    wechat.create(out_trade_no=no[:-1] + "J", amount_fen=100, description="x",
                  scene="jsapi", payer_openid="o-abc", expires_at=expires)
    fake.pay(no)
    assert wechat.query(no).paid
    wechat.close(no[:-1] + "J")
    wechat.refund(out_trade_no=no, out_refund_no="R" + "2" * 31, amount_fen=100,
                  total_fen=8800, reason="moving out")
    wechat.query_refund("R" + "2" * 31)
    assert fake.refused == 0
    assert [m for m, *_ in fake.wechat_requests] == ["POST", "POST", "GET", "POST", "POST",
                                                     "GET"]
    private_key = sdk.load_private_key(world["keys"].merchant.export_key(pkcs=8).decode())
    for method, path, body, authorization in fake.wechat_requests:
        fields = dict(part.split("=", 1) for part in
                      authorization.removeprefix("WECHATPAY2-SHA256-RSA2048 ").split(","))
        timestamp, nonce = fields["timestamp"].strip('"'), fields["nonce_str"].strip('"')
        monkeypatch.setattr(sdk, "time", SimpleNamespace(time=lambda t=timestamp: float(t)))
        expected = sdk.build_authorization(path, method, MCHID, CERT_SERIAL, private_key,
                                           data=body.decode() or None, nonce_str=nonce)
        assert authorization == expected, (method, path)


def test_wechat_answers_and_notifications_verify_with_the_wechatpayv3_sdk(world):
    """The SDK and the platform agree on what is authentic. The SDK's own requests pass
    the fake's check and the fake's signed answers pass the SDK's; notifications the SDK
    accepts and decrypts are credited by the platform, those it refuses are refused; a
    resource encrypted with another AES-GCM implementation (``cryptography``) decrypts."""
    import base64
    import secrets

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from tests.payment_fakes import rsa_sign

    keys, fake = world["keys"], world["fake"]
    core = _wechat_sdk_core(keys)
    core._gate_way = fake.base
    no = order(world, amount="10.00")["out_trade_no"]
    code, text = core.request(f"/v3/pay/transactions/out-trade-no/{no}?mchid={MCHID}")
    assert code == 200 and json.loads(text)["out_trade_no"] == no  # answer verified
    assert fake.refused == 0  # the SDK's request passed the fake's check

    body, headers = wechat_notification(keys, wechat_paid(no, 1000))
    assert json.loads(core.decrypt_callback(headers, body)) == wechat_paid(no, 1000)
    tampered = body.replace(b'"summary": "ok"', b'"summary": "ok."')
    assert core.decrypt_callback(headers, tampered) is None
    assert notify_wechat(world, tampered, headers).status_code == 401
    other = wechat_notification(keys, wechat_paid(no, 1000), key=keys.alipay)
    assert core.decrypt_callback(other[1], other[0]) is None
    assert notify_wechat(world, other[0], other[1]).status_code == 401
    assert balance(world) == "0.00"
    assert notify_wechat(world, body, headers).status_code == 204
    assert balance(world) == "10.00"

    second = order(world, amount="20.00")["out_trade_no"]
    nonce, associated = secrets.token_hex(6), "transaction"
    sealed = AESGCM(keys.apiv3).encrypt(nonce.encode(),
                                        json.dumps(wechat_paid(second, 2000)).encode(),
                                        associated.encode())
    resource = {"algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(sealed).decode(), "nonce": nonce,
                "associated_data": associated, "original_type": "transaction"}
    raw = json.dumps({"id": "EV-1", "create_time": "2026-03-01T10:00:01+08:00",
                      "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                      "summary": "ok", "resource": resource}).encode()
    stamp, nonce_str = headers["Wechatpay-Timestamp"], secrets.token_hex(16)
    signed = {**headers, "Wechatpay-Nonce": nonce_str, "Wechatpay-Signature": rsa_sign(
        keys.wechat, f"{stamp}\n{nonce_str}\n".encode() + raw + b"\n")}
    assert core.decrypt_callback(signed, raw) is not None
    assert notify_wechat(world, raw, signed).status_code == 204
    assert balance(world) == "30.00"
