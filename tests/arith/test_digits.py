"""The digit-level steps (``mathlora.arith.digits``) give the right values; the worked lines themselves are
checked step by step in ``test_decomposed.py``."""

from __future__ import annotations

import math
import random
from decimal import Decimal

from mathlora.arith.digits import add_place, columns, euclid, long_division, multiply, power, sub_place


def test_place_value_sums_differences_and_products_are_exact():
    rng = random.Random(7)
    for _ in range(200):
        x, y = (Decimal(rng.randint(0, 10**6)) / 100 for _ in range(2))
        lines, total = add_place(x, y, 2)
        assert total == x + y and lines
        big, small = max(x, y), min(x, y)
        assert sub_place(big, small, 2)[1] == big - small
        assert multiply(x, y)[1] == x * y
        for decimals in (0, 1, 2):  # columns: the result so far on the last line is the exact result
            a, b = (v.quantize(Decimal(1).scaleb(-decimals), rounding="ROUND_DOWN") for v in (big, small))
            for kind, want in (("+", a + b), ("-", a - b)):
                lines, value = columns(a, b, kind, decimals)
                assert value == want and Decimal(lines[-1].rpartition(",")[2]) == want, (a, kind, b, lines)


def test_euclid_long_division_and_powers():
    rng = random.Random(3)
    for _ in range(100):
        a, b = rng.randint(1, 10**5), rng.randint(1, 10**5)
        lines, g = euclid(a, b)
        assert g == math.gcd(a, b) and lines[-1].endswith("+0")
    assert long_division(1, 8)[1] == Decimal("0.125")
    assert long_division(84, 4)[1] == 21
    assert power("3", 4)[1] == 81
