"""The contest's families: verbatim real lines as golden cases, and the real sample of the contest's train.json.

The sample (``../shared/data/contest_sample.jsonl``, 1,992 raw lines a contestant published) is read where it
is; the tests that need it are skipped when it is absent (a user's clone). It is never copied here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest

from mathlora.data.ingest import ingest_file
from mathlora.data.config import IngestConfig
from mathlora.evaluate.math_grading import grade_one
from mathlora.arith.families import BY_NAME, CHINESE, family_of, recognise
from mathlora.label.heuristic import heuristic_difficulty
from mathlora.arith.calculator import annotations
from mathlora.arith.worked import rewrite_solution

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "contest_sample.jsonl"
needs_sample = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"the real contest sample is not at {SAMPLE}")

GOLDEN = [  # verbatim lines of the contest's train.json
    ("计算 -711.31 的 4 次方？", "-711.31^4 = 255997460543.58343921"),
    ("计算 -185.24 的 3 次方？", "-185.24^3 = -6356298.981824"),
    ("计算 819.19 的 0 次方？", "819.19^0 = 1"),
    ("计算 3963.85 * -5055.68 等于多少？", "3963.85 * -5055.68 = -20039957.1680"),
    ("计算 6145.00 的平方根？", "√6145.00 = 78.39005038906404479030928703"),
    ("当 x = 4.03 时，求函数 y = 57x^54 的值", "函数的值为：2.769155521409239378157128235E+34"),
    ("当 x = 0.54 时，求函数 y = 86x^90 的值", "函数的值为：7.078428267698237285903907346E-23"),
    ("解方程 6x + 0 = 0", "方程的解为：0.0"),
    ("商品原价为 16 元，打折后的价格为 90 元，请计算打折的折扣比例。", "-462.5"),
    ("去年销售额为 12 万元，今年销售额增加了 77%，请计算今年的销售额。", "21.240000000000002"),
    ("某物体的密度为 10 克/立方厘米，体积为 3 立方厘米，请计算该物体的质量。", "30 克"),
    ("计算 4204.22 + -2369.17 等于多少？", "4204.22 + -2369.17 = 1835.05"),
    ("计算 -9740.24 - -4497.85 等于多少？", "-9740.24 - -4497.85 = -5242.39"),
    ("计算 3008.48 / 3439.46 等于多少？", "3008.48 / 3439.46 = 0.8746954463782105330487925430"),
    ("求以下数据的平均值：[74, 13, 94, 35, 97, 56, 37]", "平均值为 58.0"),
    ("一个长方形的长为 87 厘米，宽为 4 厘米，请计算其面积。", "面积为 348 平方厘米"),
    ("将分数 6/8 进行简化。", "最简化的形式为：3/4"),
]


@pytest.mark.parametrize("problem, solution", GOLDEN)
def test_golden_lines_round_trip_through_their_family(problem, solution):
    found = recognise(problem)
    assert found is not None
    family = found.family
    assert family.problem(*found.numbers) == problem  # the wording, byte for byte
    assert family.answer(*found.numbers) == solution  # the raw answer, byte for byte
    for style in ("steps", "calculator"):
        assert rewrite_solution(problem, solution, style).status == "rewritten"
    assert 1 <= found.difficulty() <= 4


def test_every_family_declares_its_own_wording():
    assert len(CHINESE) == 11 + 3  # the four operators are one wording each
    for family in CHINESE:
        import random

        rng = random.Random(family.name)
        for _ in range(50):
            problem, solution = family.make(rng)
            found = recognise(problem)
            assert found is not None and found.family is family, problem
            assert BY_NAME[family.name] is family and family_of(problem) == family.name


def test_the_invented_wordings_are_no_family():
    for problem in ("将分数 10/12 化简为最简分数。", "已知长方形的长是 3 厘米，宽是 4 厘米，求这个长方形的面积。",
                    "某商品原价为 100 元，打 8 折后的价格是多少元？", "每个苹果重 120 克，3 个苹果一共重多少克？"):
        assert recognise(problem) is None


# ------------------------------------------------------------------------------------- the real sample

@pytest.fixture(scope="module")
def sample() -> list[dict]:
    if not SAMPLE.is_file():
        pytest.skip(f"the real contest sample is not at {SAMPLE}")
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def _chinese(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


@needs_sample
def test_every_real_line_ingests(sample, tmp_path):
    counts = ingest_file(IngestConfig(), SAMPLE, tmp_path / "records.jsonl", rejects_path=tmp_path / "rejects.jsonl")
    assert counts["read"] == len(sample) == 1992 and counts["rejected"] == 0
    assert counts["kept"] + counts["duplicates"] == len(sample)


@needs_sample
def test_every_real_chinese_line_is_recognised_and_reproduced_byte_for_byte(sample):
    chinese = [r for r in sample if _chinese(r["problem"])]
    assert len(chinese) == 1948
    for r in chinese:
        found = recognise(r["problem"])
        assert found is not None, r["problem"]
        assert found.family.problem(*found.numbers) == r["problem"]
        assert found.family.answer(*found.numbers) == r["solution"], r
    english = [r for r in sample if not _chinese(r["problem"])]
    assert all(recognise(r["problem"]) is None and family_of(r["problem"]) == "english_math" for r in english)


def _independent(expr: str) -> Fraction:
    """An annotation recomputed without mathlora.arith.calculator: Python's own arithmetic on the expression."""
    text = re.sub(r"count\(([^()]*)\)", lambda m: str(len(m.group(1).split(","))), expr)
    text = re.sub(r"gcd\((\d+), (\d+)\)", lambda m: str(__import__("math").gcd(int(m[1]), int(m[2]))), text)
    if m := re.fullmatch(r"sqrt\(([\d.]+)\)", text):
        with localcontext() as ctx:
            ctx.prec = 60
            return Fraction(Decimal(m[1]).sqrt())
    text = re.sub(r"(\d+(?:\.\d+)?)", lambda m: f"Fraction('{m.group(1)}')", text).replace("^", "**")
    return eval(text, {"Fraction": Fraction, "__builtins__": {}})  # test-only: our own generated expressions


