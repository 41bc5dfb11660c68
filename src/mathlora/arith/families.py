"""The contest's problem families, each declared once: wording, parser, raw answer, worked solution, difficulty.

Read by ``synth`` (draw numbers, write the problem and the contest's raw solution), ``rewrite`` (recognise a
problem, rebuild its solution as worked steps), the heuristic judge (difficulty from the numbers) and grading
(the per-family report). A family fixed here changes everywhere at once.

The formats are the contest's ``train.json`` as it is, checked line by line against real lines
(``../shared/data/contest_sample.jsonl``): ``D28`` is Python's ``decimal`` in its default context (28
significant digits, half-even) printed with ``str()``; ``float`` is a Python float printed with ``repr``.

======================  ============================================  ==============================================
family                  problem                                       raw solution
======================  ============================================  ==============================================
addition ... division   ``计算 {a} {op} {b} 等于多少？``                 ``{a} {op} {b} = {D28}`` (a product: 4 decimals)
power                   ``计算 {x} 的 {n} 次方？``                      ``{x}^{n} = {D28 of x**n}`` (signed base)
sqrt                    ``计算 {x} 的平方根？``                          ``√{x} = {D28}``
fraction_simplify       ``将分数 {n}/{d} 进行简化。``                     ``最简化的形式为：{n/g}/{d/g}``
mean                    ``求以下数据的平均值：[a, b, ...]``                ``平均值为 {float}``
linear_equation         ``解方程 {a}x + {b} = 0``                        ``方程的解为：{float -b/a}``
function_value          ``当 x = {x} 时，求函数 y = {k}x^{n} 的值``          ``函数的值为：{D28 of k*x**n}``
rectangle_area          ``一个长方形的长为 {l} 厘米，宽为 {w} 厘米，...``       ``面积为 {l*w} 平方厘米``
mass                    ``某物体的密度为 {d} 克/立方厘米，体积为 {v} ...``       ``{d*v} 克``
discount                ``商品原价为 {a} 元，打折后的价格为 {b} 元，...``        ``{float (a-b)/a*100}``
sales                   ``去年销售额为 {a} 万元，今年销售额增加了 {b}%，...``     ``{float a + a*b/100}``
======================  ============================================  ==============================================

A worked solution (:class:`Plan`) is short steps of one computation each; every value a step prints comes
from :mod:`mathlora.arith.calculator`, and every expression writes a negative base in parentheses
(``(-456.58)^4``), so the sign is never ambiguous. ``difficulty`` gives a level 1-4 from the numbers, so the
recipe's 4:3:2:1 sample over levels 1-4 keeps every family.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Callable

from mathlora.arith.calculator import calculate

# The source's arithmetic: the decimal module's default context (28 significant digits, half-even).
SOURCE_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)

_NUM = r"(-?\d+(?:\.\d+)?)"
_INT = r"(-?\d+)"


@dataclass(frozen=True)
class Step:
    """One line of a worked solution: ``label`` then the computation ``expr``, then ``unit``."""

    label: str
    expr: str
    unit: str = ""

    def value(self) -> str:
        return calculate(self.expr)


@dataclass(frozen=True)
class Plan:
    family: str
    steps: tuple[Step, ...]
    final: str            # the final answer: a step's value, or a text built from values (a fraction)
    unit: str = ""


@dataclass(frozen=True)
class Family:
    """One problem family of the contest, declared once.

    ``pattern`` matches the whole problem text and ``parse`` turns its match into the family's numbers (a
    tuple of ``str`` exactly as written, or ``int``). ``draw`` picks numbers in the contest's ranges;
    ``problem`` and ``answer`` write the problem and the contest's raw solution from them; ``plan`` writes the
    worked solution; ``difficulty`` rates them 1-4. ``share`` is the family's share of the contest's distinct
    Chinese pairs, ``space`` the number of distinct problems when it is small (None: practically unbounded).
    """

    name: str
    pattern: re.Pattern
    parse: Callable[[re.Match], tuple]
    draw: Callable[[random.Random], tuple]
    problem: Callable[..., str]
    answer: Callable[..., str]
    plan: Callable[..., Plan]
    difficulty: Callable[..., int]
    share: int
    space: int | None = None

    def make(self, rng: random.Random) -> tuple[str, str]:
        """A new (problem, raw solution) pair in the contest's format."""
        numbers = self.draw(rng)
        return self.problem(*numbers), self.answer(*numbers)


# ------------------------------------------------------------------------------------------- numbers

