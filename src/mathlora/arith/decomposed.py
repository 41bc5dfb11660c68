"""The ``decomposed`` solution style: every step small enough to compute digit by digit, every step exact.

A model scored without a tool has to compute each number itself; a 135M model cannot compute
``3963.85 * 5055.68`` in one step, but it can copy a number and change one digit, or multiply a number by one
digit. So every multi-digit operation is written in such steps (no spaces: SmolLM2's tokenizer gives every
digit its own token, and a space is one more token):

* signs first: ``-9740.24--4497.85=-(9740.24-4497.85)``; then the magnitudes only;
* ``+`` and ``-`` (the arithmetic families and the discount's difference): in columns, lowest place first
  (:data:`ADDITION`): both operands copied after one-letter place labels (``f4e2d0c4b2a2``: ``a`` hundredths,
  ``c`` units, ``f`` thousands), then one line a place, ``c:4+9+1=14,4.39``: the two digits, the carry (or
  borrow) from below, the column's result and the result so far; or (``ADDITION = "place"``) the second operand
  split by place value, one part per line (``4204.22+2000=6204.22``, ``6204.22+300=6504.22``, ...);
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

from decimal import Decimal

from mathlora.arith.digits import (euclid, multiply, num, power, signed_division, signed_product, signed_sum,
                                   small_sum, square_root)

# A decomposed solution longer than this (characters; SmolLM2 spends about one token per character on
# these digit-and-operator lines, 1-3 per Chinese character) is written in the steps style instead.
MAX_CHARS = 400

# How the +/- families (and the discount's difference) add and subtract: "column" (digit by digit with carries,
# :func:`mathlora.arith.digits.columns`) or "place" (the second operand split by place value, Goat's way).
# bench/step_methods.py --op addition (then bench/addition_methods.py) trained both on the same 960 +/- problems
# for 60 steps (BENCHMARKS.md): 86% of the column steps in the tuned model's completions were right against 41%
# of the place-value steps.
ADDITION = "column"


# ------------------------------------------------------------------------------------------- families

def _arith(op: str):
    def plan(a: str, b: str):
        if op in "+-":
            lines, result = signed_sum(a, op, b, method=ADDITION)
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
    steps, diff = signed_sum(str(a), "-", str(b), method=ADDITION)
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
