"""Allocation by the largest-remainder method: integer shares that add up exactly."""

from __future__ import annotations

from collections.abc import Sequence


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights``; the shares sum exactly to ``total``.

    Each share is the floor of its exact value, and the units left over go one each to
    the largest remainders (ties to the earlier weight), so no share differs from its
    exact value by one unit or more.
    """
    assert total >= 0, total
    assert weights and all(w >= 0 for w in weights), weights
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("weights must not all be zero")
    shares = [total * w // weight_sum for w in weights]
    remainders = [(total * w % weight_sum, -index) for index, w in enumerate(weights)]
    left = total - sum(shares)
    for _, negative_index in sorted(remainders, reverse=True)[:left]:
        shares[-negative_index] += 1
    assert sum(shares) == total
    return shares
