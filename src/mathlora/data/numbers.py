"""The recipe's decimals rule: numbers with more than ``decimals`` fractional digits are cut to ``decimals``.

* ``round`` (default): half-up (away from zero on ties, 四舍五入) in exact decimal arithmetic;
  ``truncate``: drop the extra digits.
* Numbers with at most ``decimals`` fractional digits, integers, fractions like ``5/6`` and every
  non-number character stay byte-identical.
* Signs are kept as written; scientific notation counts the mantissa's digits (``2.7691E+34`` ->
  ``2.77E+34``); a percent sign or CJK text next to a number does not stop the match (no ``\\b``,
  which treats CJK characters as word characters).
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

# A digit run, a dot, a digit run; optional exponent. Not preceded by a digit or dot (so "1.2.3" does
# not re-match its tail), not followed by a digit.
NUMBER = re.compile(r"(?<![\d.])(\d+)\.(\d+)((?:[eE][+-]?\d+)?)(?![\d])")


def format_decimals(text: str, decimals: int = 2, mode: str = "round") -> str:
    """Apply the decimals rule to every number in ``text``."""
    if mode not in ("round", "truncate"):
        raise ValueError(f"mode must be 'round' or 'truncate', got {mode!r}")
    rounding = ROUND_HALF_UP if mode == "round" else ROUND_DOWN
    quantum = Decimal(1).scaleb(-decimals)

    def repl(m: re.Match) -> str:
        whole, frac, exp = m.group(1), m.group(2), m.group(3)
        if len(frac) <= decimals:
            return m.group(0)
        value = Decimal(f"{whole}.{frac}").quantize(quantum, rounding=rounding)
        return f"{value:.{decimals}f}{exp}"

    return NUMBER.sub(repl, text)


def count_long_numbers(text: str, decimals: int = 2) -> int:
    return sum(1 for m in NUMBER.finditer(text) if len(m.group(2)) > decimals)
