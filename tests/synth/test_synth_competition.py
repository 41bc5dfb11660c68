"""The competition-style generator: exact answers recomputed from the problem text, style, determinism."""

from __future__ import annotations

import math
import re
from collections import Counter
from decimal import Decimal
from fractions import Fraction

import pytest

from mathlora.errors import MathloraError
from mathlora.synth import competition
from mathlora.synth.competition import (
    FAMILIES,
    arithmetic_problem,
    fraction_simplify_problem,
    function_value_problem,
    generate,
    generate_train_and_test,
    linear_equation_problem,
    mean_problem,
    plain_number,
    power_problem,
    sqrt_problem,
)

AMOUNT = r"-?\d+\.\d{2}"
NUM = r"-?\d+(?:\.\d+)?"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return generate(3000, seed=7)


def by_type(records: list[dict], family: str) -> list[dict]:
    chosen = [r for r in records if r["type"] == family]
    assert chosen, f"no {family} records generated"
    return chosen


def match(pattern: str, text: str) -> re.Match:
    m = re.fullmatch(pattern, text)
    assert m, f"{text!r} does not match {pattern!r}"
    return m


def significant_digits(text: str) -> int:
    return len(text.lstrip("-").replace(".", "").lstrip("0"))


# ----------------------------------------------------------------------------------------- golden

def test_golden_examples_from_the_competition():
    assert arithmetic_problem(Decimal("4204.22"), "+", Decimal("-2369.17")) == (
        "计算 4204.22 + -2369.17 等于多少？", "4204.22 + -2369.17 = 1835.05")
    assert power_problem(Decimal("183.94"), 5) == ("计算 183.94 的 5 次方？", "183.94^5 = 210562442992.2269624224")
    problem, solution = sqrt_problem(Decimal("5636.97"))
    assert problem == "计算 5636.97 的平方根？"
    assert solution.startswith("√5636.97 = 75.07975") and significant_digits(solution.split(" = ")[1]) == 28
    assert linear_equation_problem(-39, 20) == ("解方程 -39x + 20 = 0", "方程的解为：0.5128205128205128")
    assert mean_problem([40, 50, 53])[1] == "平均值为 47.666666666666664"
    assert fraction_simplify_problem(10, 12) == ("将分数 10/12 化简为最简分数。", "最简化的形式为：5/6")
    problem, solution = function_value_problem(Decimal("8.52"), 17, 16)
    assert problem == "当 x = 8.52 时，求函数 y = 17x^16 的值"
    assert Fraction(solution.removeprefix("函数的值为：")) == 17 * Fraction("8.52") ** 16


def test_multiplication_keeps_four_decimals_and_division_28_digits():
    _, product = arithmetic_problem(Decimal("-12.50"), "*", Decimal("3.20"))
    assert product == "-12.50 * 3.20 = -40.0000"
    _, quotient = arithmetic_problem(Decimal("1.00"), "/", Decimal("3.00"))
    assert quotient == "1.00 / 3.00 = 0.3333333333333333333333333333"


def test_plain_number_drops_trailing_zeros():
    assert plain_number(Decimal("462.50")) == "462.5"
    assert plain_number(Decimal("-462.50")) == "-462.5"
    assert plain_number(Fraction(40)) == "40"
    assert plain_number(Fraction(1024, 25)) == "40.96"
    assert plain_number(Decimal("0.00")) == "0"


# ------------------------------------------------------------- every family, recomputed from its text

def test_arithmetic_families_are_exact(records):
    for family, op in (("addition", "+"), ("subtraction", "-"), ("multiplication", "*"), ("division", "/")):
        for r in by_type(records, family):
            a, b = match(rf"计算 ({AMOUNT}) {re.escape(op)} ({AMOUNT}) 等于多少？", r["problem"]).groups()
            result = match(rf"{re.escape(a)} {re.escape(op)} {re.escape(b)} = ({NUM})", r["solution"]).group(1)
            x, y, got = Fraction(a), Fraction(b), Fraction(result)
            if op == "+":
                assert got == x + y and len(result.split(".")[1]) == 2
            elif op == "-":
                assert got == x - y
            elif op == "*":
                assert got == x * y and len(result.split(".")[1]) == 4
            else:
                exact = x / y
                if got != exact:
                    assert significant_digits(result) == 28
                    ulp = Fraction(10) ** (Decimal(result).adjusted() - 27)
                    assert abs(got - exact) <= ulp / 2


def test_power_is_exact(records):
    for r in by_type(records, "power"):
        base, exponent = match(rf"计算 ({AMOUNT}) 的 ([2-5]) 次方？", r["problem"]).groups()
        value = match(rf"{re.escape(base)}\^{exponent} = ({NUM})", r["solution"]).group(1)
        assert Fraction(value) == Fraction(base) ** int(exponent)


