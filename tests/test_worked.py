"""Worked solutions: every step recomputed independently, final answers equal the answer style's."""

import math
import re
from decimal import ROUND_HALF_UP, Decimal, getcontext
from fractions import Fraction

import pytest

from mathlora.evaluate.answers import answers_match, extract_gold_answer, requires_lowest_terms
from mathlora.synth.competition import FAMILIES, generate
from mathlora.synth.steps import CALC_RE, recognise, rewrite_solution, strip_annotations

getcontext().prec = 60


def independent_value(expr: str) -> Fraction:
    """Recompute an annotation with Python's own arithmetic (not mathlora.calculator)."""
    m = re.fullmatch(r"gcd\((\d+), (\d+)\)", expr)
    if m:
        return Fraction(math.gcd(int(m.group(1)), int(m.group(2))))
    m = re.fullmatch(r"sqrt\((\d+(?:\.\d+)?)\)", expr)
    if m:
        return Fraction(Decimal(m.group(1)).sqrt())
    m = re.fullmatch(r"(-?[\d.]+) \* (-?[\d.]+)\^(\d+)", expr)
    if m:
        return Fraction(m.group(1)) * Fraction(m.group(2)) ** int(m.group(3))
    m = re.fullmatch(r"(-?[\d.]+)\^(\d+)", expr)
    if m:
        return Fraction(m.group(1)) ** int(m.group(2))
    terms = re.split(r" ([-+*/]) ", expr)
    value = Fraction(terms[0])
    for op, operand in zip(terms[1::2], terms[2::2]):  # left to right: the steps never mix precedence
        x = Fraction(operand)
        value = {"+": value + x, "-": value - x, "*": value * x, "/": value / x}[op]
    return value


def two_decimals(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_step_recomputes_and_the_final_answer_equals_the_answer_style(seed):
    answer = generate(1200, seed)
    steps = generate(1200, seed, style="steps")
    calc = generate(1200, seed, style="calculator")
    assert [r["problem"] for r in answer] == [r["problem"] for r in steps] == [r["problem"] for r in calc]
    families = set()
    for a, s, c in zip(answer, steps, calc):
        if a["type"] == "english_math":
            assert a["solution"] == s["solution"] == c["solution"]  # no rules: kept
            continue
        families.add(a["type"])
        assert strip_annotations(c["solution"]) == s["solution"]
        annotations = CALC_RE.findall(c["solution"])
        assert annotations, c["solution"]
        for expr, printed in annotations:
            assert Decimal(printed) == two_decimals(independent_value(expr)), (expr, printed)
        assert c["solution"].splitlines()[-1].startswith("答案：")
        final, gold = extract_gold_answer(c["solution"]), extract_gold_answer(a["solution"])
        assert answers_match(final, gold, atol=1e-2, lowest_terms=requires_lowest_terms(a["solution"]))
    assert families == set(FAMILIES) - {"english_math"}


def test_worked_solution_examples():
    assert rewrite_solution("计算 4204.22 + -2369.17 等于多少？", "4204.22 + -2369.17 = 1835.05",
                            "calculator").solution == "<<4204.22 + -2369.17=1835.05>>\n答案：1835.05"
    sales = rewrite_solution("商店以每件 10.5 元的价格购进一批商品，以每件 12.75 元的价格卖出，卖出 40 件后共获利多少元？",
                             "90", "steps")
    assert sales.solution == "每件获利：12.75 - 10.5 = 2.25\n共获利：2.25 * 40 = 90\n答案：90"
    linear = rewrite_solution("解方程 -39x + 20 = 0", "方程的解为：0.5128205128205128", "calculator")
    assert linear.solution == "移项：-39x = <<0 - 20=-20>>\nx = <<-20 / -39=0.51>>\n答案：0.51"
    frac = rewrite_solution("将分数 495/810 化简为最简分数。", "最简化的形式为：11/18", "calculator")
    assert frac.solution.endswith("答案：11/18") and "<<gcd(495, 810)=45>>" in frac.solution


def test_unknown_and_mismatched_records_keep_their_solution():
    english = rewrite_solution("What is $5\\%$ of $40$?", "So it is $\\boxed{2}$.", "steps")
    assert (english.status, english.solution) == ("unknown", "So it is $\\boxed{2}$.")
    wrong = rewrite_solution("计算 1.5 + 2.5 等于多少？", "1.5 + 2.5 = 5", "calculator")
    assert (wrong.status, wrong.solution, wrong.rebuilt_answer) == ("mismatch", "1.5 + 2.5 = 5", "4")
    assert rewrite_solution("计算 1.5 + 2.5 等于多少？", "1.5 + 2.5 = 4", "answer").status == "kept"


def test_recognise_tolerates_ascii_question_marks_and_rejects_other_text():
    assert recognise("计算 2.5 的 3 次方?").family == "power"
    assert recognise("计算 2.5 的 3 次方，再加 1") is None
    assert recognise("将分数 3/0 化简为最简分数。") is None
