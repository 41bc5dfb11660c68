from collections import Counter

import pytest
from competition_style import competition_records

from mathlora.label.heuristic import exponent_size, heuristic_difficulty, operation_kind


@pytest.mark.parametrize("problem, solution, kind, level", [
    # the contest's families: their level from mathlora.arith.families (1-4, from the numbers); the kind column is
    # what the general rules would have read (立方厘米 looks like a power to them: why families come first)
    ("计算 3 + 4 等于多少？", "3 + 4 = 7", "addsub", 1),
    ("计算 4204.22 + -2369.17 等于多少？", "4204.22 + -2369.17 = 1835.05", "addsub", 2),
    ("计算 -6874.58 - -2728.62 等于多少？", "-6874.58 - -2728.62 = -4145.96", "addsub", 3),
    ("计算 183.94 的 5 次方？", "183.94 的 5 次方 = 2.1E+11", "power", 4),
    ("计算 12 的 3 次方？", "1728", "power", 3),
    ("计算 819.19 的 0 次方？", "819.19^0 = 1", "power", 1),
    ("解方程 -39x + 20 = 0", "方程的解为：0.5128205128205128", "equation", 3),
    ("解方程 6x + 0 = 0", "方程的解为：0.0", "equation", 1),
    ("当 x = 8.52 时，求函数 y = 17x^16 的值", "函数的值为：1.3E+16", "function", 3),
    ("当 x = 4.03 时，求函数 y = 57x^54 的值", "函数的值为：2.769155521409239378157128235E+34", "function", 4),
    ("当 x = 2.5 时，求函数 y = 3x^2 的值", "函数的值为：18.75", "function", 2),
    ("计算 12.5 * 3 等于多少？", "37.5", "muldiv", 2),
    ("计算 5887.79 * -1613.70 等于多少？", "5887.79 * -1613.70 = -9501126.7230", "muldiv", 3),
    ("计算 1322.00 的平方根？", "√1322.00 = 36.36", "root", 3),
    ("将分数 6/8 进行简化。", "最简化的形式为：3/4", "muldiv", 1),
    ("商品原价为 16 元，打折后的价格为 90 元，请计算打折的折扣比例。", "-462.5", "word", 3),
    ("去年销售额为 12 万元，今年销售额增加了 77%，请计算今年的销售额。", "21.240000000000002", "addsub", 3),
    ("某物体的密度为 10 克/立方厘米，体积为 3 立方厘米，请计算该物体的质量。", "30 克", "power", 1),
    # any other wording: the general rules
    ("计算 42040.22 - 2369.17 的差", "39671.05", "addsub", 2),
    ("一个长方形的长为 76.04 厘米，宽为 42.64 厘米，求它的面积。", "面积为 3242.35 平方厘米", "area", 2),
    ("求以下数据的平均值：1, 2, 3", "平均值为 2", "mean", 2),
    ("将分数 12/18 化简为最简分数", "最简分数为 2/3", "fraction", 1),
    ("一袋绿豆重 3727 克，用去了 353 克，还剩多少克？", "3374 克", "word", 2),
    ("What is $91\\%$ of $191$?", "$0.91 \\times 191 = \\boxed{173.81}$", "word", 3),
    ("Tom has 3 apples and buys some more at the market with his friend and now he has 7 apples in total. "
     "How many did he buy?", "7 - 3 = \\boxed{4}", "word", 3),
])
def test_golden_levels(problem, solution, kind, level):
    assert operation_kind(problem)[0] == kind
    assert heuristic_difficulty(problem, solution) == level


def test_long_solutions_are_harder():
    problem = "Find the number of ordered pairs that satisfy the conditions given in the statement."
    assert heuristic_difficulty(problem, "x" * 50) == 3
    assert heuristic_difficulty(problem, "x" * 500) == 4
    assert heuristic_difficulty(problem, "x" * 1500) == 5


def test_exponent_size_reads_every_notation():
    assert exponent_size("计算 2 的 12 次方") == 12
    assert exponent_size("y = 3x^7 + x**9") == 9
    assert exponent_size("2 to the power of 11") == 11
    assert exponent_size("1 + 1") == 0


def test_competition_style_data_spreads_over_levels_1_to_4():
    records = competition_records(2000, 0)
    levels = [heuristic_difficulty(r["problem"], r["solution"]) for r in records]
    counts = Counter(levels)
    assert set(counts) <= set(range(6))
    for level in (1, 2, 3, 4):
        assert counts[level] >= 0.10 * len(records), counts
    # enough in every level for the recipe's 4:3:2:1 draw of a quarter of the data
    assert counts[1] >= 0.4 * 500 and counts[4] >= 0.1 * 500
    assert levels == [heuristic_difficulty(r["problem"], r["solution"]) for r in records]  # deterministic


def test_the_synth_generator_data_spreads_over_levels_1_to_4():
    competition = pytest.importorskip("mathlora.synth.competition")
    for mix, least in (("equal", 0.10), ("contest", 0.10)):
        records = competition.generate(2000, 0, mix=mix)
        counts = Counter(heuristic_difficulty(r["problem"], r.get("solution") or "") for r in records)
        assert set(counts) <= {1, 2, 3, 4}, (mix, counts)
        for level in (1, 2, 3, 4):
            assert counts[level] >= least * len(records), (mix, counts)