def test_sqrt_is_correctly_rounded_to_28_digits(records):
    for r in by_type(records, "sqrt"):
        x = match(rf"计算 ({AMOUNT}) 的平方根？", r["problem"]).group(1)
        root = match(rf"√{re.escape(x)} = ({NUM})", r["solution"]).group(1)
        got, target = Fraction(root), Fraction(x)
        if got * got != target:
            assert significant_digits(root) == 28
            half_ulp = Fraction(10) ** (Decimal(root).adjusted() - 27) / 2
            assert (got - half_ulp) ** 2 <= target <= (got + half_ulp) ** 2


def test_linear_equation_is_the_float_of_minus_b_over_a(records):
    for r in by_type(records, "linear_equation"):
        a, b = map(int, match(r"解方程 (-?\d+)x \+ (-?\d+) = 0", r["problem"]).groups())
        assert a != 0 and b != 0
        text = match(r"方程的解为：(-?\d+\.\d+(?:e-?\d+)?)", r["solution"]).group(1)
        assert float(text) == float(Fraction(-b, a)) and repr(float(text)) == text


def test_function_value_is_exact(records):
    for r in by_type(records, "function_value"):
        x, c, n = match(rf"当 x = ({AMOUNT}) 时，求函数 y = (\d+)x\^(\d+) 的值", r["problem"]).groups()
        assert 2 <= int(n) <= 16
        value = match(rf"函数的值为：({NUM})", r["solution"]).group(1)
        assert Fraction(value) == int(c) * Fraction(x) ** int(n)


def test_mean_is_the_float_of_the_exact_mean(records):
    for r in by_type(records, "mean"):
        listing = match(r"求以下数据的平均值：\[([\d, ]+)\]", r["problem"]).group(1)
        numbers = [int(v) for v in listing.split(", ")]
        text = match(r"平均值为 (\d+\.\d+)", r["solution"]).group(1)
        assert float(text) == float(Fraction(sum(numbers), len(numbers))) and repr(float(text)) == text


def test_rectangle_area(records):
    for r in by_type(records, "rectangle_area"):
        length, width = map(int, re.findall(r"(\d+) 厘米", r["problem"]))
        assert "长方形" in r["problem"] and "面积" in r["problem"]
        assert r["solution"] == f"面积为 {length * width} 平方厘米"


def test_discount(records):
    forms = Counter()
    for r in by_type(records, "discount"):
        p, s = r["problem"], r["solution"]
        assert re.fullmatch(NUM, s), s
        if m := re.fullmatch(rf"某商品原价为 ({NUM}) 元，打 ({NUM}) 折后的价格是多少元？", p):
            expected = Fraction(m[1]) * Fraction(m[2]) / 10
        elif m := re.fullmatch(rf"某商品原价为 ({NUM}) 元，优惠 (\d+)% 后的价格是多少元？", p):
            expected = Fraction(m[1]) * (100 - int(m[2])) / 100
        else:
            m = match(rf"某商品原价为 ({NUM}) 元，现价为 ({NUM}) 元，现价比原价便宜了多少元？", p)
            expected = Fraction(m[1]) - Fraction(m[2])
        forms[expected < 0] += 1
        assert Fraction(s) == expected
        assert s == s.rstrip("0") or "." not in s
    assert forms[True] > 0 and forms[False] > 0  # bare numbers, sometimes negative


def test_sales(records):
    for r in by_type(records, "sales"):
        p, s = r["problem"], r["solution"]
        if m := re.fullmatch(rf"一件商品的进价为 ({NUM}) 元，商家按进价加价 (\d+)% 出售，售价是多少元？", p):
            expected = Fraction(m[1]) * (100 + int(m[2])) / 100
        elif m := re.fullmatch(rf"商店以每件 ({NUM}) 元的价格购进一批商品，以每件 ({NUM}) 元的价格卖出，"
                               rf"卖出 (\d+) 件后共获利多少元？", p):
            expected = (Fraction(m[2]) - Fraction(m[1])) * int(m[3])
        else:
            m = match(rf"某商品的售价为 ({NUM}) 元，利润率为 (\d+)%，这件商品的进价是多少元？", p)
            expected = Fraction(m[1]) / (1 + Fraction(int(m[2]), 100))
        assert re.fullmatch(NUM, s) and Fraction(s) == expected


def test_mass(records):
    for r in by_type(records, "mass"):
        p = r["problem"]
        if m := re.fullmatch(r"每个(\w+)重 (\d+) 克，(\d+) 个\1一共重多少克？", p):
            expected = int(m[2]) * int(m[3])
        elif m := re.fullmatch(r"一袋\w+重 (\d+) 克，用去了 (\d+) 克，还剩多少克？", p):
            expected = int(m[1]) - int(m[2])
        else:
            m = match(r"把 (\d+) 克\w+平均分成 (\d+) 份，每份重多少克？", p)
            assert int(m[1]) % int(m[2]) == 0
            expected = int(m[1]) // int(m[2])
        assert expected > 0 and r["solution"] == f"{expected} 克"


