"""Logins, API keys, scoping to sites and tenants, second-person approvals, the audit log
and the hash chain over the event log."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from adapters.auth import SecretFileExposed
from bootstrap import Platform
from api.app import create_app
from api.cli import main as prepaid
from ledger.chain import verify_chain
from ledger.config import Settings
from projections.access.tables import platform_secrets
from tests.conftest import ADMIN, ADMIN_PASSWORD, FrozenClock, login

API = "/api/v1"


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def as_(platform: Platform, username: str, roles=("finance",), **grant) -> TestClient:
    headers = login(platform, username, f"{username}-password", roles=roles, **grant)
    return TestClient(create_app(platform, background=False), headers=headers)


@pytest.fixture
def world(backend, make_settings):
    """Two sites with an account each; approvals on, as in production."""
    platform = Platform(make_settings(backend, approvals_required=(
        "keep_power,reversal,adjustment,refund")), clock=FrozenClock())
    admin = TestClient(create_app(platform, background=False), headers=login(platform))
    sites = [admin.post(f"{API}/sites", json={"name": name}).json()["id"]
             for name in ("North Tower", "South Mall")]
    accounts = [admin.post(f"{API}/accounts", json={"name": f"Shop {n}", "site_id": site})
                .json()["id"] for n, site in enumerate(sites)]
    for account in accounts:
        assert admin.post(f"{API}/accounts/{account}/top-ups",
                          json={"amount": "100.00", "channel": "cash"},
                          headers=key()).status_code == 201
    yield {"platform": platform, "admin": admin, "sites": sites, "accounts": accounts}
    platform.close()


def balance(client: TestClient, account: str) -> str:
    return client.get(f"{API}/accounts/{account}").json()["balance"]


def log_position(platform: Platform) -> int:
    return platform.ledger.recorder.max_notification_id() or 0


# -- logging in ------------------------------------------------------------------------------

def test_password_login_token_and_what_it_opens(world):
    platform = world["platform"]
    login(platform, "cashier", "cashier-password", roles=("finance",))
    anonymous = TestClient(create_app(platform, background=False))
    assert anonymous.get(f"{API}/accounts").status_code == 401
    assert anonymous.get(f"{API}/accounts").headers["content-type"].startswith(
        "application/problem+json")
    wrong = anonymous.post(f"{API}/auth/token",
                           data={"username": "cashier", "password": "not-it"})
    assert wrong.status_code == 401
    unknown = anonymous.post(f"{API}/auth/token",
                             data={"username": "nobody", "password": "whatever1"})
    assert unknown.status_code == 401
    good = anonymous.post(f"{API}/auth/token",
                          data={"username": "cashier", "password": "cashier-password"})
    assert good.status_code == 200 and good.json()["token_type"] == "bearer"
    bearer = {"Authorization": f"Bearer {good.json()['access_token']}"}
    me = anonymous.get(f"{API}/me", headers=bearer).json()
    assert me["name"] == "cashier" and me["roles"] == ["finance"]
    assert "money.top_up" in me["permissions"] and "operators.manage" not in me["permissions"]
    # A token with one character changed is no token.
    forged = bearer["Authorization"][:-2] + ("A" if bearer["Authorization"][-2] != "A" else "B") \
        + bearer["Authorization"][-1]
    assert anonymous.get(f"{API}/me", headers={"Authorization": forged}).status_code == 401
    # Deactivating the login closes its live token at once.
    operator_id = me["id"]
    assert world["admin"].patch(f"{API}/operators/{operator_id}",
                                json={"active": False}).status_code == 200
    assert anonymous.get(f"{API}/me", headers=bearer).status_code == 401
    assert anonymous.post(f"{API}/auth/token", data={
        "username": "cashier", "password": "cashier-password"}).status_code == 401


def test_tokens_expire(backend, make_settings):
    platform = Platform(make_settings(backend, access_token_minutes=0))
    try:
        headers = login(platform)
        client = TestClient(create_app(platform, background=False))
        answer = client.get(f"{API}/me", headers=headers)
        assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    finally:
        platform.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_repeated_failures_lock_the_login_for_a_while(make_settings, backend):
    platform = Platform(make_settings(backend, login_max_failures=3, login_lockout_s=1))
    try:
        login(platform, "clerk", "clerk-password", roles=("finance",))
        client = TestClient(create_app(platform, background=False))
        form = {"username": "clerk", "password": "guess-1234"}
        assert [client.post(f"{API}/auth/token", data=form).status_code
                for _ in range(3)] == [401, 401, 401]
        right = {"username": "clerk", "password": "clerk-password"}
        locked = client.post(f"{API}/auth/token", data=right)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
        time.sleep(1.2)
        assert client.post(f"{API}/auth/token", data=right).status_code == 200
    finally:
        platform.close()


def test_api_keys_work_until_revoked_and_are_never_shown_again(world):
    admin, platform = world["admin"], world["platform"]
    issued = admin.post(f"{API}/api-keys", json={"name": "meter collector",
                                                 "roles": ["auditor"]})
    assert issued.status_code == 201
    presented = issued.json()["key"]
    client = TestClient(create_app(platform, background=False))
    assert client.get(f"{API}/ledger/trial-balance",
                      headers={"X-API-Key": presented}).status_code == 200
    # Read-only: the auditor key cannot sell credit.
    assert client.post(f"{API}/accounts/{world['accounts'][0]}/top-ups",
                       json={"amount": "1.00", "channel": "cash"},
                       headers={"X-API-Key": presented, **key()}).status_code == 403
    listed = admin.get(f"{API}/api-keys").json()["items"]
    assert [k["name"] for k in listed] == ["meter collector"]
    assert presented not in str(listed) and presented.split("_")[-1] not in str(listed)
    assert client.get(f"{API}/me", headers={"X-API-Key": presented + "x"}).status_code == 401
    assert admin.delete(f"{API}/api-keys/{issued.json()['id']}").status_code == 200
    assert client.get(f"{API}/me", headers={"X-API-Key": presented}).status_code == 401


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_database_and_its_folder_are_readable_by_their_owner_only(tmp_path, backend):
    folder = tmp_path / "var"
    old_umask = os.umask(0o022)  # the usual default: files 0644, folders 0755
    try:
        platform = Platform(Settings(database_url=f"sqlite:///{folder}/prepaid.db",
                                     auto_migrate=True, argon2_time_cost=1,
                                     argon2_memory_kib=1024))
        try:
            login(platform)  # writes events, read models and the signing key
            assert _mode(folder) == 0o700
            assert _mode(folder / "prepaid.db") == 0o600
            side_files = [p for p in folder.iterdir() if p.name != "prepaid.db"]
            assert any(p.name.endswith("-wal") for p in side_files)
            assert all(_mode(p) == 0o600 for p in side_files), \
                [(p.name, oct(_mode(p))) for p in side_files]
        finally:
            platform.close()
        # A database left readable by an older version is narrowed at the next start.
        os.chmod(folder / "prepaid.db", 0o644)
        Platform(Settings(database_url=f"sqlite:///{folder}/prepaid.db",
                          auto_migrate=True)).close()
        assert _mode(folder / "prepaid.db") == 0o600
    finally:
        os.umask(old_umask)


def _stolen_key(platform: Platform) -> str:
    """What a local user who could read the database file would take."""
    with platform.engines.reader.connect() as conn:
        return conn.execute(select(platform_secrets.c.value)).scalar_one()


def test_a_token_signed_with_the_real_key_is_refused_unless_its_times_are_right(world):
    platform = world["platform"]
    me = world["admin"].get(f"{API}/me").json()
    key = _stolen_key(platform)
    now = int(time.time())
    client = TestClient(create_app(platform, background=False))

    def answer(**claims) -> int:
        token = jwt.encode({"sub": me["id"], "cv": 10**6, **claims}, key, algorithm="HS256")
        return client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}
                          ).status_code

    ten_years = 10 * 366 * 86400
    assert answer(iat=now, exp=now + ten_years) == 401
    assert answer(exp=now + 600) == 401                       # no iat
    assert answer(iat=now + 3600, exp=now + 3700) == 401      # issued in the future
    assert answer(iat=now - ten_years, exp=now + 600) == 401  # lifetime too long
    # The same key and a lifetime within the configured 30 minutes is a token.
    assert answer(iat=now, exp=now + 1800) == 200
    assert answer(iat=now + 5, exp=now + 1805) == 200         # within the clock skew


@pytest.mark.parametrize("backend", ["sqlite"])
def test_key_files_other_users_may_read_are_warned_about_or_refused(
        make_settings, backend, tmp_path, caplog, monkeypatch):
    master = tmp_path / "master.key"
    master.write_text("00112233445566778899aabbccddeeff\n")  # test fixture only
    signing = tmp_path / "jwt.key"
    signing.write_text("a-test-signing-key-that-is-long-enough\n")  # test fixture only
    alipay = tmp_path / "alipay-app-private.pem"
    alipay.write_text("not a real key\n")  # test fixture only
    monkeypatch.setenv("ALIPAY_APP_PRIVATE_KEY_PATH", str(alipay))
    for path in (master, signing, alipay):
        os.chmod(path, 0o644)
    files = {"master_key_file": str(master), "jwt_secret_file": str(signing)}
    with caplog.at_level(logging.WARNING):
        Platform(make_settings(backend, **files)).close()
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for path in (master, signing, alipay):
        assert any(str(path) in m and "0644" in m for m in warned), (path, warned)
    with pytest.raises(SecretFileExposed, match="chmod 600"):
        Platform(make_settings(backend, refuse_exposed_secrets=True, **files))
    for path in (master, signing, alipay):
        os.chmod(path, 0o600)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Platform(make_settings(backend, refuse_exposed_secrets=True, **files)).close()
    assert not [r for r in caplog.records if "SECURITY" in r.getMessage()]


def _token(client: TestClient, username: str, password: str) -> dict[str, str]:
    answer = client.post(f"{API}/auth/token", data={"username": username,
                                                   "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_tokens_from_before_a_password_change_or_reactivation_are_refused(world):
    platform, admin = world["platform"], world["admin"]
    client = TestClient(create_app(platform, background=False))
    created = admin.post(f"{API}/operators", json={
        "username": "teller", "password": "first-teller-pass", "roles": ["finance"]})
    assert created.status_code == 201
    operator = f"{API}/operators/{created.json()['id']}"
    old = _token(client, "teller", "first-teller-pass")
    assert client.get(f"{API}/me", headers=old).status_code == 200
    assert admin.patch(operator, json={"password": "second-teller-pass"}).status_code == 200
    assert client.get(f"{API}/me", headers=old).status_code == 401
    # Issued right after the change, in the same second: it works.
    new = _token(client, "teller", "second-teller-pass")
    assert client.get(f"{API}/me", headers=new).status_code == 200
    # A change of roles does not close the session (the roles are read on each request).
    assert admin.patch(operator, json={"roles": ["auditor"]}).status_code == 200
    assert client.get(f"{API}/me", headers=new).json()["roles"] == ["auditor"]
    # Deactivated and reactivated: the token from before stays closed.
    assert admin.patch(operator, json={"active": False}).status_code == 200
    assert admin.patch(operator, json={"active": True}).status_code == 200
    assert client.get(f"{API}/me", headers=new).status_code == 401
    again = _token(client, "teller", "second-teller-pass")
    assert client.get(f"{API}/me", headers=again).status_code == 200


def test_a_concurrent_burst_of_logins_checks_no_more_passwords_than_the_limit(
        backend, make_settings):
    # A slower hash, as in production, widens the window a burst could slip through.
    platform = Platform(make_settings(backend, argon2_time_cost=2, argon2_memory_kib=8192,
                                      login_max_failures=5, login_max_failures_per_user=9,
                                      login_lockout_s=300))
    try:
        login(platform, "clerk", "clerk-password", roles=("operator",))
        checked = []

        class CountingHasher(PasswordHasher):  # the real argon2 check, counted
            def verify(self, *args):
                checked.append(1)
                return super().verify(*args)

        platform.auth.hasher = CountingHasher(time_cost=2, memory_cost=8192)
        app = create_app(platform, background=False)
        wrong = {"username": "clerk", "password": "guess-1234"}
        right = {"username": "clerk", "password": "clerk-password"}
        answers: list[int] = []
        half_done = threading.Event()
        start = threading.Barrier(60)

        with TestClient(app, client=("10.0.0.1", 40000)) as attacker:
            def attempt() -> None:
                start.wait()
                answers.append(attacker.post(f"{API}/auth/token", data=wrong).status_code)
                if len(answers) >= 30:
                    half_done.set()

            threads = [threading.Thread(target=attempt) for _ in range(60)]
            for thread in threads:
                thread.start()
            assert half_done.wait(60)
            mid_burst = attacker.post(f"{API}/auth/token", data=right)
            for thread in threads:
                thread.join()
        assert mid_burst.status_code == 429 and int(mid_burst.headers["Retry-After"]) > 0
        assert sorted(set(answers)) == [401, 429] and answers.count(401) <= 5
        assert len(checked) <= 5, len(checked)
        # From another address the user still gets in ...
        with TestClient(app, client=("10.0.0.2", 40000)) as office:
            assert office.post(f"{API}/auth/token", data=right).status_code == 200
        # ... until failures from everywhere reach the slower limit for the username.
        for n in range(3, 7):
            with TestClient(app, client=(f"10.0.0.{n}", 40000)) as other:
                other.post(f"{API}/auth/token", data=wrong)
        with TestClient(app, client=("10.0.0.99", 40000)) as office:
            assert office.post(f"{API}/auth/token", data=right).status_code == 429
    finally:
        platform.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_one_address_cannot_try_many_usernames(make_settings, backend):
    platform = Platform(make_settings(backend, login_max_failures_per_address=4))
    try:
        login(platform, "clerk", "clerk-password", roles=("operator",))
        app = create_app(platform, background=False)
        with TestClient(app, client=("10.0.0.1", 40000)) as sprayer:
            codes = [sprayer.post(f"{API}/auth/token", data={
                "username": name, "password": "guess-1234"}).status_code
                for name in ("admin", "root", "finance", "clerk", "ops", "test")]
            assert codes == [401, 401, 401, 401, 429, 429]
            assert sprayer.post(f"{API}/auth/token", data={
                "username": "clerk", "password": "clerk-password"}).status_code == 429
        with TestClient(app, client=("10.0.0.2", 40000)) as office:
            assert office.post(f"{API}/auth/token", data={
                "username": "clerk", "password": "clerk-password"}).status_code == 200
    finally:
        platform.close()


def test_weak_passwords_are_refused_with_the_reason(world):
    admin = world["admin"]
    for weak in ("password", "12345678", "Password1!"):
        answer = admin.post(f"{API}/operators", json={
            "username": "weak", "password": weak, "roles": ["auditor"]})
        assert answer.status_code == 422, (weak, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"] == "/problems/weak-password"
    assert "common" in admin.post(f"{API}/operators", json={
        "username": "weak", "password": "password", "roles": ["auditor"]}).json()["detail"]
    # Logins that move money or manage operators need a longer one.
    short = admin.post(f"{API}/operators", json={
        "username": "cashier2", "password": "Vq7#mZ2x!k", "roles": ["finance"]})
    assert short.status_code == 422 and "at least 12" in short.json()["detail"]
    assert admin.post(f"{API}/operators", json={
        "username": "reader", "password": "Vq7#mZ2x!k", "roles": ["auditor"]}
        ).status_code == 201
    # A change of password follows the same rule, and changes nothing when refused.
    reader = admin.get(f"{API}/operators").json()["items"]
    reader_id = next(o["id"] for o in reader if o["username"] == "reader")
    assert admin.patch(f"{API}/operators/{reader_id}", json={"password": "password"}
                       ).status_code == 422
    assert admin.patch(f"{API}/operators/{reader_id}", json={
        "password": "Vq7#mZ2x!k", "roles": ["admin"]}).status_code == 422
    client = TestClient(create_app(world["platform"], background=False))
    token = _token(client, "reader", "Vq7#mZ2x!k")
    assert client.get(f"{API}/me", headers=token).json()["roles"] == ["auditor"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_create_applies_the_password_rule(tmp_path, monkeypatch, capsys, backend):
    monkeypatch.setenv("PREPAID_DATABASE_URL", f"sqlite:///{tmp_path}/var/prepaid.db")
    monkeypatch.setenv("PREPAID_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("PREPAID_ARGON2_MEMORY_KIB", "1024")
    password_file = tmp_path / "admin-password"
    for weak in ("password", "admin-pass"):  # common; too short for an admin
        password_file.write_text(weak + "\n")
        assert prepaid(["admin", "create", "--username", "root",
                        "--password-file", str(password_file)]) == 2
        assert "password" in capsys.readouterr().err
    password_file.write_text("correct horse battery staple\n")  # test fixture only
    assert prepaid(["admin", "create", "--username", "root",
                    "--password-file", str(password_file)]) == 0
    assert "admin root created" in capsys.readouterr().out


# -- scope -------------------------------------------------------------------------------------

def test_staff_limited_to_a_site_see_and_touch_only_that_site(world):
    platform, (north, south), (mine, theirs) = world["platform"], world["sites"], \
        world["accounts"]
    clerk = as_(platform, "north-clerk", roles=("finance",), site_ids=(north,))
    listed = [a["id"] for a in clerk.get(f"{API}/accounts").json()["items"]]
    assert listed == [mine]
    assert clerk.get(f"{API}/accounts/{theirs}").status_code == 404
    assert clerk.get(f"{API}/accounts/{theirs}/statement").status_code == 404
    before = log_position(platform)
    sale = clerk.post(f"{API}/accounts/{theirs}/top-ups",
                      json={"amount": "5.00", "channel": "cash"}, headers=key())
    assert sale.status_code == 404
    assert clerk.post(f"{API}/accounts", json={"name": "x", "site_id": south}).status_code \
        == 403
    assert clerk.post(f"{API}/accounts", json={"name": "x"}).status_code == 403
    assert clerk.get(f"{API}/ledger/trial-balance").status_code == 403  # every site
    assert log_position(platform) == before
    assert [s["id"] for s in clerk.get(f"{API}/sites").json()["items"]] == [north]
    assert clerk.post(f"{API}/accounts/{mine}/top-ups", json={"amount": "5.00",
                                                            "channel": "cash"},
                      headers=key()).status_code == 201


def test_a_tenant_sees_its_own_accounts_only(world):
    platform, (mine, theirs) = world["platform"], world["accounts"]
    shop = as_(platform, "shop-0", roles=("tenant",), account_ids=(mine,))
    assert [a["id"] for a in shop.get(f"{API}/me/accounts").json()["items"]] == [mine]
    assert [a["id"] for a in shop.get(f"{API}/accounts").json()["items"]] == [mine]
    assert shop.get(f"{API}/accounts/{mine}").json()["balance"] == "100.00"
    assert [e["amount"] for e in shop.get(f"{API}/accounts/{mine}/statement")
            .json()["items"]] == ["100.00"]
    assert shop.get(f"{API}/alerts").status_code == 200
    assert shop.get(f"{API}/accounts/{theirs}").status_code == 404
    assert shop.get(f"{API}/accounts/{theirs}/balance").status_code == 404
    before = log_position(platform)
    assert shop.post(f"{API}/accounts/{mine}/top-ups", json={"amount": "5.00",
                                                           "channel": "cash"},
                     headers=key()).status_code == 403
    assert shop.post(f"{API}/payments/orders", json={
        "account_id": theirs, "amount": "5.00", "channel": "wechat", "scene": "native"},
        headers=key()).status_code == 404
    assert shop.get(f"{API}/sites").status_code == 403
    assert shop.get(f"{API}/ledger/trial-balance").status_code == 403
    assert log_position(platform) == before


def test_operator_grants_are_checked(world):
    admin = world["admin"]
    bad = [{"username": "t1", "password": "long-enough-2026", "roles": ["tenant"]},
           {"username": "t2", "password": "long-enough-2026", "roles": ["tenant", "finance"],
            "account_ids": [world["accounts"][0]]},
           {"username": "f1", "password": "long-enough-2026", "roles": ["finance"],
            "account_ids": [world["accounts"][0]]},
           {"username": "x1", "password": "short", "roles": ["finance"]},
           {"username": "x2", "password": "long-enough-2026", "roles": ["root"]}]
    for body in bad:
        answer = admin.post(f"{API}/operators", json=body)
        assert answer.status_code == 422, (body, answer.text)
    created = admin.post(f"{API}/operators", json={
        "username": "f2", "password": "long-enough-2026", "roles": ["finance"]})
    assert created.status_code == 201
    again = admin.post(f"{API}/operators", json={
        "username": "F2", "password": "long-enough-2026", "roles": ["finance"]})
    assert again.status_code == 409
    assert [o["username"] for o in admin.get(f"{API}/operators").json()["items"]] == \
        ["f2", "test-admin"]


# -- maker-checker -------------------------------------------------------------------------------

def test_adjustments_need_a_second_person(world):
    platform, admin, account = world["platform"], world["admin"], world["accounts"][0]
    maker = as_(platform, "maker", roles=("finance",))
    checker = as_(platform, "checker", roles=("finance",))
    engineer = as_(platform, "engineer", roles=("operator",))
    asked = maker.post(f"{API}/accounts/{account}/adjustments",
                       json={"amount": "-30.00", "reason": "meter misread"}, headers=key())
    assert asked.status_code == 202 and asked.json()["status"] == "pending_approval"
    approval = asked.json()["approval_id"]
    assert balance(admin, account) == "100.00"  # nothing moved yet
    listed = checker.get(f"{API}/approvals", params={"status": "pending"}).json()["items"]
    assert [a["id"] for a in listed] == [approval] and listed[0]["requested_by"] == "maker"
    assert maker.post(f"{API}/approvals/{approval}/approve", json={}).status_code == 409
    assert engineer.post(f"{API}/approvals/{approval}/approve", json={}).status_code == 403
    assert balance(admin, account) == "100.00"
    done = checker.post(f"{API}/approvals/{approval}/approve", json={"note": "checked"})
    assert done.status_code == 200 and done.json()["status"] == "approved"
    assert balance(admin, account) == "70.00"
    assert checker.post(f"{API}/approvals/{approval}/approve", json={}).status_code == 409
    entry = admin.get(f"{API}/accounts/{account}/statement").json()["items"][-1]
    assert entry["amount"] == "-30.00"
    assert entry["actor"] == "operator:maker (approved by checker)"
    log = admin.get(f"{API}/audit/log", params={"action": "BalanceAdjusted"}).json()["items"]
    assert [(e["actor"]["name"], e["approved_by"]) for e in log] == [("maker", "checker")]
    decided = admin.get(f"{API}/audit/log", params={"action": "Approval.Approved"}).json()
    assert [e["actor"]["name"] for e in decided["items"]] == ["checker"]


def test_rejected_requests_change_nothing_and_small_refunds_need_no_approval(world):
    platform, admin, account = world["platform"], world["admin"], world["accounts"][0]
    maker = as_(platform, "maker", roles=("finance",))
    checker = as_(platform, "checker", roles=("finance",))
    small = maker.post(f"{API}/accounts/{account}/refunds",
                       json={"amount": "10.00", "channel": "cash"}, headers=key())
    assert small.status_code == 201
    admin.post(f"{API}/accounts/{account}/top-ups", json={"amount": "5000.00",
                                                        "channel": "bank"}, headers=key())
    big = maker.post(f"{API}/accounts/{account}/refunds",
                     json={"amount": "2000.00", "channel": "bank"}, headers=key())
    assert big.status_code == 202
    rejected = checker.post(f"{API}/approvals/{big.json()['approval_id']}/reject",
                            json={"note": "no contract"})
    assert rejected.json()["status"] == "rejected"
    assert balance(admin, account) == "5090.00"
    assert checker.post(f"{API}/approvals/{big.json()['approval_id']}/approve",
                        json={}).status_code == 409
    assert balance(admin, account) == "5090.00"


def test_reversal_and_keep_power_wait_for_approval(world):
    platform, admin, account = world["platform"], world["admin"], world["accounts"][0]
    maker = as_(platform, "maker", roles=("finance",))
    checker = as_(platform, "checker", roles=("finance",))
    sale = maker.post(f"{API}/accounts/{account}/top-ups",
                      json={"amount": "50.00", "channel": "cash"}, headers=key()).json()
    idem = key()
    asked = maker.post(f"{API}/transactions/{sale['id']}/reversal",
                       json={"reason": "wrong shop"}, headers=idem)
    assert asked.status_code == 202
    # Asking again with the same key is the same request.
    assert maker.post(f"{API}/transactions/{sale['id']}/reversal", json={"reason": "wrong shop"},
                      headers=idem).json()["approval_id"] == asked.json()["approval_id"]
    assert balance(admin, account) == "150.00"
    checker.post(f"{API}/approvals/{asked.json()['approval_id']}/approve", json={})
    assert balance(admin, account) == "100.00"
    # keep_power: the operator role may ask; a finance clerk lacks the permission.
    site = world["sites"][0]
    gateway = admin.post(f"{API}/gateways", json={"site_id": site, "name": "GW",
                                                  "host": "10.0.0.1", "port": 502}).json()
    meter = admin.post(f"{API}/meters", json={
        "meter_no": "000000000001", "kind": "electricity", "mode": "prepaid",
        "gateway_id": gateway["id"], "address": 1, "profile": "ref-prepaid-v1",
        "account_id": account}).json()
    engineer = as_(platform, "engineer", roles=("operator",))
    assert maker.post(f"{API}/meters/{meter['id']}/commands",
                      json={"action": "keep_power", "reason": "hospital"}).status_code == 403
    held = engineer.post(f"{API}/meters/{meter['id']}/commands",
                         json={"action": "keep_power", "reason": "clinic on site"})
    assert held.status_code == 202 and held.json()["status"] == "pending_approval"
    assert admin.get(f"{API}/meters/{meter['id']}/state").json()["keep_power"] is False
    engineer2 = as_(platform, "engineer2", roles=("operator",))
    approved = engineer2.post(f"{API}/approvals/{held.json()['approval_id']}/approve",
                              json={})
    assert approved.status_code == 200, approved.text
    assert admin.get(f"{API}/meters/{meter['id']}/state").json()["keep_power"] is True


# -- the audit trail ---------------------------------------------------------------------------

def test_every_change_names_who_and_which_request(world):
    platform, account = world["platform"], world["accounts"][0]
    clerk = as_(platform, "clerk-7", roles=("finance",))
    sale = clerk.post(f"{API}/accounts/{account}/top-ups",
                      json={"amount": "8.00", "channel": "cash"},
                      headers={**key(), "X-Request-Id": "till-7-0042"})
    assert sale.headers["X-Request-Id"] == "till-7-0042"
    auditor = as_(platform, "auditor", roles=("auditor",))
    mine = auditor.get(f"{API}/audit/log", params={"request_id": "till-7-0042"}).json()
    assert {e["action"] for e in mine["items"]} == {"Account.TopUpCredited",
                                                   "Transaction.Recorded"}
    assert {e["actor"]["name"] for e in mine["items"]} == {"clerk-7"}
    statement = auditor.get(f"{API}/accounts/{account}/statement").json()["items"]
    assert statement[-1]["actor"] == "operator:clerk-7"
    by_admin = auditor.get(f"{API}/audit/log", params={"actor_kind": "operator"}).json()
    assert {"Site.Created", "Account.Opened"} <= {e["action"] for e in by_admin["items"]}
    # The auditor reads everything and changes nothing.
    assert auditor.post(f"{API}/accounts", json={"name": "x"}).status_code == 403
    assert auditor.get(f"{API}/audit/verify").json()["ok"] is True


# -- the hash chain ------------------------------------------------------------------------------

def _events_table(platform: Platform) -> str:
    return platform.ledger.recorder.events_table_name


def _tamper(platform: Platform, statement: str, **params) -> None:
    with platform.engines.writer.begin() as conn:
        conn.execute(text(statement.format(events=_events_table(platform))), params)


@pytest.mark.parametrize("how", ["changed", "deleted", "inserted", "deleted-with-entry"])
def test_the_hash_chain_finds_tampering(world, how):
    platform = world["platform"]
    clean = verify_chain(platform.ledger.recorder)
    assert clean["ok"] and clean["checked"] == log_position(platform) > 5
    victim = 4
    if how == "changed":
        # Ten yuan more, written straight into the stored event.
        _tamper(platform, "UPDATE {events} SET state = :state WHERE notification_id = :n"
                if platform.settings.is_postgres else
                "UPDATE {events} SET state = :state WHERE rowid = :n",
                state=b'{"tampered": true}', n=victim)
    elif how == "deleted":
        _tamper(platform, "DELETE FROM {events} WHERE notification_id = :n"
                if platform.settings.is_postgres else
                "DELETE FROM {events} WHERE rowid = :n", n=victim)
    elif how == "deleted-with-entry":
        _tamper(platform, "DELETE FROM {events} WHERE notification_id = :n"
                if platform.settings.is_postgres else
                "DELETE FROM {events} WHERE rowid = :n", n=victim)
        _tamper(platform, "DELETE FROM {events}_chain WHERE notification_id = :n", n=victim)
    else:
        values = ("(CAST(:id AS uuid), 1, 'domain.account:Account.Opened', :state)"
                  if platform.settings.is_postgres else
                  "(:id, 1, 'domain.account:Account.Opened', :state)")
        _tamper(platform, "INSERT INTO {events} (originator_id, originator_version, topic, "
                "state) VALUES " + values,
                id=str(uuid.uuid4()) if platform.settings.is_postgres else uuid.uuid4().hex,
                state=b"{}")
    report = verify_chain(platform.ledger.recorder)
    assert report["ok"] is False
    expected = {"changed": victim, "deleted": victim, "deleted-with-entry": victim + 1,
                "inserted": log_position(platform)}[how]
    assert report["first_break"]["position"] == expected, report
    answer = world["admin"].get(f"{API}/audit/verify").json()
    assert answer["ok"] is False and answer["first_break"] == report["first_break"]


def test_a_kept_head_catches_the_newest_events_being_removed(world):
    platform, admin = world["platform"], world["admin"]
    head = admin.get(f"{API}/audit/verify").json()["head"]
    admin.post(f"{API}/accounts/{world['accounts'][0]}/top-ups",
               json={"amount": "1.00", "channel": "cash"}, headers=key())
    params = {"anchor_position": head["position"], "anchor_hash": head["hash"]}
    assert admin.get(f"{API}/audit/verify", params=params).json()["anchor_matches"] is True
    last = log_position(platform)
    # Remove the newest events and their chain entries, back to before the kept head.
    for table in ("{events}", "{events}_chain"):
        column = "rowid" if table == "{events}" and not platform.settings.is_postgres \
            else "notification_id"
        _tamper(platform, f"DELETE FROM {table} WHERE {column} >= :n", n=head["position"])
    assert last > head["position"]
    alone = verify_chain(platform.ledger.recorder)
    assert alone["ok"] is True  # the chain that is left is consistent...
    answer = admin.get(f"{API}/audit/verify", params=params).json()
    assert answer["ok"] is False and answer["anchor_matches"] is False  # ...but not the kept one
