"""Worked solutions: every step recomputed independently, final answers equal the answer style's."""

import json
import math
import re
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal, getcontext
from fractions import Fraction
from pathlib import Path

import pytest

from mathlora.arith.answers import answers_match, extract_gold_answer, requires_lowest_terms
from mathlora.synth.competition import FAMILIES, generate
from mathlora.arith.families import recognise
from mathlora.arith.calculator import annotations, strip_annotations
from mathlora.arith.worked import apply_style, rewrite_solution

getcontext().prec = 60


def independent_value(expr: str) -> Fraction:
    """Recompute an annotation with Python's own arithmetic (not mathlora.arith.calculator)."""
    m = re.fullmatch(r"gcd\((\d+), (\d+)\)", expr)
    if m:
        return Fraction(math.gcd(int(m.group(1)), int(m.group(2))))
    m = re.fullmatch(r"count\(([\d, ]+)\)", expr)
    if m:
        return Fraction(len(m.group(1).split(", ")))
    m = re.fullmatch(r"sqrt\((\d+(?:\.\d+)?)\)", expr)
    if m:
        return Fraction(Decimal(m.group(1)).sqrt())
    m = re.fullmatch(r"(-?[\d.]+) \* (\(-[\d.]+\)|[\d.]+)\^(\d+)", expr)
    if m:
        return Fraction(m.group(1)) * Fraction(m.group(2).strip("()")) ** int(m.group(3))
    m = re.fullmatch(r"(\(-[\d.]+\)|[\d.]+)\^(\d+)", expr)  # a negative base always in parentheses
    if m:
        return Fraction(m.group(1).strip("()")) ** int(m.group(2))
    terms = re.split(r" ([-+*/]) ", expr)
    value = Fraction(terms[0])
    for op, operand in zip(terms[1::2], terms[2::2]):  # left to right: the steps never mix precedence
        x = Fraction(operand)
        value = {"+": value + x, "-": value - x, "*": value * x, "/": value / x}[op]
    return value


