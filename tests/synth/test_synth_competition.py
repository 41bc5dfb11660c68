"""The competition-style generator: exact answers recomputed from the problem text, style, determinism."""

from __future__ import annotations

import math
import re
from collections import Counter
import random
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import pytest

from mathlora.errors import MathloraError
from mathlora.synth import competition
from mathlora.synth.competition import CONTEST_SHARES, FAMILIES, allocate_counts, generate, generate_train_and_test

AMOUNT = r"-?\d+\.\d{2}"
NUM = r"-?\d+(?:\.\d+)?"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return generate(3000, seed=7, mix="equal")


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


# ------------------------------------------------------- every family, recomputed from its text
# Independent of mathlora.arith.families: the contest's formats (docstring table there) re-derived here with
# Python's own decimal / float arithmetic and this file's own patterns.

SOURCE = Context(prec=28, rounding=ROUND_HALF_EVEN)


def expected_solution(problem: str) -> tuple[str, str]:
    """(family, the contest's raw solution) for a Chinese problem, computed independently."""
    if m := re.fullmatch(rf"计算 ({AMOUNT}) ([-+*/]) ({AMOUNT}) 等于多少？", problem):
        a, op, b = m.groups()
        value = {"+": SOURCE.add, "-": SOURCE.subtract, "*": SOURCE.multiply, "/": SOURCE.divide}[op](
            Decimal(a), Decimal(b))
        name = {"+": "addition", "-": "subtraction", "*": "multiplication", "/": "division"}[op]
        return name, f"{a} {op} {b} = {value}"
    if m := re.fullmatch(rf"计算 ({AMOUNT}) 的 ([0-5]) 次方？", problem):
        return "power", f"{m[1]}^{m[2]} = {SOURCE.power(Decimal(m[1]), int(m[2]))}"
    if m := re.fullmatch(rf"计算 ({AMOUNT}) 的平方根？", problem):
        return "sqrt", f"√{m[1]} = {SOURCE.sqrt(Decimal(m[1]))}"
    if m := re.fullmatch(r"将分数 (\d+)/(\d+) 进行简化。", problem):
        n, d = int(m[1]), int(m[2])
        assert 1 <= n < d <= 10
        f = Fraction(n, d)
        return "fraction_simplify", f"最简化的形式为：{f.numerator}/{f.denominator}"
    if m := re.fullmatch(r"求以下数据的平均值：\[([\d, ]+)\]", problem):
        numbers = [int(v) for v in m[1].split(", ")]
        assert 3 <= len(numbers) <= 10 and all(1 <= v <= 100 for v in numbers)
        return "mean", f"平均值为 {float(Fraction(sum(numbers), len(numbers)))!r}"
    if m := re.fullmatch(r"解方程 (-?\d+)x \+ (-?\d+) = 0", problem):
        a, b = int(m[1]), int(m[2])
        assert a != 0 and 1 <= abs(a) <= 100 and -100 <= b <= 100
        return "linear_equation", f"方程的解为：{-b / a!r}"
    if m := re.fullmatch(rf"当 x = ({AMOUNT}) 时，求函数 y = (\d+)x\^(\d+) 的值", problem):
        x, k, n = Decimal(m[1]), int(m[2]), int(m[3])
        assert Decimal("0.1") <= x <= 10 and 1 <= k <= 100 and 1 <= n <= 99
        return "function_value", f"函数的值为：{SOURCE.multiply(Decimal(k), SOURCE.power(x, n))}"
    if m := re.fullmatch(r"一个长方形的长为 (\d+) 厘米，宽为 (\d+) 厘米，请计算其面积。", problem):
        return "rectangle_area", f"面积为 {int(m[1]) * int(m[2])} 平方厘米"
    if m := re.fullmatch(r"某物体的密度为 (\d+) 克/立方厘米，体积为 (\d+) 立方厘米，请计算该物体的质量。", problem):
        assert 1 <= int(m[1]) <= 10 and 1 <= int(m[2]) <= 10
        return "mass", f"{int(m[1]) * int(m[2])} 克"
    if m := re.fullmatch(r"商品原价为 (\d+) 元，打折后的价格为 (\d+) 元，请计算打折的折扣比例。", problem):
        a, b = int(m[1]), int(m[2])
        return "discount", repr((a - b) / a * 100)
    m = match(r"去年销售额为 (\d+) 万元，今年销售额增加了 (\d+)%，请计算今年的销售额。", problem)
    a, b = int(m[1]), int(m[2])
    return "sales", repr(a + a * b / 100)


def test_every_chinese_record_is_the_contests_format(records):
    seen = Counter()
    for r in records:
        if r["type"] == "english_math":
            continue
        family, solution = expected_solution(r["problem"])
        assert (r["type"], r["solution"]) == (family, solution)
        seen[family] += 1
    assert set(seen) == set(FAMILIES) - {"english_math"}


