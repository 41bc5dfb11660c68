"""Rule-based worked solutions for the competition's problem families (the winners' lever).

:func:`recognise` reads a problem's family and numbers from its text (the competition's wordings, as
:mod:`mathlora.synth.competition` writes them); :func:`worked_solution` rebuilds the solution from those
numbers as short steps of one operation each, in one of the solution styles:

* ``answer``: the competition's original format (not built here: the record keeps its solution);
* ``steps``: each computation written out with its result, ``1234.5 - 1000 = 234.5``;
* ``calculator``: the same steps with every computation written ``<<expr=value>>`` (GSM8K's annotation), so at
  inference a calculator (:mod:`mathlora.calculator`) can supply ``value`` once the model wrote ``<<expr=``.

The last line is ``答案：<final>``. Every value a step prints comes from the calculator itself, formatted by
the normalize rule (more than two decimals -> two), so training text and decoding-time results share one
number format. Operands are copied from the problem (or from an earlier step) exactly as written, which is
what a small model can learn to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from mathlora.calculator import calculate

STYLES = ("answer", "steps", "calculator")
_NUM = r"(-?\d+(?:\.\d+)?)"
_Q = r"\s*[？?]?\s*"


@dataclass(frozen=True)
class Step:
    """One line of a worked solution: ``label`` then the computation ``expr`` (or a plain statement)."""

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


def _plan_arithmetic(m: re.Match) -> Plan:
    expr = f"{m.group(1)} {m.group(2)} {m.group(3)}"
    return Plan(_OPS[m.group(2)], (Step("", expr),), calculate(expr))


_OPS = {"+": "addition", "-": "subtraction", "*": "multiplication", "/": "division"}


def _one(family: str, label: str, expr: str, unit: str = "") -> Plan:
    return Plan(family, (Step(label, expr, unit),), calculate(expr), unit)


def _two(family: str, first: tuple[str, str], second: Callable[[str], tuple[str, str]], unit: str = "") -> Plan:
    """Two steps; the second's expression is built from the first's value."""
    a = Step(first[0], first[1])
    label, expr = second(a.value())
    b = Step(label, expr, unit)
    return Plan(family, (a, b), b.value(), unit)


def _plan_linear(m: re.Match) -> Plan:
    a, b = m.group(1), m.group(2)
    return _two("linear_equation", (f"移项：{a}x = ", f"0 - {b}"), lambda rhs: ("x = ", f"{rhs} / {a}"))


def _plan_function_value(m: re.Match) -> Plan:
    # One expression: the power printed to two decimals, times a coefficient up to 99, would miss the
    # answer's 1e-2 tolerance, so the value is computed from the problem's own numbers in one step.
    x, coefficient, exponent = m.group(1), m.group(2), m.group(3)
    return _one("function_value", "y = ", f"{coefficient} * {x}^{exponent}")


def _plan_mean(m: re.Match) -> Plan | None:
    items = [t.strip() for t in m.group(1).split(",")]
    if not items or not all(re.fullmatch(_NUM, t) for t in items):
        return None
    return _two("mean", ("总和：", " + ".join(items)), lambda total: ("平均值：", f"{total} / {len(items)}"))


def _plan_fraction(m: re.Match) -> Plan | None:
    num, den = m.group(1), m.group(2)
    if int(den) == 0:
        return None
    g = Step("最大公约数：", f"gcd({num}, {den})")
    gv = g.value()
    top, bottom = Step("分子：", f"{num} / {gv}"), Step("分母：", f"{den} / {gv}")
    return Plan("fraction_simplify", (g, top, bottom), f"{top.value()}/{bottom.value()}")


# (family, pattern, planner) in the order they are tried; patterns match the whole problem.
_RULES: list[tuple[re.Pattern, Callable[[re.Match], Plan | None]]] = [
    (re.compile(rf"计算\s*{_NUM} ([-+*/]) {_NUM}\s*等于多少{_Q}"), _plan_arithmetic),
    (re.compile(rf"计算\s*{_NUM}\s*的\s*(\d+)\s*次方{_Q}"),
     lambda m: _one("power", "", f"{m.group(1)}^{m.group(2)}")),
    (re.compile(rf"计算\s*{_NUM}\s*的平方根{_Q}"), lambda m: _one("sqrt", "", f"sqrt({m.group(1)})")),
    (re.compile(r"解方程\s*(-?\d+)x \+ (-?\d+) = 0\s*"), _plan_linear),
    (re.compile(rf"当 x = {_NUM} 时，求函数 y = (\d+)x\^(\d+) 的值\s*"), _plan_function_value),
    (re.compile(r"求以下数据的平均值[：:]\s*\[([^\[\]]*)\]\s*"), _plan_mean),
    (re.compile(r"(?:一个长方形的长为 (\d+(?:\.\d+)?) 厘米，宽为 (\d+(?:\.\d+)?) 厘米，请计算其面积。"
                r"|已知长方形的长是 (\d+(?:\.\d+)?) 厘米，宽是 (\d+(?:\.\d+)?) 厘米，求这个长方形的面积。)\s*"),
     lambda m: _one("rectangle_area", "面积：", f"{m.group(1) or m.group(3)} * {m.group(2) or m.group(4)}",
                    " 平方厘米")),
    (re.compile(rf"某商品原价为 {_NUM} 元，打 {_NUM} 折后的价格是多少元{_Q}"),
     lambda m: _one("discount", "折后价：", f"{m.group(1)} * {m.group(2)} / 10")),
    (re.compile(rf"某商品原价为 {_NUM} 元，优惠 {_NUM}% 后的价格是多少元{_Q}"),
     lambda m: _two("discount", ("剩余比例：", f"100 - {m.group(2)}"),
                    lambda rest: ("优惠后价格：", f"{m.group(1)} * {rest} / 100"))),
    (re.compile(rf"某商品原价为 {_NUM} 元，现价为 {_NUM} 元，现价比原价便宜了多少元{_Q}"),
     lambda m: _one("discount", "便宜：", f"{m.group(1)} - {m.group(2)}")),
    (re.compile(rf"一件商品的进价为 {_NUM} 元，商家按进价加价 {_NUM}% 出售，售价是多少元{_Q}"),
     lambda m: _two("sales", ("售价比例：", f"100 + {m.group(2)}"),
                    lambda ratio: ("售价：", f"{m.group(1)} * {ratio} / 100"))),
    (re.compile(rf"商店以每件 {_NUM} 元的价格购进一批商品，以每件 {_NUM} 元的价格卖出，"
                rf"卖出 (\d+) 件后共获利多少元{_Q}"),
     lambda m: _two("sales", ("每件获利：", f"{m.group(2)} - {m.group(1)}"),
                    lambda gain: ("共获利：", f"{gain} * {m.group(3)}"))),
    (re.compile(rf"某商品的售价为 {_NUM} 元，利润率为 {_NUM}%，这件商品的进价是多少元{_Q}"),
     lambda m: _two("sales", ("售价比例：", f"100 + {m.group(2)}"),
                    lambda ratio: ("进价：", f"{m.group(1)} * 100 / {ratio}"))),
    (re.compile(r"每个(\S+?)重 (\d+(?:\.\d+)?) 克，(\d+) 个\1一共重多少克[？?]?\s*"),
     lambda m: _one("mass", "总重：", f"{m.group(2)} * {m.group(3)}", " 克")),
    (re.compile(r"一袋(\S+?)重 (\d+(?:\.\d+)?) 克，用去了 (\d+(?:\.\d+)?) 克，还剩多少克[？?]?\s*"),
     lambda m: _one("mass", "还剩：", f"{m.group(2)} - {m.group(3)}", " 克")),
    (re.compile(r"把 (\d+(?:\.\d+)?) 克(\S+?)平均分成 (\d+) 份，每份重多少克[？?]?\s*"),
     lambda m: _one("mass", "每份：", f"{m.group(1)} / {m.group(3)}", " 克")),
    (re.compile(r"将分数 (\d+)/(\d+) 化简为最简分数。?\s*"), _plan_fraction),
]


def recognise(problem: str) -> Plan | None:
    """The worked-solution plan of a competition problem, or None when no family's wording matches."""
    text = problem.strip()
    for pattern, planner in _RULES:
        m = pattern.fullmatch(text)
        if m:
            try:
                return planner(m)
            except Exception:  # a refused computation (division by zero, overflow): not rewritable
                return None
    return None


