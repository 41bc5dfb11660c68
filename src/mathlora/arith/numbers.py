"""The recipe's decimals rule: numbers with more than ``decimals`` fractional digits are cut to ``decimals``.

* ``round`` (default): half-up (away from zero on ties, 四舍五入) in exact decimal arithmetic;
  ``truncate``: drop the extra digits.
* Numbers with at most ``decimals`` fractional digits, integers, fractions like ``5/6`` and every
  non-number character stay byte-identical.
* Signs are kept as written; scientific notation counts the mantissa's digits (``2.7691E+34`` ->
  ``2.77E+34``); a percent sign or CJK text next to a number does not stop the match (no ``\\b``,
  which treats CJK characters as word characters).
* Only ASCII digits form numbers: Arabic-Indic, fullwidth and other digits stay as written.
* Numbers with digit grouping (``1,050.125``, ``1 000.125``, ``1_000.125``) and dotted sequences (IP addresses
  ``192.168.100.200``, versions ``1.10.125``) are not plain decimals: they stay as written.
* A number too long to round (more than ``MAX_DIGITS`` digits) is kept as written and counted.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, DecimalException, localcontext
from fractions import Fraction

# An ASCII digit run, a dot, a digit run; optional exponent. Not preceded by a digit or dot (so "1.2.3"
# does not re-match its tail); not followed by a digit, nor by a dot and a digit (``192.168.100.200``,
# ``1.2.3``: dotted sequences are not numbers). A match that is the last group of a grouped number
# (``1,050.125``: three digits after a separator after a digit) is left as written by ``cut_decimals``.
NUMBER = re.compile(r"(?<![\d.])([0-9]+)\.([0-9]+)((?:[eE][+-]?[0-9]+)?)(?![\d])(?!\.[0-9])")
GROUP_SEPARATORS = ",_ '\u00a0\u2009\u202f"


def _last_group(text: str, m: re.Match) -> bool:
    """Whether ``m`` is the last digit group of a grouped number such as ``1,050.125`` or ``1 000.125``."""
    at = m.start()
    return (len(m.group(1)) == 3 and at >= 2 and text[at - 1] in GROUP_SEPARATORS
            and text[at - 2] in "0123456789")


MAX_DIGITS = 1000


def cut_decimals(text: str, decimals: int = 2, mode: str = "round") -> tuple[str, int, int]:
    """(``text`` with the decimals rule applied, numbers cut, numbers kept as written: too long to round)."""
    if mode not in ("round", "truncate"):
        raise ValueError(f"mode must be 'round' or 'truncate', got {mode!r}")
    rounding = ROUND_HALF_UP if mode == "round" else ROUND_DOWN
    quantum = Decimal(1).scaleb(-decimals)
    counts = [0, 0]

    def repl(m: re.Match) -> str:
        whole, frac, exp = m.group(1), m.group(2), m.group(3)
        if len(frac) <= decimals or _last_group(text, m):
            return m.group(0)
        if len(whole) + len(frac) > MAX_DIGITS:
            counts[1] += 1
            return m.group(0)
        try:
            with localcontext() as ctx:  # exact: enough precision for every integer digit
                ctx.prec = len(whole) + decimals + 2
                value = Decimal(f"{whole}.{frac}").quantize(quantum, rounding=rounding)
                out = f"{value:.{decimals}f}{exp}"
        except DecimalException:
            counts[1] += 1
            return m.group(0)
        counts[0] += 1
        return out

    return NUMBER.sub(repl, text), counts[0], counts[1]


def format_decimals(text: str, decimals: int = 2, mode: str = "round") -> str:
    """Apply the decimals rule to every number in ``text``."""
    return cut_decimals(text, decimals, mode)[0]


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



SCIENTIFIC_ABOVE = 10 ** 28          # the source's 28-digit decimal context prints E notation from here
SCIENTIFIC_BELOW = Fraction(1, 10**6)  # ... and below 1e-6, where its plain form ends too
SCIENTIFIC_DIGITS = 10               # significant digits of a value written in scientific notation


def format_result(value: Fraction | Decimal | int, decimals: int = 2, mode: str = "round") -> str:
    """A computed value as the calculator and the worked solutions print it.

    :func:`format_number` (the normalize rule) for ordinary magnitudes; scientific notation with
    ``SCIENTIFIC_DIGITS`` significant digits, trailing zeros dropped, for ``|value| >= 1e28`` or
    ``0 < |value| < 1e-6``, where the source's 28-digit decimal context writes E notation too:
    ``2.769155521E+34``, ``4.9E-11``. Two decimals would turn those into a wall of digits or into ``0``; ten
    significant digits keep them right under a relative tolerance too. (Between 1e-6 and 0.01 the source
    writes plain decimals, graded at 0.01 absolute, so ``0`` is right there.)
    """
    value = Fraction(value)
    if value == 0 or SCIENTIFIC_BELOW <= abs(value) < SCIENTIFIC_ABOVE:
        return format_number(value, decimals, mode)
    with localcontext() as ctx:
        ctx.prec = SCIENTIFIC_DIGITS
        ctx.rounding = ROUND_HALF_UP if mode == "round" else ROUND_DOWN
        rounded = ctx.divide(Decimal(value.numerator), Decimal(value.denominator))
    digits = rounded.as_tuple()
    exponent = rounded.adjusted()
    mantissa = "".join(map(str, digits.digits)).rstrip("0") or "0"
    head = mantissa[0] + (f".{mantissa[1:]}" if len(mantissa) > 1 else "")
    return f"{'-' if digits.sign else ''}{head}E{exponent:+d}"
