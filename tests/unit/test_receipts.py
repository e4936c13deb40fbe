"""Who a receipt names, and how it prints times."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from adapters.receipts import actor_name, local_time


def test_the_operator_is_printed_by_name_never_by_id():
    usernames = {"7f0c": "cashier-li"}.get
    assert actor_name({"kind": "operator", "id": "7f0c", "name": "cashier-wang"},
                      usernames) == "cashier-wang"
    # An event without the name: the operator's username is looked up.
    assert actor_name({"kind": "operator", "id": "7f0c"}, usernames) == "cashier-li"
    assert actor_name({"kind": "api_key", "id": "k1", "name": "key:till-1"}) == "key:till-1"
    assert actor_name({"kind": "provider", "id": "alipay"}) == "支付宝 Alipay"
    assert actor_name({"kind": "policy", "id": "property"}) == "policy:property"
    assert actor_name({"kind": "operator", "id": "a", "name": "wang", "approved_by": {
        "kind": "operator", "id": "b", "name": "zhao"}}) == "wang (审批 approved by zhao)"


def test_times_are_the_site_clock_to_the_second():
    when = datetime(2026, 12, 31, 16, 30, 5, 999999, tzinfo=timezone.utc)
    assert local_time(when, ZoneInfo("Asia/Shanghai")) == "2027-01-01 00:30:05 (UTC+08:00)"
    assert local_time(when, ZoneInfo("Asia/Kathmandu")) == "2026-12-31 22:15:05 (UTC+05:45)"
    assert local_time(None, ZoneInfo("Asia/Shanghai")) == "-"