def render(plan: Plan, style: str) -> str:
    """The worked solution text of ``plan`` in ``style`` (``steps`` or ``calculator``)."""
    if style not in ("steps", "calculator"):
        raise ValueError(f"style must be 'steps' or 'calculator', got {style!r}")
    lines = []
    for step in plan.steps:
        if style == "calculator":
            lines.append(f"{step.label}<<{step.expr}={step.value()}>>{step.unit}")
        else:
            lines.append(f"{step.label}{step.expr} = {step.value()}{step.unit}")
    lines.append(f"答案：{plan.final}{plan.unit}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Rewrite:
    status: str            # rewritten | mismatch | unknown | kept (style "answer")
    family: str            # the recognised family, or "unknown"
    solution: str          # the worked solution when rewritten, else the original
    rebuilt_answer: str | None = None
    original_answer: str | None = None


def rewrite_solution(problem: str, solution: str, style: str, *, atol: float = 1e-2) -> Rewrite:
    """Rebuild ``solution`` as a worked solution in ``style`` from the problem's own numbers.

    The original is kept when the family is unknown, or when the rebuilt final answer disagrees with the
    original's (numerically within ``atol``; fractions exactly, in lowest terms where the original says so).
    """
    from mathlora.evaluate.answers import answers_match, extract_gold_answer, requires_lowest_terms

    if style not in STYLES:
        raise ValueError(f"solution style must be one of {', '.join(STYLES)}, got {style!r}")
    plan = recognise(problem)
    if style == "answer":
        return Rewrite("kept", plan.family if plan else "unknown", solution)
    if plan is None:
        return Rewrite("unknown", "unknown", solution)
    original = extract_gold_answer(solution)
    rebuilt = extract_gold_answer(f"答案：{plan.final}")
    if not answers_match(rebuilt, original, atol=atol, lowest_terms=requires_lowest_terms(solution)):
        return Rewrite("mismatch", plan.family, solution, plan.final, original.text if original else None)
    return Rewrite("rewritten", plan.family, render(plan, style), plan.final, original.text)


CALC_RE = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def strip_annotations(text: str) -> str:
    """``<<a + b=c>>`` -> ``a + b = c``: a calculator-style solution read as a steps-style one."""
    return CALC_RE.sub(lambda m: f"{m.group(1)} = {m.group(2)}", text)