def _printed_right(printed: str, value: Fraction) -> bool:
    exact = Decimal(value.numerator) / Decimal(value.denominator) if value.denominator != 1 else Decimal(value.numerator)
    if value and not Fraction(1, 10**6) <= abs(value) < 10 ** 28:
        return Decimal(printed) == exact.quantize(Decimal(1).scaleb(exact.adjusted() - 9), ROUND_HALF_UP)
    return Decimal(printed) == exact.quantize(Decimal("0.01"), ROUND_HALF_UP)


@needs_sample
def test_every_real_chinese_line_is_rewritten_in_both_styles_and_every_annotation_recomputes(sample):
    families = Counter()
    with localcontext() as ctx:
        ctx.prec = 400
        for r in sample:
            if not _chinese(r["problem"]):
                continue
            steps = rewrite_solution(r["problem"], r["solution"], "steps")
            calc = rewrite_solution(r["problem"], r["solution"], "calculator")
            assert steps.status == calc.status == "rewritten", (r, steps, calc)
            for expr, printed in annotations(calc.solution):
                assert _printed_right(printed, _independent(expr)), (r["problem"], expr, printed)
            families[calc.family] += 1
    assert len(families) == 12  # 14 less fraction and mass: the sample has none (45 and 100 distinct in all)


@needs_sample
def test_every_real_raw_solution_grades_correct_against_itself(sample):
    for n, r in enumerate(sample):
        graded = grade_one(str(n), r["solution"], r["solution"], scope="final")
        if graded.status == "gold_unparsable":  # an English proof with no boxed number
            assert not _chinese(r["problem"])
            continue
        assert graded.correct, (r, graded)


@needs_sample
def test_the_heuristic_judge_spreads_every_real_family_over_levels_1_to_4(sample):
    levels: dict[str, Counter] = {}
    for r in sample:
        if _chinese(r["problem"]):
            levels.setdefault(family_of(r["problem"]), Counter())[heuristic_difficulty(r["problem"], r["solution"])] += 1
    for family, counts in levels.items():
        assert set(counts) <= {1, 2, 3, 4}, (family, counts)
        if sum(counts.values()) >= 30:
            assert len(counts) >= 2, (family, counts)


@pytest.mark.parametrize("a, b", [("0", "0"), ("-5", "0"), ("0.00", "-0.01"), ("99999999999999999999", "100"),
                                  ("-99999999999999999999.99", "1")])
def test_edge_numbers_in_a_family_wording_never_raise(a, b):
    whole = [t.lstrip("-").split(".")[0] for t in (a, b)]
    problems = [f"计算 {a} + {b} 等于多少？", f"计算 {a} / {b} 等于多少？", f"计算 {a} 的 {whole[1]} 次方？",
                f"计算 {a} 的平方根？", f"解方程 {a.split('.')[0]}x + {b.split('.')[0]} = 0",
                f"当 x = {a} 时，求函数 y = {whole[1]}x^{whole[1]} 的值",
                f"商品原价为 {whole[0]} 元，打折后的价格为 {whole[1]} 元，请计算打折的折扣比例。",
                f"将分数 {whole[0]}/{whole[1]} 进行简化。", f"求以下数据的平均值：[{a}, {b}]"]
    for problem in problems:
        level = heuristic_difficulty(problem, "1")
        assert 0 <= level <= 5
        for style in ("steps", "calculator"):  # a refused computation keeps the solution, never raises
            assert rewrite_solution(problem, "1", style).status in ("rewritten", "mismatch", "refused", "unknown")
