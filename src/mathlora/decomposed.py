"""The ``decomposed`` solution style: every step small enough to compute digit by digit, every step exact.

A model scored without a tool has to compute each number itself; a 135M model cannot compute
``3963.85 * 5055.68`` in one step, but it can copy a number and change one digit, or multiply a number by one
digit. So every multi-digit operation is written in such steps (no spaces: SmolLM2's tokenizer gives every
digit its own token, and a space is one more token):

* signs first: ``-9740.24--4497.85=-(9740.24-4497.85)``; then the magnitudes only;
* ``+`` and ``-`` (the arithmetic families): the second operand split by place value, one part per line,
  each added to (or taken from) the running total (``4204.22+2000=6204.22``, ``6204.22+300=6504.22``, ...);
* ``*``: Goat's decomposition: the factor with fewer nonzero digits split by place value, one partial product
  per part (one digit times the other factor, ``3963.85*5000=19819250``), then the partial products added one
  at a time;
* ``/``: both scaled to integers (``3008.48/3439.46=300848/343946``), then long division, one quotient digit
  per line (``3008480=343946*8+256912``: the remainder is below the divisor), to three decimals, then rounded
  half-up to two (``商：0.874≈0.87``): the normalize rule, so the answer equals the other styles';
* square root: digit by digit, one pair of digits per line (``1245=148*8+61``: 148 is twice the root so far,
  times ten, plus the new digit), to three decimals, rounded to two;
* gcd (fractions): Euclid's steps, in the same ``a=b*q+r`` lines;
* the other families keep their plans (labels and order) with each operation written in these steps.

A power or function value whose steps would not fit :data:`MAX_CHARS` characters (``x^3`` and above, about:
their partial products grow to 20 digits) is written in the ``steps`` style instead (one line per
computation, the value copied from the calculator) and counted as ``fallback`` in the rewrite report: the
answer is never cut. :func:`decompose` returns None for those, and raises ``CalculatorError`` where the
calculator would (division by zero, square root of a negative number).

The final line is ``答案：<final>`` like the other styles.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from mathlora.calculator import CalculatorError

# A decomposed solution longer than this (characters; SmolLM2 spends about one token per character on
# these digit-and-operator lines, 1-3 per Chinese character) is written in the steps style instead.
MAX_CHARS = 400
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


def signed_sum(a: str, op: str, b: str) -> tuple[list[str], Decimal]:
    """``a op b`` (op + or -) with signs resolved first, then place-value steps on the magnitudes."""
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
    resolved = f"-({inner})" if negative else inner
    lines = []
    if f"{a}{op}{b}" != resolved:
        lines.append(f"{a}{op}{b}={resolved}")
    steps, result = (add_place if kind == "+" else sub_place)(big, small, decimals)
    lines += steps
    if negative:
        result = -result
        lines.append(f"{resolved}={fixed(result, decimals)}")
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
    lines = []
    inner = f"{num(abs(x))}*{num(abs(y))}"
    if f"{a}*{b}" != inner and (x < 0 or y < 0):
        lines.append(f"{a}*{b}={'-(' + inner + ')' if negative else inner}")
    steps, result = multiply(abs(x), abs(y))
    lines += steps
    if negative:
        result = -result
        lines.append(f"-({inner})={num(result)}")
    return lines, result


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


# ------------------------------------------------------------------------------------------- families

def _arith(op: str):
    def plan(a: str, b: str):
        if op in "+-":
            lines, result = signed_sum(a, op, b)
        elif op == "*":
            lines, result = signed_product(a, b)
        else:
            lines, result = signed_division(a, b)
        return lines, num(result)
    return plan


def _power(x: str, n: int):
    lines, value = power(x, n)
    return lines, num(value)


def _sqrt(x: str):
    lines, value = square_root(x)
    return lines, num(value)


def _function_value(x: str, k: int, n: int):
    lines, value = power(x, n)
    if k != 1:
        steps, value = signed_product(str(k), num(value))
        lines += steps
    shown = f"({x})" if x.startswith("-") else x
    lines.append(f"y={k}*{shown}^{n}={num(value)}")
    return lines, num(value)


def _mean(*items: str):
    values = [Decimal(t) for t in items]
    lines, total = [], values[0]
    for i, v in enumerate(values[1:], start=2):
        lines.append(f"{i}个：{num(total)}+{num(v)}={num(total + v)}")
        total += v
    lines.append(f"平均值：{num(total)}/{len(values)}")
    steps, mean = signed_division(num(total), str(len(values)), header=f"{num(total)}/{len(values)}")
    return lines + steps, num(mean)


def _linear(a: int, b: int):
    lines = [f"移项：{a}x={-b}", f"x={-b}/{a}"]
    steps, x = signed_division(str(-b), str(a))
    return lines + steps, num(x)


def _rectangle(length: int, width: int):
    steps, area = multiply(Decimal(length), Decimal(width))
    return ["面积：" + steps[0], *steps[1:]], num(area), " 平方厘米"


def _mass(d: int, v: int):
    steps, mass = multiply(Decimal(d), Decimal(v))
    return ["质量：" + steps[0], *steps[1:]], num(mass), " 克"


def _discount(a: int, b: int):
    steps, diff = signed_sum(str(a), "-", str(b))
    lines = ["差价：" + steps[0], *steps[1:]]
    scaled = diff * 100
    lines.append(f"折扣比例：{num(diff)}*100/{a}={num(scaled)}/{a}")
    div, ratio = signed_division(num(scaled), str(a), header=f"{num(scaled)}/{a}")
    return lines + div, num(ratio)


def _sales(a: int, b: int):
    steps, product = multiply(Decimal(a), Decimal(b))
    lines = ["增长：" + steps[0], *steps[1:]]
    growth = product / 100
    lines.append(f"{num(product)}/100={num(growth)}")
    add, total = small_sum(Decimal(a), growth)
    lines.append("今年销售额：" + add[0])
    return lines, num(total)


def _fraction(n: int, d: int):
    steps, g = euclid(n, d)
    lines = [*steps, f"最大公约数：{g}", f"分子：{n}/{g}={n // g}", f"分母：{d}/{g}={d // g}"]
    return lines, f"{n // g}/{d // g}"


PLANS = {"addition": _arith("+"), "subtraction": _arith("-"), "multiplication": _arith("*"),
         "division": _arith("/"), "power": _power, "sqrt": _sqrt, "function_value": _function_value,
         "mean": _mean, "linear_equation": _linear, "rectangle_area": _rectangle, "mass": _mass,
         "discount": _discount, "sales": _sales, "fraction_simplify": _fraction}


def decompose(family: str, numbers: tuple, *, max_chars: int = MAX_CHARS) -> tuple[str, str] | None:
    """(solution text, final answer) of a recognised problem in the decomposed style, or None when it would
    be longer than ``max_chars`` characters (the caller writes the steps style instead). Raises
    ``CalculatorError`` where there is no answer (division by zero, a negative square root)."""
    if family not in PLANS:
        return None
    if family in ("power", "function_value"):
        # bound the work before building it: the partial products of x^n grow about 5 digits a power
        x, n = numbers[0], numbers[-1]
        if n > 6 or len(x.lstrip("-").replace(".", "")) * n > 40:
            return None
    out = PLANS[family](*numbers)
    lines, final = out[0], out[1]
    unit = out[2] if len(out) > 2 else ""
    text = "\n".join([*lines, f"答案：{final}{unit}"])
    if len(text) > max_chars:
        return None
    return text, final
