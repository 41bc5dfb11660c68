"""Whole-number shares of a count, split by weight: the largest-remainder method (Hamilton's).

Every key first gets the whole part of its exact share ``count * weight / sum(weights)``; the units left go,
one each, to the keys with the largest fractional parts. Ties are broken by ``tie_key`` (smaller first),
which is called exactly once per key, in the order of ``weights``.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

K = TypeVar("K")


def largest_remainder(count: int, weights: dict[K, float], tie_key: Callable[[K], Any]) -> dict[K, int]:
    """Split ``count`` by ``weights`` (positive numbers) into whole numbers summing to ``count``."""
    total = sum(weights.values())
    exact = {k: count * w / total for k, w in weights.items()}
    shares = {k: int(v) for k, v in exact.items()}
    left = count - sum(shares.values())
    for k in sorted(weights, key=lambda k: (-(exact[k] - shares[k]), tie_key(k)))[:left]:
        shares[k] += 1
    return shares
