"""Digit-level arithmetic for the ``decomposed`` solution style (:mod:`mathlora.arith.decomposed`): each
operation as (lines, value), every line a step small enough to compute digit by digit, every step exact.

``+``/``-`` by place value, ``*`` by Goat's decomposition, ``/`` by long division to
:data:`DIVISION_DECIMALS` decimals rounded half-up to two, square roots digit by digit, gcd by Euclid, powers
by repeated products. Raises ``CalculatorError`` where the calculator would (division by zero, a negative
square root).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from mathlora.arith.calculator import CalculatorError

DIVISION_DECIMALS = 3   # quotient digits after the point before rounding to two (the third decides half-up)


# ------------------------------------------------------------------------------------------- numbers

def num(value: Decimal) -> str:
    """A Decimal as plain text, trailing zeros after the point dropped: ``19819250``, ``0.07``, ``-2.5``."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fixed(value: Decimal, decimals: int) -> str:
    """``value`` with exactly ``decimals`` decimals (running totals keep their width)."""
    return format(value.quantize(Decimal(1).scaleb(-decimals)), "f") if decimals else num(value)


def decimals_of(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def parts(value: Decimal) -> list[Decimal]:
    """Place-value parts of a non-negative number, largest first, zeros skipped: 2369.17 -> 2000, 300, 60, 9,
    0.1, 0.07."""
    digits, exponent = value.normalize().as_tuple()[1:] if value else ((), 0)
    out = []
    for i, d in enumerate(digits):
        if d:
            out.append(Decimal(d).scaleb(exponent + len(digits) - 1 - i))
    return out


def nonzero_digits(value: Decimal) -> int:
    return len(parts(abs(value)))


def round2(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# ------------------------------------------------------------------------------------------- operations
# Each returns (lines, exact result). Operands are Decimal; texts as the problem wrote them where it matters.

def add_place(x: Decimal, y: Decimal, decimals: int) -> tuple[list[str], Decimal]:
    """x + y, both >= 0: y split by place value, each part added to the running total."""
    lines, total = [], x
    for p in parts(y) or [Decimal(0)]:
        new = total + p
        lines.append(f"{fixed(total, decimals)}+{num(p)}={fixed(new, decimals)}")
        total = new
    return lines, total


def sub_place(x: Decimal, y: Decimal, decimals: int) -> tuple[list[str], Decimal]:
    """x - y, x >= y >= 0: y split by place value, each part taken from the running total."""
    lines, total = [], x
    for p in parts(y) or [Decimal(0)]:
        new = total - p
        lines.append(f"{fixed(total, decimals)}-{num(p)}={fixed(new, decimals)}")
        total = new
    return lines, total


# Column steps: each place has a one-letter label, ``a`` for hundredths, ``b`` tenths, ``c`` units, ``d`` tens, ...
# (one SmolLM2 token each, unlike 个十百千), so a step finds its digits by label, as an induction head copies.
PLACES = "abcdefghijklmnopqrstuvwxyz"


def _labelled(value: Decimal, top: int, low: int) -> str:
    """``value`` (>= 0, at most two decimals) digit by digit from place ``top`` down to place ``low`` (0:
    hundredths), each digit after its label: 7689.15 -> ``f7e6d8c9b1a5``; zeros written, so both operands have
    the same labels."""
    cents = int(value.scaleb(2))
    return "".join(f"{PLACES[i]}{cents // 10 ** i % 10}" for i in range(top, low - 1, -1))


def columns(x: Decimal, y: Decimal, kind: str, decimals: int) -> tuple[list[str], Decimal]:
    """x + y or x - y (x >= y >= 0) in columns, lowest place first: both operands written with place labels
    (:func:`_labelled`), then one line a place, ``c:9+3+1=13,3.20``: the digits, the carry (or borrow) from the
    place below, the column's result, and the result so far (its lowest digits). A borrow writes the upper
    digit plus ten (``c:12-3-1=8``); a carry out of the top place gets a line of its own (``g:1,16402.20``)."""
    low = 2 - decimals      # integers start at units (c), one decimal at tenths (b)
    top = max(len(str(int(x))), len(str(int(y)))) + 1
    lines = [_labelled(x, top, low), _labelled(y, top, low)]
    xs, ys = int(x.scaleb(2)), int(y.scaleb(2))
    carry, written = 0, ""
    for i in range(low, top + 1):
        dx, dy = xs // 10 ** i % 10, ys // 10 ** i % 10
        extra = f"{kind}1" if carry else ""
        if kind == "+":
            s = dx + dy + carry
            step, digit, carry = f"{dx}+{dy}{extra}={s}", s % 10, s // 10
        else:
            borrow = int(dx - dy - carry < 0)
            digit = dx + 10 * borrow - dy - carry
            step, carry = f"{'1' if borrow else ''}{dx}-{dy}{extra}={digit}", borrow
        written = f"{digit}{'.' if i == 2 and decimals else ''}{written}"
        lines.append(f"{PLACES[i]}:{step},{written}")
    if carry:
        written = f"1{written}"
        lines.append(f"{PLACES[top + 1]}:1,{written}")
    return lines, x + y if kind == "+" else x - y


def signed_sum(a: str, op: str, b: str, *, method: str = "place") -> tuple[list[str], Decimal]:
    """``a op b`` (op + or -) with signs resolved first, then place-value steps on the magnitudes (``method``
    "place") or column steps (``"column"``, :func:`columns`; numbers of at most two decimals and 23 digits
    before the point, the place-value steps otherwise)."""
    x, y = Decimal(a), Decimal(b)
    decimals = max(decimals_of(a), decimals_of(b))
    y_eff = y if op == "+" else -y
    if x >= 0 and y_eff >= 0:
        big, small, negative, kind = x, y_eff, False, "+"
    elif x < 0 and y_eff < 0:
        big, small, negative, kind = -x, -y_eff, True, "+"
    else:
        pos, neg = (x, -y_eff) if x >= 0 else (y_eff, -x)
        if pos >= neg:
            big, small, negative, kind = pos, neg, False, "-"
        else:
            big, small, negative, kind = neg, pos, True, "-"
    inner = f"{fixed(big, decimals)}{kind}{fixed(small, decimals)}"
    written = f"{a}{op}{b}"
    if method == "column" and decimals <= 2 and len(str(int(big))) + 2 < len(PLACES):
        work = columns(big, small, kind, decimals)
    else:
        work = (add_place if kind == "+" else sub_place)(big, small, decimals)
    return _signed(written, inner, negative, work,
                   show=written != (f"-({inner})" if negative else inner), fmt=lambda r: fixed(r, decimals))


def _signed(written: str, inner: str, negative: bool, work: tuple[list[str], Decimal], *, show: bool,
            fmt) -> tuple[list[str], Decimal]:
    """The steps of an operation done on magnitudes (``work``: the steps and result of ``inner``) under its
    sign: ``written=inner`` (or ``-(inner)``) first when ``show``, then the steps, then the negated result."""
    resolved = f"-({inner})" if negative else inner
    lines = [f"{written}={resolved}"] if show else []
    steps, result = work
    lines += steps
    if negative:
        result = -result
        lines.append(f"{resolved}={fmt(result)}")
    return lines, result


def small_sum(x: Decimal, y: Decimal) -> tuple[list[str], Decimal]:
    """x + y in one line (partial products, a mean's running total, a sales total)."""
    return [f"{num(x)}+{num(y)}={num(x + y)}"], x + y


def multiply(x: Decimal, y: Decimal) -> tuple[list[str], Decimal]:
    """x * y, both >= 0: Goat's split of the factor with fewer nonzero digits, partial products, then sums."""
    if nonzero_digits(y) > nonzero_digits(x):
        x, y = y, x
    pieces = parts(y)
    if not pieces:
        return [f"{num(x)}*0=0"], Decimal(0)
    lines, products = [], []
    for p in pieces:
        products.append(x * p)
        lines.append(f"{num(x)}*{num(p)}={num(x * p)}")
    total = products[0]
    for p in products[1:]:
        step, total = small_sum(total, p)
        lines += step
    return lines, total


def signed_product(a: str, b: str) -> tuple[list[str], Decimal]:
    x, y = Decimal(a), Decimal(b)
    negative = (x < 0) != (y < 0) and x != 0 and y != 0
    inner = f"{num(abs(x))}*{num(abs(y))}"
    return _signed(f"{a}*{b}", inner, negative, multiply(abs(x), abs(y)),
                   show=f"{a}*{b}" != inner and (x < 0 or y < 0), fmt=num)


def long_division(n: int, d: int) -> tuple[list[str], Decimal]:
    """n / d for integers n >= 0, d > 0: one quotient digit per line to DIVISION_DECIMALS decimals (fewer when
    the remainder becomes 0), then ``商：q`` or ``商：q≈rounded``. Returns the rounded (or exact) quotient."""
    digits = str(n)
    width = len(str(d))
    # the first partial dividend: the shortest prefix not below d (the whole number when it is below d)
    k = width if int(digits[:width]) >= d else width + 1
    k = min(k, len(digits))
    lines, quotient = [], ""
    x = int(digits[:k])
    rest = list(digits[k:]) + ["0"] * DIVISION_DECIMALS
    decimals = 0
    while True:
        q, r = divmod(x, d)
        lines.append(f"{x}={d}*{q}+{r}")
        quotient += str(q)
        if not rest or (r == 0 and len(rest) <= DIVISION_DECIMALS and all(c == "0" for c in rest)):
            break
        if len(rest) <= DIVISION_DECIMALS:
            decimals += 1
        x = r * 10 + int(rest.pop(0))
    whole, frac = quotient[:len(quotient) - decimals], quotient[len(quotient) - decimals:]
    text = f"{int(whole or '0')}" + (f".{frac}" if frac else "")
    exact = Decimal(n) / Decimal(d)
    value = Decimal(text)
    if value == exact:
        lines.append(f"商：{text}")
        return lines, value
    rounded = round2(value)
    lines.append(f"商：{text}≈{fixed(rounded, 2)}")
    return lines, rounded


def signed_division(a: str, b: str, *, header: str | None = None) -> tuple[list[str], Decimal]:
    """``a / b`` (number texts): signs first, both scaled to integers, then long division."""
    x, y = Decimal(a), Decimal(b)
    if y == 0:
        raise CalculatorError("division by zero")
    negative = (x < 0) != (y < 0) and x != 0
    scale = max(decimals_of(a), decimals_of(b))
    n, d = int(abs(x).scaleb(scale)), int(abs(y).scaleb(scale))
    lines = []
    plain = f"{n}/{d}"
    written = header or f"{a}/{b}"
    target = f"-({plain})" if negative else plain
    if written != target:
        lines.append(f"{written}={target}")
    steps, result = long_division(n, d)
    lines += steps
    return lines, -result if negative else result


def euclid(a: int, b: int) -> tuple[list[str], int]:
    """gcd(a, b) in Euclid's ``a=b*q+r`` lines (the larger first)."""
    x, y = max(a, b), min(a, b)
    lines = []
    if y == 0:
        return [f"{x}={x}*1+0"], x
    while y:
        q, r = divmod(x, y)
        lines.append(f"{x}={y}*{q}+{r}")
        x, y = y, r
    return lines, x


def square_root(x: str) -> tuple[list[str], Decimal]:
    """√x digit by digit: one pair of digits per line, ``c=t*d+r`` with t = 20 * root so far + d."""
    value = Decimal(x)
    if value < 0:
        raise CalculatorError("square root of a negative number")
    scaled = int(value.scaleb(2 * DIVISION_DECIMALS).to_integral_value(rounding=ROUND_DOWN))
    if Decimal(scaled) != value.scaleb(2 * DIVISION_DECIMALS):
        raise CalculatorError("too many decimals for a digit-by-digit root")
    whole = str(int(value))
    if len(whole) % 2:
        whole = "0" + whole if whole != "0" else "0"
    int_pairs = [whole[i:i + 2] for i in range(0, len(whole), 2)] if whole != "0" else ["0"]
    frac_digits = str(scaled)[-2 * DIVISION_DECIMALS:].rjust(2 * DIVISION_DECIMALS, "0")
    frac_pairs = [frac_digits[i:i + 2] for i in range(0, len(frac_digits), 2)]
    lines = [f"分组：{' '.join(int_pairs)}.{' '.join(frac_pairs)}"]
    root, remainder = 0, 0
    for pair in int_pairs + frac_pairs:
        c = remainder * 100 + int(pair)
        d = 9
        while (20 * root + d) * d > c:
            d -= 1
        t = 20 * root + d
        remainder = c - t * d
        lines.append(f"{c}={t}*{d}+{remainder}")
        root = root * 10 + d
    text = str(root).rjust(DIVISION_DECIMALS + 1, "0")
    text = f"{int(text[:-DIVISION_DECIMALS])}.{text[-DIVISION_DECIMALS:]}"
    exact = remainder == 0 and Decimal(text) ** 2 == value
    if exact:
        result = Decimal(text)
        lines.append(f"√{x}={num(result)}")
        return lines, result
    result = round2(Decimal(text))
    lines.append(f"√{x}≈{text}≈{fixed(result, 2)}")
    return lines, result


def power(x: str, n: int) -> tuple[list[str], Decimal]:
    """x^n by repeated Goat multiplication of the magnitude; the sign from the exponent's parity."""
    base = Decimal(x)
    shown = f"({x})" if x.startswith("-") else x
    if n == 0:
        return [f"{shown}^0=1"], Decimal(1)
    if n == 1:
        return [f"{shown}^1={x}"], base
    negative = base < 0 and n % 2 == 1
    mag = abs(base)
    lines = []
    if base < 0:
        lines.append(f"{shown}^{n}={'-' if negative else ''}{num(mag)}^{n}")
    value = mag
    for k in range(2, n + 1):
        steps, value = multiply(value, mag)
        lines += steps
        lines.append(f"{num(mag)}^{k}={num(value)}")
    if negative:
        value = -value
        lines.append(f"{shown}^{n}={num(value)}")
    return lines, value