def amount(rng: random.Random, max_cents: int, *, negative: float = 0.0, min_cents: int = 1) -> str:
    """A number with exactly two decimals, negative with probability ``negative``: ``'-2369.17'``."""
    cents = rng.randint(min_cents, max_cents)
    sign = "-" if rng.random() < negative else ""
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def power_expr(base: str, exponent: int | str) -> str:
    """``x^n`` for the calculator, a negative base in parentheses: ``(-456.58)^4`` (never -(456.58^4))."""
    return f"({base})^{exponent}" if base.startswith("-") else f"{base}^{exponent}"


def _one(family: str, label: str, expr: str, unit: str = "") -> Plan:
    return Plan(family, (Step(label, expr, unit),), calculate(expr), unit)


def _two(family: str, first: tuple[str, str], second: Callable[[str], tuple[str, str]], unit: str = "") -> Plan:
    """Two steps; the second's expression is built from the first's value."""
    a = Step(first[0], first[1])
    label, expr = second(a.value())
    b = Step(label, expr, unit)
    return Plan(family, (a, b), b.value(), unit)


def _clamp(level: int) -> int:
    return max(1, min(4, level))


# ------------------------------------------------------------------------------------------- families

_ARITH_OPS = {"addition": "+", "subtraction": "-", "multiplication": "*", "division": "/"}
_ARITH_SOURCE = {"+": SOURCE_CONTEXT.add, "-": SOURCE_CONTEXT.subtract, "*": SOURCE_CONTEXT.multiply,
                 "/": SOURCE_CONTEXT.divide}
_ARITH_SHARE = 359_347  # the four operators together, about a quarter each


def _arithmetic(name: str) -> Family:
    op = _ARITH_OPS[name]
    base = 1 if op in "+-" else 2

    def difficulty(a: str, b: str) -> int:  # each negative operand (``- -2728.62``) is one more sign rule
        return _clamp(base + a.startswith("-") + b.startswith("-"))

    return Family(
        name=name,
        pattern=re.compile(rf"计算\s*{_NUM} {re.escape(op)} {_NUM}\s*等于多少\s*[？?]?\s*"),
        parse=lambda m: (m.group(1), m.group(2)),
        draw=lambda rng: (amount(rng, 999_999, negative=0.48), amount(rng, 999_999, negative=0.48)),
        problem=lambda a, b: f"计算 {a} {op} {b} 等于多少？",
        answer=lambda a, b: f"{a} {op} {b} = {_ARITH_SOURCE[op](Decimal(a), Decimal(b))}",
        plan=lambda a, b: _one(name, "", f"{a} {op} {b}"),
        difficulty=difficulty,
        share=_ARITH_SHARE // 4,
    )


def _power_level(x: str, n: int) -> int:
    return _clamp({0: 1, 1: 1, 2: 2, 3: 3}.get(n, 4))


POWER = Family(
    name="power",
    pattern=re.compile(rf"计算\s*{_NUM}\s*的\s*(\d+)\s*次方\s*[？?]?\s*"),
    parse=lambda m: (m.group(1), int(m.group(2))),
    draw=lambda rng: (amount(rng, 99_999, negative=0.43), rng.randint(0, 5)),
    problem=lambda x, n: f"计算 {x} 的 {n} 次方？",
    answer=lambda x, n: f"{x}^{n} = {SOURCE_CONTEXT.power(Decimal(x), n)}",
    plan=lambda x, n: _one("power", "", power_expr(x, n)),
    difficulty=_power_level,
    share=39_207,
)


def _sqrt_level(x: str) -> int:
    value = Decimal(x)
    if value >= 0 and value == value.to_integral_value() and math.isqrt(int(value)) ** 2 == int(value):
        return 1
    return 2 if value < 1000 else 3


SQRT = Family(
    name="sqrt",
    pattern=re.compile(rf"计算\s*{_NUM}\s*的平方根\s*[？?]?\s*"),
    parse=lambda m: (m.group(1),),
    draw=lambda rng: (amount(rng, 999_999),),
    problem=lambda x: f"计算 {x} 的平方根？",
    answer=lambda x: f"√{x} = {SOURCE_CONTEXT.sqrt(Decimal(x))}",
    plan=lambda x: _one("sqrt", "", f"sqrt({x})"),
    difficulty=_sqrt_level,
    share=39_227,
)


def _fraction_draw(rng: random.Random) -> tuple[int, int]:
    den = rng.randint(2, 10)
    return rng.randint(1, den - 1), den