def printed_ok(printed: str, value: Fraction) -> bool:
    """Two decimals, half-up, for ordinary values; ten significant digits in E notation for huge or tiny ones."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    if value != 0 and not (Fraction(1, 10**6) <= abs(value) < 10 ** 28):
        return "E" in printed and Decimal(printed) == +exact.normalize().quantize(
            Decimal(1).scaleb(exact.adjusted() - 9), ROUND_HALF_UP)
    return Decimal(printed) == exact.quantize(Decimal("0.01"), ROUND_HALF_UP)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_step_recomputes_and_the_final_answer_equals_the_answer_style(seed):
    answer = generate(1200, seed, mix="equal")
    steps = generate(1200, seed, style="steps", mix="equal")
    calc = generate(1200, seed, style="calculator", mix="equal")
    assert [r["problem"] for r in answer] == [r["problem"] for r in steps] == [r["problem"] for r in calc]
    families = set()
    for a, s, c in zip(answer, steps, calc):
        if a["type"] == "english_math":
            assert a["solution"] == s["solution"] == c["solution"]  # no rules: kept
            continue
        families.add(a["type"])
        assert strip_annotations(c["solution"]) == s["solution"]
        found = list(annotations(c["solution"]))
        assert found, c["solution"]
        for expr, printed in found:
            assert printed_ok(printed, independent_value(expr)), (expr, printed)
        assert c["solution"].splitlines()[-1].startswith("答案：")
        final, gold = extract_gold_answer(c["solution"]), extract_gold_answer(a["solution"])
        assert answers_match(final, gold, atol=1e-2, lowest_terms=requires_lowest_terms(a["solution"]))
    assert families == set(FAMILIES) - {"english_math"}


def test_worked_solution_examples():
    assert rewrite_solution("计算 4204.22 + -2369.17 等于多少？", "4204.22 + -2369.17 = 1835.05",
                            "calculator").solution == "<<4204.22 + -2369.17=1835.05>>\n答案：1835.05"
    linear = rewrite_solution("解方程 -39x + 20 = 0", "方程的解为：0.5128205128205128", "calculator")
    assert linear.solution == "移项：-39x = <<0 - 20=-20>>\nx = <<-20 / -39=0.51>>\n答案：0.51"
    frac = rewrite_solution("将分数 6/8 进行简化。", "最简化的形式为：3/4", "calculator")
    assert frac.solution == "最大公约数：<<gcd(6, 8)=2>>\n分子：<<6 / 2=3>>\n分母：<<8 / 2=4>>\n答案：3/4"
    discount = rewrite_solution("商品原价为 16 元，打折后的价格为 90 元，请计算打折的折扣比例。", "-462.5", "steps")
    assert discount.solution == "差价：16 - 90 = -74\n折扣比例：-74 / 16 * 100 = -462.5\n答案：-462.5"
    sales = rewrite_solution("去年销售额为 12 万元，今年销售额增加了 77%，请计算今年的销售额。", "21.240000000000002",
                             "calculator")
    assert sales.solution == "增长：<<12 * 77 / 100=9.24>>\n今年销售额：<<12 + 9.24=21.24>>\n答案：21.24"
    mass = rewrite_solution("某物体的密度为 10 克/立方厘米，体积为 3 立方厘米，请计算该物体的质量。", "30 克", "calculator")
    assert mass.solution == "质量：<<10 * 3=30>> 克\n答案：30 克"
    mean = rewrite_solution("求以下数据的平均值：[74, 13, 94]", "平均值为 60.333333333333336", "calculator")
    assert mean.solution == ("总和：<<74 + 13 + 94=181>>\n个数：<<count(74, 13, 94)=3>>\n平均值：<<181 / 3=60.33>>"
                             "\n答案：60.33")


def test_a_negative_power_base_is_parenthesised_and_keeps_its_sign():
    power = rewrite_solution("计算 -456.58 的 4 次方？", "-456.58^4 = 43457779803.13985296", "calculator")
    assert power.solution == "<<(-456.58)^4=43457779803.14>>\n答案：43457779803.14"
    odd = rewrite_solution("计算 -185.24 的 3 次方？", "-185.24^3 = -6356298.981824", "steps")
    assert odd.solution == "(-185.24)^3 = -6356298.98\n答案：-6356298.98"


def test_function_values_of_any_exponent_are_rewritten_with_e_notation():
    big = rewrite_solution("当 x = 4.03 时，求函数 y = 57x^54 的值", "函数的值为：2.769155521409239378157128235E+34",
                           "calculator")
    assert big.solution == "y = <<57 * 4.03^54=2.769155521E+34>>\n答案：2.769155521E+34"
    tiny = rewrite_solution("当 x = 0.54 时，求函数 y = 86x^90 的值", "函数的值为：7.078428267698237285903907346E-23",
                            "calculator")
    assert (tiny.status, tiny.rebuilt_answer) == ("rewritten", "7.078428268E-23")


def test_unknown_and_mismatched_records_keep_their_solution():
    english = rewrite_solution("What is $5\\%$ of $40$?", "So it is $\\boxed{2}$.", "steps")
    assert (english.status, english.solution) == ("unknown", "So it is $\\boxed{2}$.")
    wrong = rewrite_solution("计算 1.5 + 2.5 等于多少？", "1.5 + 2.5 = 5", "calculator")
    assert (wrong.status, wrong.solution, wrong.rebuilt_answer) == ("mismatch", "1.5 + 2.5 = 5", "4")
    assert rewrite_solution("计算 1.5 + 2.5 等于多少？", "1.5 + 2.5 = 4", "answer").status == "kept"
    refused = rewrite_solution("计算 1.00 / 0.00 等于多少？", "1.00 / 0.00 = 0", "calculator")
    assert (refused.status, refused.reason) == ("refused", "division by zero")


def test_recognise_tolerates_ascii_question_marks_and_rejects_other_text():
    assert recognise("计算 2.5 的 3 次方?").family.name == "power"
    assert recognise("计算 2.5 的 3 次方，再加 1") is None
    assert recognise("将分数 3/0 进行简化。") is None


def test_apply_style_one_record_one_failure_rule():
    from mathlora.arith.worked import NOT_BUILT, apply_style

    record = {"id": "r1", "problem": "计算 4204.22 + -2369.17 等于多少？", "solution": "4204.22 + -2369.17 = 1835.05"}
    styled, result = apply_style(record, "calculator")
    assert result.status == "rewritten" and styled == {**record, "original_solution": record["solution"],
                                                       "solution": "<<4204.22 + -2369.17=1835.05>>\n答案：1835.05"}
    bare, _ = apply_style(record, "steps", keep_original=False)
    assert bare == {**record, "solution": "4204.22 + -2369.17 = 1835.05\n答案：1835.05"}
    assert record["solution"] == "4204.22 + -2369.17 = 1835.05"  # the input is not changed
    # cannot be built: the record itself comes back, its solution unchanged, and the status says why
    for problem, solution, status in [("计算 1.5 + 2.5 等于多少？", "1.5 + 2.5 = 5", "mismatch"),
                                      ("计算 1.00 / 0.00 等于多少？", "1.00 / 0.00 = 0", "refused"),
                                      ("What is $5\\%$ of $40$?", "So it is $\\boxed{2}$.", "unknown")]:
        kept = {"problem": problem, "solution": solution}
        out, result = apply_style(kept, "calculator")
        assert out is kept and result.status == status and (status in NOT_BUILT) == (status != "unknown")
    assert apply_style(record, "answer") == (record, apply_style(record, "answer")[1])
    assert apply_style(record, "answer")[1].status == "kept"


SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "contest_sample.jsonl"


@pytest.mark.skipif(not SAMPLE.is_file(), reason=f"the real contest sample is not at {SAMPLE}")
@pytest.mark.parametrize("style", ["steps", "calculator"])
def test_apply_style_on_every_real_line_rewrites_the_chinese_ones_and_keeps_the_rest(style):
    lines = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    statuses = Counter()
    for record in lines:
        styled, result = apply_style(record, style)  # never raises on real data
        statuses[result.status] += 1
        if result.status == "rewritten":
            assert styled["original_solution"] == record["solution"] and styled["solution"] != record["solution"]
        else:
            assert styled is record  # kept as written
    chinese = sum(bool(re.search(r"[\u4e00-\u9fff]", r["problem"])) for r in lines)
    assert statuses["rewritten"] == chinese and statuses["mismatch"] == statuses["refused"] == 0
