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
from fractions import Fraction

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


def format_number(value: Fraction | Decimal | int, decimals: int = 2, mode: str = "round") -> str:
    """An exact value written as the decimals rule leaves it: ``Fraction(1, 3)`` -> ``0.33``, ``2.5`` -> ``2.5``.

    A value whose decimal expansion ends within ``decimals`` places is written exactly (no trailing zeros);
    any other is rounded (or truncated) to ``decimals`` places, exactly as :func:`format_decimals` cuts a
    long number in text. The steps writer and the calculator print every number through this function.
    """
    if mode not in ("round", "truncate"):
        raise ValueError(f"mode must be 'round' or 'truncate', got {mode!r}")
    value = Fraction(value)
    scaled = value * 10 ** decimals
    if scaled.denominator == 1:  # terminates within the allowed places: exact
        text = f"{value.numerator // value.denominator}" if value.denominator == 1 else None
        if text is None:
            sign, whole = ("-" if scaled < 0 else ""), abs(scaled.numerator)
            text = f"{sign}{whole // 10 ** decimals}.{whole % 10 ** decimals:0{decimals}d}".rstrip("0").rstrip(".")
        return text
    magnitude = abs(scaled)
    units = magnitude.numerator // magnitude.denominator
    if mode == "round" and 2 * (magnitude - units) >= 1:
        units += 1
    sign = "-" if value < 0 and units else ""
    if decimals == 0:
        return f"{sign}{units}"
    return f"{sign}{units // 10 ** decimals}.{units % 10 ** decimals:0{decimals}d}"


def count_long_numbers(text: str, decimals: int = 2) -> int:
    return sum(1 for m in NUMBER.finditer(text) if len(m.group(2)) > decimals)