def _fraction_plan(num: int, den: int) -> Plan:
    g = Step("最大公约数：", f"gcd({num}, {den})")
    gv = g.value()
    top, bottom = Step("分子：", f"{num} / {gv}"), Step("分母：", f"{den} / {gv}")
    return Plan("fraction_simplify", (g, top, bottom), f"{top.value()}/{bottom.value()}")


FRACTION = Family(
    name="fraction_simplify",
    pattern=re.compile(r"将分数\s*(\d+)/([1-9]\d*)\s*进行简化。?\s*"),
    parse=lambda m: (int(m.group(1)), int(m.group(2))),
    draw=_fraction_draw,
    problem=lambda n, d: f"将分数 {n}/{d} 进行简化。",
    answer=lambda n, d: f"最简化的形式为：{n // math.gcd(n, d)}/{d // math.gcd(n, d)}",
    plan=_fraction_plan,
    difficulty=lambda n, d: 1,  # one-digit terms: the easiest family there is
    share=45,
    space=45,  # 1 <= n < d <= 10
)


def _mean_parse(m: re.Match) -> tuple:
    items = [t.strip() for t in m.group(1).split(",")]
    if not items or not all(re.fullmatch(_NUM, t) for t in items):
        raise ValueError("not a list of numbers")
    return tuple(items)


def _mean_plan(*items: str) -> Plan:
    listing = ", ".join(items)
    total = Step("总和：", " + ".join(items))
    count = Step("个数：", f"count({listing})")  # the calculator counts: the model only copies the list
    mean = Step("平均值：", f"{total.value()} / {count.value()}")
    return Plan("mean", (total, count, mean), mean.value())


def _mean_answer(*items: str) -> str:
    numbers = [int(t) for t in items]
    return f"平均值为 {sum(numbers) / len(numbers)!r}"


MEAN = Family(
    name="mean",
    pattern=re.compile(r"求以下数据的平均值[：:]\s*\[([^\[\]]*)\]\s*"),
    parse=_mean_parse,
    draw=lambda rng: tuple(str(rng.randint(1, 100)) for _ in range(rng.randint(3, 10))),
    problem=lambda *items: f"求以下数据的平均值：[{', '.join(items)}]",
    answer=_mean_answer,
    plan=_mean_plan,
    difficulty=lambda *items: 1 if len(items) <= 5 else 2 if len(items) <= 8 else 3,
    share=19_709,
)


def _linear_draw(rng: random.Random) -> tuple[int, int]:
    return rng.choice((-1, 1)) * rng.randint(1, 100), rng.randint(-100, 100)


def _linear_level(a: int, b: int) -> int:
    return _clamp((1 if a and b % a == 0 else 2) + (a < 0))


LINEAR = Family(
    name="linear_equation",
    pattern=re.compile(rf"解方程\s*{_INT}x \+ {_INT} = 0\s*"),
    parse=lambda m: (int(m.group(1)), int(m.group(2))),
    draw=_linear_draw,
    problem=lambda a, b: f"解方程 {a}x + {b} = 0",
    answer=lambda a, b: f"方程的解为：{-b / a!r}",
    plan=lambda a, b: _two("linear_equation", (f"移项：{a}x = ", f"0 - {b}"), lambda rhs: ("x = ", f"{rhs} / {a}")),
    difficulty=_linear_level,
    share=40_080,
)


def _function_plan(x: str, k: int, n: int) -> Plan:
    # one expression from the problem's own numbers: a rounded power times k would miss the tolerance
    return _one("function_value", "y = ", f"{k} * {power_expr(x, n)}")


FUNCTION_VALUE = Family(
    name="function_value",
    pattern=re.compile(rf"当 x = {_NUM} 时，求函数 y = (\d+)x\^(\d+) 的值\s*"),
    parse=lambda m: (m.group(1), int(m.group(2)), int(m.group(3))),
    draw=lambda rng: (amount(rng, 1000, min_cents=10), rng.randint(1, 100), rng.randint(1, 99)),
    problem=lambda x, k, n: f"当 x = {x} 时，求函数 y = {k}x^{n} 的值",
    answer=lambda x, k, n: f"函数的值为：{SOURCE_CONTEXT.multiply(Decimal(k), SOURCE_CONTEXT.power(Decimal(x), n))}",
    plan=_function_plan,
    difficulty=lambda x, k, n: 2 if n <= 5 else 3 if n <= 30 else 4,
    share=20_028,
)

