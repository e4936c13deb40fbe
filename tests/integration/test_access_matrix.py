"""The permission matrix, generated from the OpenAPI document.

Every path and method is called without a token and as every role (and as staff limited
to one site, and as a tenant), with that caller's own ids and with another site's ids.
The expected answer follows from the operation's ``x-permission`` and ``x-scope`` and
the roles in ``domain/access.py``: 401 without a token, 403 without the permission (or
for a platform-wide operation called by someone limited to sites), 404 for another
site's ids, otherwise neither 401 nor 403 and never a 5xx. A call that is refused
changes nothing: the event log does not move.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from bootstrap import Platform
from api.app import create_app
from api.routes.access import ACTION_PERMISSION
from domain.access import AUTHENTICATED, PUBLIC, permissions_of
from domain.tariff import TariffSpec
from tests.conftest import login

API = "/api/v1"
STAFF = {"admin": ("admin",), "finance": ("finance",), "operator": ("operator",),
         "auditor": ("auditor",)}
SYSTEM = {"kind": "system", "id": "matrix"}
MAKER = {"kind": "operator", "id": "maker", "name": "maker"}


def _site(platform: Platform, name: str, tariff_id, n: int) -> dict[str, str]:
    ledger = platform.ledger
    site = ledger.metering.create_site(name=name, actor=SYSTEM)
    account = uuid.UUID(ledger.accounts.open_account(name=f"{name} shop", site_id=str(site.id),
                                                     actor=SYSTEM).result["account_id"])
    sale = ledger.accounts.top_up(account, amount_fen=10_000, channel="cash", actor=SYSTEM,
                                  idempotency_key=f"sale-{n}")
    gateway = ledger.metering.register_gateway(site_id=site.id, name=f"GW{n}", host=f"10.0.0.{n}",
                                               port=1502 + n, protocol="modbus-tcp", actor=SYSTEM)
    now = ledger.clock()
    meter = ledger.metering.register_meter(
        meter_no=f"00000000000{n}", kind="electricity", mode="prepaid", gateway_id=gateway.id,
        address=1, profile="ref-prepaid-v1", account_id=account, tariff_id=tariff_id,
        tariff_from=now - timedelta(days=1), actor=SYSTEM)
    common = ledger.metering.register_meter(
        meter_no=f"00000000010{n}", kind="electricity", mode="monitoring",
        gateway_id=gateway.id, address=2, profile="ref-prepaid-v1", account_id=None,
        tariff_id=tariff_id, tariff_from=now - timedelta(days=1), actor=SYSTEM)
    pool = ledger.property.create_pool(name=f"{name} lobby", site_id=site.id, meter_ids=[common.id],
                                       method="ratio", shares=[{"account_id": str(account),
                                                                "weight": 1}],
                                       period="month", actor=SYSTEM)
    command = ledger.devices.command_meter(meter.id, action="read_now", actor=SYSTEM,
                                           idempotency_key=f"read-{n}")
    approval = ledger.access.request_approval(
        action="adjustment", target=str(account),
        params={"delta_fen": -100, "reason": "x", "wallet": "electricity", "force": False,
                "effective_at": None},
        idempotency_key=f"adjust-{n}", site_id=str(site.id), summary="adjust", actor=MAKER)
    return {"site_id": str(site.id), "account_id": str(account),
            "transaction_id": sale.result["transaction_id"], "meter_id": str(meter.id),
            "command_id": command["command_id"], "pool_id": str(pool.id),
            "approval_id": approval.result["id"], "gateway_id": str(gateway.id)}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    from ledger.config import Settings

    path = tmp_path_factory.mktemp("matrix") / "prepaid.db"
    platform = Platform(Settings(database_url=f"sqlite:///{path}", auto_migrate=True,
                                 argon2_time_cost=1, argon2_memory_kib=1024))
    ledger = platform.ledger
    tariff = ledger.metering.create_tariff(name="flat", utility="electricity",
                                           effective_from=ledger.clock() - timedelta(days=30),
                                           spec=TariffSpec.from_dict({"kind": "flat",
                                                                      "price_1e4": 10000}),
                                           actor=SYSTEM)
    own, other = _site(platform, "North", tariff.id, 1), _site(platform, "South", tariff.id, 2)
    platform.catch_up()
    shared = {"tariff_id": str(tariff.id), "month": "2026-01",
              "out_trade_no": "NOSUCHORDER0001"}
    headers = {role: login(platform, f"{role}-user", f"{role}-password", roles=roles)
               for role, roles in STAFF.items()}
    headers["finance@site"] = login(platform, "site-finance", "site-finance-password",
                                    roles=("finance",), site_ids=(own["site_id"],))
    headers["operator@site"] = login(platform, "site-operator", "site-operator-password",
                                     roles=("operator",), site_ids=(own["site_id"],))
    headers["tenant"] = login(platform, "shop", "shop-password", roles=("tenant",),
                              account_ids=(own["account_id"],))
    shared["operator_id"] = str(ledger.access.find_operator("auditor-user").id)
    key = TestClient(create_app(platform, background=False), headers=headers["admin"]).post(
        f"{API}/api-keys", json={"name": "spare", "roles": ["auditor"]}).json()
    shared["key_id"] = key["id"]
    app = create_app(platform, background=False)
    with TestClient(app) as client:
        yield {"platform": platform, "client": client, "own": {**own, **shared},
               "other": {**other, **shared}, "headers": headers,
               "operations": _operations(app.openapi())}
    platform.close()


def _operations(document: dict) -> list[tuple[str, str, str, str]]:
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            found.append((method.upper(), path, operation["x-permission"],
                          operation["x-scope"]))
    return found


ROLES_OF = {"admin": ("admin",), "finance": ("finance",), "operator": ("operator",),
            "auditor": ("auditor",), "finance@site": ("finance",),
            "operator@site": ("operator",), "tenant": ("tenant",)}
RESTRICTED = {"finance@site", "operator@site", "tenant"}
# Deciding an approval also needs the permission of the action asked for; the approvals
# in this world are adjustments.
ALSO_NEEDS = {f"{API}/approvals/{{approval_id}}/approve": ACTION_PERMISSION["adjustment"],
              f"{API}/approvals/{{approval_id}}/reject": ACTION_PERMISSION["adjustment"]}
SCOPED_PARAMS = {"account_id", "meter_id", "transaction_id", "command_id", "site_id",
                 "pool_id", "approval_id", "out_trade_no", "gateway_id"}


def _call(matrix, method: str, path: str, ids: dict, headers: dict | None):
    url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
    params = {"site_id": matrix["own"]["site_id"]} if method == "GET" else {}
    kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return matrix["client"].request(method, url, params=params,
                                    headers={**(headers or {}),
                                             "Idempotency-Key": str(uuid.uuid4())},
                                    **kwargs)


def _position(matrix) -> int:
    return matrix["platform"].ledger.recorder.max_notification_id() or 0


def test_the_document_marks_every_operation(matrix):
    operations = matrix["operations"]
    assert len(operations) > 60
    public = {(m, p) for m, p, perm, _ in operations if perm == PUBLIC}
    assert public == {("GET", "/health"), ("GET", f"{API}/health"), ("GET", "/health/ready"),
                      ("GET", "/health/live"),
                      ("POST", f"{API}/auth/token"),
                      ("POST", f"{API}/payments/wechat/notify"),
                      ("POST", f"{API}/payments/alipay/notify")}


def test_every_operation_as_every_caller(matrix):
    checked = 0
    for method, path, permission, scope in matrix["operations"]:
        if permission == PUBLIC:
            continue
        before = _position(matrix)
        answer = _call(matrix, method, path, matrix["own"], None)
        assert answer.status_code == 401, (method, path, answer.text)
        assert _position(matrix) == before, (method, path, "changed without a token")
        for caller, roles in ROLES_OF.items():
            headers = matrix["headers"][caller]
            held = permissions_of(roles)
            granted = (permission == AUTHENTICATED or permission in held) and \
                ALSO_NEEDS.get(path, permission) in held | {AUTHENTICATED}
            restricted = caller in RESTRICTED
            before = _position(matrix)
            answer = _call(matrix, method, path, matrix["own"], headers)
            where = (caller, method, path, answer.status_code, answer.text[:200])
            assert answer.status_code < 500, where
            if not granted or (scope == "global" and restricted):
                assert answer.status_code == 403, where
                assert _position(matrix) == before, where
                continue
            assert answer.status_code not in (401, 403), where
            checked += 1
            scoped = SCOPED_PARAMS & set(re.findall(r"\{(\w+)\}", path))
            if restricted and scoped - {"out_trade_no"}:
                before = _position(matrix)
                foreign = _call(matrix, method, path, matrix["other"], headers)
                assert foreign.status_code == 404, (caller, method, path, "other site",
                                                    foreign.text[:200])
                assert _position(matrix) == before
    assert checked > 150