def test_fraction_simplify(records):
    for r in by_type(records, "fraction_simplify"):
        n, d = map(int, match(r"将分数 (\d+)/(\d+) 化简为最简分数。", r["problem"]).groups())
        p, q = map(int, match(r"最简化的形式为：(\d+)/(\d+)", r["solution"]).groups())
        assert math.gcd(n, d) > 1 and math.gcd(p, q) == 1 and q > 1
        assert Fraction(n, d) == Fraction(p, q)


def english_expected(problem: str) -> tuple[str, Fraction]:
    if m := re.fullmatch(r"(\w+) has (\d+) (\w+)\. \1 buys (\d+) bags with (\d+) \3 in each bag "
                         r"and then gives away (\d+) \3\. How many \3 does \1 have now\?", problem):
        return "word", Fraction(int(m[2]) + int(m[4]) * int(m[5]) - int(m[6]))
    if m := re.fullmatch(r"What is the greatest common divisor of \$(\d+)\$ and \$(\d+)\$\?", problem):
        return "gcd", Fraction(math.gcd(int(m[1]), int(m[2])))
    if m := re.fullmatch(r"What is the least common multiple of \$(\d+)\$ and \$(\d+)\$\?", problem):
        return "lcm", Fraction(math.lcm(int(m[1]), int(m[2])))
    if m := re.fullmatch(r"What is \$(\d+)\\%\$ of \$(\d+)\$\?", problem):
        return "percent", Fraction(int(m[1]) * int(m[2]), 100)
    m = match(r"Solve for \$x\$: \$(\d+)x ([+-]) (\d+) = (-?\d+)\$\.", problem)
    b = int(m[3]) if m[2] == "+" else -int(m[3])
    return "algebra", Fraction(int(m[4]) - b, int(m[1]))


def test_english_math_is_step_by_step_and_boxed(records):
    kinds = Counter()
    for r in by_type(records, "english_math"):
        boxed = re.findall(r"\\boxed\{([^}]*)\}", r["solution"])
        assert len(boxed) == 1 and r["solution"].rstrip(".$").endswith(f"\\boxed{{{boxed[0]}}}")
        assert len(r["solution"]) > len(r["problem"])  # shows its work
        kind, expected = english_expected(r["problem"])
        assert Fraction(boxed[0]) == expected
        kinds[kind] += 1
    assert set(kinds) == {"word", "gcd", "lcm", "percent", "algebra"}


# ------------------------------------------------------------------- mix, determinism, exclusion

def test_all_families_present_with_english_about_ten_percent(records):
    counts = Counter(r["type"] for r in records)
    assert set(counts) == set(FAMILIES) and len(records) == 3000
    assert 0.09 <= counts["english_math"] / len(records) <= 0.11
    assert all(set(r) == {"problem", "solution", "type"} for r in records)


def test_no_duplicate_problems_and_numbers_in_problems_have_at_most_two_decimals(records):
    assert len({r["problem"] for r in records}) == len(records)
    chinese = [r for r in records if r["type"] != "english_math"]
    assert all(len(d) <= 2 for r in chinese for d in re.findall(r"\d+\.(\d+)", r["problem"]))
    assert any(len(d) > 2 for r in chinese for d in re.findall(r"\d+\.(\d+)", r["solution"]))


def test_deterministic_per_seed():
    assert generate(500, seed=3) == generate(500, seed=3)
    assert generate(500, seed=3) != generate(500, seed=4)
    assert generate(500, seed=3, progress=True) == generate(500, seed=3)


def test_exclude_gives_disjoint_sets():
    held_out = generate(400, seed=1)
    excluded = {r["problem"] for r in held_out}
    train = generate(2000, seed=1, exclude=excluded)
    assert len(train) == 2000 and not excluded & {r["problem"] for r in train}


def test_generate_train_and_test_are_disjoint():
    train, test = generate_train_and_test(800, 100, seed=5, types=["rectangle_area", "mean"])
    assert len(train) == 800 and len(test) == 100
    assert not {r["problem"] for r in train} & {r["problem"] for r in test}


def test_type_filtering_splits_evenly():
    recs = generate(101, seed=0, types=["sqrt", "addition"])
    counts = Counter(r["type"] for r in recs)
    assert set(counts) == {"sqrt", "addition"} and sorted(counts.values()) == [50, 51]
    assert generate(40, seed=0, types=["sqrt", "addition"]) == generate(40, seed=0, types=["addition", "sqrt"])


def test_unknown_type_lists_allowed_ones():
    with pytest.raises(MathloraError, match="unknown problem type.*cube_root.*allowed: addition"):
        generate(10, seed=0, types=["addition", "cube_root"])


def test_exhausted_family_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(competition._MAKERS, "mean", lambda rng: ("求以下数据的平均值：[1, 2]", "平均值为 1.5"))
    assert len(generate(1, seed=0, types=["mean"])) == 1
    with pytest.raises(MathloraError, match="could not find a new mean problem"):
        generate(2, seed=0, types=["mean"])


def test_zero_and_negative_counts():
    assert generate(0, seed=0) == []
    with pytest.raises(MathloraError, match="count"):
        generate(-1, seed=0)