RECTANGLE = Family(
    name="rectangle_area",
    pattern=re.compile(r"一个长方形的长为 (\d+) 厘米，宽为 (\d+) 厘米，请计算其面积。\s*"),
    parse=lambda m: (int(m.group(1)), int(m.group(2))),
    draw=lambda rng: (rng.randint(1, 100), rng.randint(1, 100)),
    problem=lambda length, width: f"一个长方形的长为 {length} 厘米，宽为 {width} 厘米，请计算其面积。",
    answer=lambda length, width: f"面积为 {length * width} 平方厘米",
    plan=lambda length, width: _one("rectangle_area", "面积：", f"{length} * {width}", " 平方厘米"),
    difficulty=lambda length, width: 1 if min(length, width) < 10 else 2,
    share=8_665,
    space=10_000,
)

MASS = Family(
    name="mass",
    pattern=re.compile(r"某物体的密度为 (\d+) 克/立方厘米，体积为 (\d+) 立方厘米，请计算该物体的质量。\s*"),
    parse=lambda m: (int(m.group(1)), int(m.group(2))),
    draw=lambda rng: (rng.randint(1, 10), rng.randint(1, 10)),
    problem=lambda d, v: f"某物体的密度为 {d} 克/立方厘米，体积为 {v} 立方厘米，请计算该物体的质量。",
    answer=lambda d, v: f"{d * v} 克",
    plan=lambda d, v: _one("mass", "质量：", f"{d} * {v}", " 克"),
    difficulty=lambda d, v: 1,
    share=100,
    space=100,
)

DISCOUNT = Family(
    name="discount",
    pattern=re.compile(r"商品原价为 (\d+) 元，打折后的价格为 (\d+) 元，请计算打折的折扣比例。\s*"),
    parse=lambda m: (int(m.group(1)), int(m.group(2))),
    draw=lambda rng: (rng.randint(1, 100), rng.randint(1, 100)),
    problem=lambda a, b: f"商品原价为 {a} 元，打折后的价格为 {b} 元，请计算打折的折扣比例。",
    answer=lambda a, b: repr((a - b) / a * 100),
    plan=lambda a, b: _two("discount", ("差价：", f"{a} - {b}"), lambda d: ("折扣比例：", f"{d} / {a} * 100")),
    difficulty=lambda a, b: 2 if b <= a else 3,
    share=6_275,
    space=10_000,
)

SALES = Family(
    name="sales",
    pattern=re.compile(r"去年销售额为 (\d+) 万元，今年销售额增加了 (\d+)%，请计算今年的销售额。\s*"),
    parse=lambda m: (int(m.group(1)), int(m.group(2))),
    draw=lambda rng: (rng.randint(1, 100), rng.randint(1, 100)),
    problem=lambda a, b: f"去年销售额为 {a} 万元，今年销售额增加了 {b}%，请计算今年的销售额。",
    answer=lambda a, b: repr(a + a * b / 100),
    plan=lambda a, b: _two("sales", ("增长：", f"{a} * {b} / 100"), lambda g: ("今年销售额：", f"{a} + {g}")),
    difficulty=lambda a, b: 2 if a * b % 100 == 0 else 3,
    share=6_266,
    space=10_000,
)

# In the order recognition tries them (the patterns do not overlap).
CHINESE: tuple[Family, ...] = (
    *(_arithmetic(name) for name in _ARITH_OPS), POWER, SQRT, LINEAR, FUNCTION_VALUE, MEAN, RECTANGLE, DISCOUNT,
    SALES, MASS, FRACTION)
BY_NAME: dict[str, Family] = {f.name: f for f in CHINESE}

# English MATH problems (LaTeX solutions with \boxed{}): 9,993 lines beside the 538,949 distinct Chinese pairs.
ENGLISH = "english_math"
ENGLISH_SHARE = 9_993


@dataclass(frozen=True)
class Recognised:
    family: Family
    numbers: tuple

    def plan(self) -> Plan:
        return self.family.plan(*self.numbers)

    def difficulty(self) -> int:
        return self.family.difficulty(*self.numbers)


def recognise(problem: str) -> Recognised | None:
    """The family and numbers of a contest problem, or None when no family's wording matches."""
    text = problem.strip()
    for family in CHINESE:
        m = family.pattern.fullmatch(text)
        if m:
            try:
                return Recognised(family, family.parse(m))
            except ValueError:
                return None
    return None


def family_of(problem: str) -> str | None:
    """The family name of a problem (``english_math`` for LaTeX/English prose), or None."""
    found = recognise(problem)
    if found is not None:
        return found.family.name
    return ENGLISH if re.search(r"[A-Za-z]{2,}", problem) and not re.search(r"[\u4e00-\u9fff]", problem) else None
