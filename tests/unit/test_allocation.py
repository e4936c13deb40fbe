"""Common-area allocation: tables of cases and a property test."""

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidRequest
from domain.property import CommonAreaPool


def pool(weights):
    shares = [{"account_id": f"a{i}", "weight": w} for i, w in enumerate(weights)]
    return CommonAreaPool.create(pool_id=uuid.uuid4(), name="Lifts", site_id=uuid.uuid4(),
                                 meter_ids=[uuid.uuid4()], method="ratio", shares=shares,
                                 period="month", actor={})


@pytest.mark.parametrize("total, weights, expected", [
    (100, [1, 1, 1], [34, 33, 33]),
    (10, [1, 2, 3], [2, 3, 5]),
    (1, [1, 1], [1, 0]),
    (0, [5, 5], [0, 0]),
    (99_999, [3, 0, 7], [30_000, 0, 69_999]),
])
def test_shares_by_ratio(total, weights, expected):
    p = pool(weights)
    shares = p.allocate("2026-03", 1000, total, {f"a{i}": w for i, w in enumerate(weights)})
    assert [s["amount_fen"] for s in shares] == expected
    assert p.allocations["2026-03"]["rule_version"] == 1


def test_a_period_is_allocated_once():
    p = pool([1, 1])
    p.allocate("2026-03", 1, 10, {"a0": 1, "a1": 1})
    with pytest.raises(InvalidRequest):
        p.allocate("2026-03", 1, 10, {"a0": 1, "a1": 1})


@given(st.integers(min_value=0, max_value=10**10),
       st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=50)
       .filter(lambda w: sum(w) > 0))
def test_any_weights_any_total_shares_add_up_and_are_within_a_fen(total, weights):
    p = pool(weights)
    shares = p.allocate("2026-03", 0, total, {f"a{i}": w for i, w in enumerate(weights)})
    assert sum(s["amount_fen"] for s in shares) == total
    for share, weight in zip(shares, weights):
        exact_times_sum = total * weight
        assert abs(share["amount_fen"] * sum(weights) - exact_times_sum) < sum(weights)