def test_the_contests_signs_and_magnitudes(records):
    power = [r for r in records if r["type"] == "power"]
    negative = [r for r in power if " -" in r["problem"]]
    assert 0.3 < len(negative) / len(power) < 0.56  # the contest: 43% negative bases
    even = next(r for r in negative if re.search(r"的 [24] 次方", r["problem"]))
    assert not even["solution"].split(" = ")[1].startswith("-")  # the signed base is raised: positive
    product = next(r for r in records if r["type"] == "multiplication")
    assert len(product["solution"].split(" = ")[1].split(".")[1]) == 4  # 4 decimals, zeros kept
    function = [r for r in records if r["type"] == "function_value"]
    assert any("E+" in r["solution"] for r in function) and max(
        int(re.search(r"x\^(\d+)", r["problem"])[1]) for r in function) > 64


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

def test_equal_mix_has_every_family_and_the_contest_mix_is_two_thirds_arithmetic(records):
    counts = Counter(r["type"] for r in records)
    assert set(counts) == set(FAMILIES) and len(records) == 3000
    assert counts["fraction_simplify"] == 45 and counts["mass"] == 100  # every distinct problem there is
    others = [n for f, n in counts.items() if f not in ("fraction_simplify", "mass")]
    assert max(others) - min(others) <= 1  # the rest of the 3000 shared equally
    assert all(set(r) == {"problem", "solution", "type"} for r in records)
    contest = Counter(r["type"] for r in generate(3000, seed=7))
    arithmetic = sum(contest[f] for f in ("addition", "subtraction", "multiplication", "division"))
    assert arithmetic == round(3000 * 359_347 / sum(CONTEST_SHARES.values()))
    assert contest["fraction_simplify"] == 0 and contest["english_math"] == 55  # 9,993 of 548,942


def test_excluded_problems_beyond_a_small_familys_space_never_inflate_the_count():
    # 60 excluded fraction wordings (more than the 45 the generator draws from) leave no fraction, no error
    excluded = {f"将分数 {n}/{d} 进行简化。" for d in range(2, 40) for n in range(1, d)}
    recs = generate(30, seed=0, types=["fraction_simplify", "mass"], exclude=excluded, mix="equal")
    assert Counter(r["type"] for r in recs) == {"mass": 30}


def test_allocation_caps_a_small_family_and_shares_its_rest():
    rng = random.Random(0)
    assert allocate_counts(10, {"a": 1, "b": 1, "c": 2}, rng, {"a": 1}) == {"a": 1, "b": 3, "c": 6}
    with pytest.raises(MathloraError, match="only 3 distinct"):
        allocate_counts(5, {"a": 1, "b": 1}, rng, {"a": 1, "b": 2})


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
    # a small family: the held-out problems use up part of its space, the training set gets the rest
    train, test = generate_train_and_test(60, 12, seed=5, types=["fraction_simplify", "mass"], mix="equal")
    assert Counter(r["type"] for r in test) == {"fraction_simplify": 6, "mass": 6}
    assert Counter(r["type"] for r in train) == {"fraction_simplify": 30, "mass": 30}
    assert not {r["problem"] for r in train} & {r["problem"] for r in test}


def test_type_filtering_splits_evenly():
    recs = generate(101, seed=0, types=["sqrt", "addition"], mix="equal")
    counts = Counter(r["type"] for r in recs)
    assert set(counts) == {"sqrt", "addition"} and sorted(counts.values()) == [50, 51]
    contest = Counter(r["type"] for r in generate(101, seed=0, types=["sqrt", "addition"]))
    assert contest == {"addition": 70, "sqrt": 31}  # 89,837 : 39,227
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


@pytest.mark.parametrize("style", ["steps", "calculator", "decomposed"])
def test_every_generated_record_gets_its_worked_solution(style):
    """apply_style's failure rule keeps a record's solution and counts it: for generated data the count is 0."""
    unstyled = Counter()
    styled = generate(600, 3, style=style, mix="equal", unstyled=unstyled)
    assert unstyled == Counter()
    plain = generate(600, 3, mix="equal")
    changed = [a["solution"] != b["solution"] for a, b in zip(plain, styled) if a["type"] != "english_math"]
    assert changed and all(changed)


def test_a_generated_record_whose_worked_solution_fails_keeps_its_solution_and_is_counted(monkeypatch, tmp_path):
    from mathlora.arith.worked import Rewrite
    from mathlora.synth.config import SynthConfig
    from mathlora.synth.stage import synth_data

    real = competition.apply_style
    refuse = lambda record, style, **kw: (record, Rewrite("refused", record["type"], record["solution"], reason="x")) \
        if record["type"] == "mean" else real(record, style, **kw)
    monkeypatch.setattr(competition, "apply_style", refuse)
    unstyled = Counter()
    records = generate(40, 1, ["addition", "mean"], style="calculator", mix="equal", unstyled=unstyled)
    assert unstyled == {"refused": 20}
    assert all(("<<" in r["solution"]) == (r["type"] == "addition") for r in records)
    counts = synth_data(SynthConfig(count=40, types=["addition", "mean"], mix="equal"), seed=1,
                        train_out=tmp_path / "t.jsonl", style="calculator")
    assert counts == {"train": 40, "unstyled": {"refused": 20}}
