"""The ``decomposed`` style: an independent checker recomputes every step of every decomposed solution.

The checker below reads the step lines as text and recomputes them with Python's exact arithmetic
(``fractions.Fraction``, ``decimal`` for roots); it shares no code with :mod:`mathlora.arith.decomposed` (which
builds them with ``Decimal`` and its own loops). A line is one of:

* an equality chain ``e1=e2=...`` of numbers, ``+ - * / ^`` and parentheses: every member equal, exactly;
  ``x=d*q+r`` lines are division steps (0 <= r < d, q one digit, the first x the dividend's shortest prefix
  not below d, every next x the last remainder followed by the dividend's next digit) or root steps (after
  ``分组``: q the largest digit with (t+1)*(q+1) > x); a product ``a*b=c`` has a factor with one nonzero digit
  (a small step);
* ``商：q`` / ``商：q≈r``: q is the last division's quotient cut to its decimals, r it rounded half-up to two;
* ``√x≈q≈r`` / ``√x=q``: the root cut to three decimals, then rounded half-up;
* the linear equation's ``移项：ax=c`` and ``x=c/a``, the fraction's ``最大公约数：g``, checked against the problem.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest

from mathlora.arith import decomposed
from mathlora.arith.answers import answers_match, extract_gold_answer, requires_lowest_terms
from mathlora.arith.families import CHINESE, recognise
from mathlora.synth.competition import generate
from mathlora.arith.worked import rewrite_solution

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "contest_sample.jsonl"


def _value(expr: str) -> Fraction:
    """An expression of the step lines recomputed with Fraction (test-only: our own generated text)."""
    if not re.fullmatch(r"[\d.+\-*/^()]+", expr):
        raise ValueError(f"not an expression: {expr!r}")
    if expr.count("^") > 1 or re.search(r"\^\(?-?\d{3,}", expr):  # a model's completion (bench/step_methods.py)
        raise ValueError(f"a power too large to recompute: {expr!r}")
    text = re.sub(r"(\d+(?:\.\d+)?)", lambda m: f"Fraction('{m.group(1)}')", expr).replace("^", "**")
    return eval(text, {"Fraction": Fraction, "__builtins__": {}})


def _cut(value: Fraction, decimals: int) -> Fraction:
    scale = 10 ** decimals
    return Fraction(math.floor(value * scale), scale)


def _half_up(value: Fraction) -> Fraction:
    sign = -1 if value < 0 else 1
    return sign * Fraction(math.floor(abs(value) * 100 + Fraction(1, 2)), 100)


def _one_nonzero_digit(text: str) -> bool:
    return len(re.sub(r"[^1-9]", "", text)) <= 1


LABELLED = re.compile(r"(?:[a-z]\d)+")
COLUMN = re.compile(r"([a-z]):(?:(1?)(\d)([+-])(\d)([+-]1)?=(\d+)|1),([\d.]+)")
DIVISION_STEP = re.compile(r"(\d+)=(\d+)\*(\d+)\+(\d+)")
DECIMALS = 3  # long division goes to three decimals, then rounds half-up to two


def check_division_step(m: re.Match, division: tuple[int, int], chain: tuple | None) -> tuple[bool, tuple]:
    """One long-division line ``x=d*q+r`` of ``n / d``, given the previous line's (position, quotient,
    remainder) or None for the first line. Returns (right, this line's chain). The first x is the dividend's
    shortest prefix not below d; every next x is the remainder followed by the dividend's next digit (zeros
    after its end)."""
    x, t, q, r = (int(g) for g in m.groups())
    n, d = division
    digits = str(n)
    stream = digits + "0" * DECIMALS
    ok = t == d and x == t * q + r and q <= 9 and 0 <= r < t
    if chain is None:
        k = len(str(x))
        ok = ok and digits[:k] == str(x) and (x >= d or k == len(digits)) and (k == 1 or int(digits[:k - 1]) < d)
        pos, quotient = k, str(q)
    else:
        pos, quotient, previous = chain
        ok = ok and pos < len(stream) and x == 10 * previous + int(stream[pos])
        quotient += ("." if pos == len(digits) else "") + str(q)
        pos += 1
    return ok, (pos, quotient, r)


def _operand(line: str) -> tuple[str, dict[str, int]]:
    """A labelled operand line ``f7e6d8c9b1a5``: its labels must run down one place at a time."""
    pairs = re.findall(r"([a-z])(\d)", line)
    labels = "".join(label for label, _ in pairs)
    assert labels == "".join(chr(c) for c in range(ord(labels[0]), ord(labels[-1]) - 1, -1)), line
    return labels, {label: int(d) for label, d in pairs}


def _labelled_value(line: str) -> Fraction:
    return sum((Fraction(int(d)) * Fraction(10) ** (ord(label) - ord("c")) for label, d in re.findall(r"([a-z])(\d)", line)),
               Fraction(0))


def check_columns(block: list[str]) -> list[str]:
    """The wrong lines of a column block: two labelled operands, then one line a place from the lowest up
    (``c:9+3+1=13,3.20``: the operands' digits at that label, the carry or borrow of the place below, the
    column's result, the result so far), then a line for a carry out of the top place."""
    labels, x = _operand(block[0])
    labels2, y = _operand(block[1])
    if labels != labels2:
        return block[:2]
    point = "c" if labels[-1] != "c" else None     # the decimal point goes before the units digit
    wrong, carry, written, kind = [], 0, "", None
    for i, line in enumerate(block[2:]):
        m = COLUMN.fullmatch(line)
        expected_label = labels[::-1][i] if i < len(labels) else chr(ord(labels[0]) + 1)
        if not m or m[1] != expected_label:
            wrong.append(line)
            continue
        if i == len(labels):  # the carry out of the top place
            digit, carry_ok = 1, kind == "+" and carry == 1
            ok = carry_ok
        else:
            ten, dx, op, dy, extra, result = m[2], int(m[3]), m[4], int(m[5]), m[6], int(m[7])
            kind = kind or op
            ok = op == kind and dx == x[m[1]] and dy == y[m[1]] and bool(extra) == bool(carry) \
                and (extra is None or extra == f"{op}1")
            if op == "+":
                ok = ok and not ten and result == dx + dy + carry
                digit, carry = result % 10, result // 10
            else:
                borrow = dx - dy - carry < 0
                ok = ok and bool(ten) == borrow and result == 10 * borrow + dx - dy - carry and result < 10
                digit, carry = result, int(borrow)
        written = f"{digit}{'.' if m[1] == point else ''}{written}"
        if not ok or m[8] != written:
            wrong.append(line)
    if carry and not (block[-1].startswith(chr(ord(labels[0]) + 1) + ":")):
        wrong.append("(a carry out of the top place is not written)")
    if kind == "-" and sum(x[k] * 10 ** i for i, k in enumerate(labels[::-1])) < \
            sum(y[k] * 10 ** i for i, k in enumerate(labels[::-1])):
        wrong.append("(the smaller magnitude is on top)")
    return wrong


def check_solution(problem: str, solution: str) -> list[str]:
    """The wrong steps of a decomposed solution (empty: every step recomputes)."""
    found = recognise(problem)
    family = found.family.name
    numbers = found.numbers
    wrong: list[str] = []
    last_division: tuple[int, int] | None = None
    chain = None  # the long division's state after its last line
    in_root = False
    lines = solution.splitlines()
    assert lines[-1].startswith("答案："), solution
    for i, line in enumerate(lines):  # column blocks are checked as a whole, then skipped below
        if LABELLED.fullmatch(line.rpartition("：")[2]) and i + 1 < len(lines) and LABELLED.fullmatch(lines[i + 1]):
            end = i + 2
            while end < len(lines) and COLUMN.fullmatch(lines[end]):
                end += 1
            wrong += check_columns([lines[i].rpartition("：")[2], *lines[i + 1:end]])
            operands = {_labelled_value(lines[i].rpartition("：")[2]), _labelled_value(lines[i + 1])}
            if family in ("addition", "subtraction", "discount") and \
                    operands != {abs(Fraction(numbers[0])), abs(Fraction(numbers[1]))}:
                wrong.append(f"{lines[i]} / {lines[i + 1]} (not the problem's numbers)")
    for line in lines[:-1]:
        if LABELLED.fullmatch(line.rpartition("：")[2]) or COLUMN.fullmatch(line):
            continue
        label, _, body = line.rpartition("：")
        ok = True
        try:
            if label == "分组":
                in_root = True
                ok = Fraction(body.replace(" ", "")) == Fraction(numbers[0])
            elif label == "商":
                n, d = last_division
                exact = Fraction(n, d)
                q, _, r = body.partition("≈")
                ok = Fraction(q) == _cut(exact, len(q.split(".")[1]) if "." in q else 0)
                ok = ok and (Fraction(q) == exact if not r else Fraction(r) == _half_up(exact))
                ok = ok and (chain is None or q == chain[1])  # the quotient that the lines above wrote
            elif label == "最大公约数":
                ok = int(body) == math.gcd(*numbers)
            elif label == "移项":
                a, b = numbers
                ok = body == f"{a}x={-b}"
            elif body.startswith("x="):
                a, b = numbers
                ok = body == f"x={-b}/{a}"
                last_division, chain = (abs(b), abs(a)), None
            elif body.startswith("√"):
                x = Fraction(numbers[0])
                members = re.split(r"[≈=]", body[1:])
                ok = Fraction(members[0]) == x
                if "≈" in body:
                    with localcontext() as ctx:
                        ctx.prec = 60
                        root = Fraction(Decimal(numbers[0]).sqrt())
                    ok = ok and Fraction(members[1]) == _cut(root, 3) and Fraction(members[2]) == _half_up(root)
                else:
                    ok = ok and Fraction(members[1]) ** 2 == x
            elif (step := DIVISION_STEP.fullmatch(body)) and not in_root and family != "fraction_simplify" \
                    and last_division:
                ok, chain = check_division_step(step, last_division, chain)
            elif "=" not in body:  # a header: the expression that the next lines compute
                _value(body)
                m = re.fullmatch(r"(\d+)/(\d+)", body)
                if m:
                    last_division, chain = (int(m[1]), int(m[2])), None
            else:
                members = body.split("=")
                if members[0] == "y":  # the function value: y=k*x^n=value
                    members = members[1:]
                values = [_value(m) for m in members]
                ok = all(v == values[0] for v in values)
                for m in members:
                    d = re.fullmatch(r"-?\(?(\d+)/(\d+)\)?", m)
                    if d:
                        last_division, chain = (int(d[1]), int(d[2])), None
                step = re.fullmatch(r"(\d+)=(\d+)\*(\d+)\+(\d+)", body)
                if step:
                    x, t, q, r = (int(g) for g in step.groups())
                    if in_root:  # t = 20 * root so far + q, q the largest digit that fits
                        ok = ok and q <= 9 and (t + 1) * (q + 1) > x
                    elif family == "fraction_simplify":  # Euclid: the remainder below the divisor
                        ok = ok and 0 <= r < t
                    else:  # a long-division line with no division before it
                        ok = False
                elif len(members) == 2 and re.fullmatch(r"[\d.]+\*[\d.]+", members[0]):
                    a, b = members[0].split("*")
                    ok = ok and (_one_nonzero_digit(a) or _one_nonzero_digit(b))
                elif len(members) == 2 and family in ("addition", "subtraction") \
                        and re.fullmatch(r"[\d.]+[+-][\d.]+", members[0]) and re.fullmatch(r"[\d.]+", members[1]):
                    ok = ok and _one_nonzero_digit(re.split(r"[+-]", members[0])[1])  # one place at a time
        except (ValueError, TypeError, ZeroDivisionError, SyntaxError) as e:
            ok = False
            line = f"{line} ({e})"
        if not ok:
            wrong.append(line)
    return wrong


@pytest.fixture(params=["place", "column"])
def addition(request, monkeypatch):
    """Every test that takes it runs with both ways of writing + and - (decomposed.ADDITION)."""
    monkeypatch.setattr(decomposed, "ADDITION", request.param)
    return request.param


def _checked(records, *, lowest: bool = True) -> Counter:
    """Rewrite every Chinese record in the decomposed style and check it; returns counts per family."""
    counts: Counter = Counter()
    for problem, solution in records:
        result = rewrite_solution(problem, solution, "decomposed")
        assert result.status == "rewritten", (problem, solution, result)
        assert "\n\n" not in result.solution  # configs/demo_notool.yaml stops a completion at a blank line
        counts[result.family, "fallback" if result.fallback else "decomposed"] += 1
        final, gold = extract_gold_answer(result.solution), extract_gold_answer(solution)
        assert answers_match(final, gold, atol=1e-2, lowest_terms=requires_lowest_terms(solution)), result
        if not result.fallback:
            assert check_solution(problem, result.solution) == [], (problem, result.solution)
            counts[result.family, "steps"] += len(result.solution.splitlines()) - 1
    return counts


def test_every_family_decomposes_and_every_step_recomputes(addition):
    records = [(r["problem"], r["solution"]) for r in generate(1400, 3, mix="equal") if r["type"] != "english_math"]
    counts = _checked(records)
    for family in CHINESE:
        assert counts[family.name, "decomposed"] > 0, family.name
        if family.name not in ("power", "function_value"):
            assert counts[family.name, "fallback"] == 0, family.name


def test_the_checker_finds_wrong_steps(monkeypatch):
    monkeypatch.setattr(decomposed, "ADDITION", "place")
    problem = "计算 4204.22 + 2369.17 等于多少？"
    good = rewrite_solution(problem, "4204.22 + 2369.17 = 6573.39", "decomposed").solution
    assert check_solution(problem, good) == []
    assert check_solution(problem, good.replace("6204.22+300=6504.22", "6204.22+300=6514.22")) != []
    assert check_solution(problem, good.replace("4204.22+2000=6204.22", "4204.22+2369=6573.22")) != []  # too big
    division = rewrite_solution("计算 3008.48 / 3439.46 等于多少？", "3008.48 / 3439.46 = 0.87", "decomposed").solution
    assert check_solution("计算 3008.48 / 3439.46 等于多少？", division) == []
    # a quotient digit one too small still satisfies the equality, but not the remainder's bound
    bad = division.replace("3008480=343946*8+256912", "3008480=343946*7+600858")
    assert check_solution("计算 3008.48 / 3439.46 等于多少？", bad) != []
    assert check_solution("计算 3008.48 / 3439.46 等于多少？", division.replace("0.874≈0.87", "0.874≈0.88")) != []


def test_decomposed_examples(monkeypatch):
    monkeypatch.setattr(decomposed, "ADDITION", "place")
    assert rewrite_solution("计算 -9740.24 - -4497.85 等于多少？", "-9740.24 - -4497.85 = -5242.39",
                            "decomposed").solution == (
        "-9740.24--4497.85=-(9740.24-4497.85)\n9740.24-4000=5740.24\n5740.24-400=5340.24\n5340.24-90=5250.24\n"
        "5250.24-7=5243.24\n5243.24-0.8=5242.44\n5242.44-0.05=5242.39\n-(9740.24-4497.85)=-5242.39\n答案：-5242.39")
    assert rewrite_solution("将分数 6/8 进行简化。", "最简化的形式为：3/4", "decomposed").solution == (
        "8=6*1+2\n6=2*3+0\n最大公约数：2\n分子：6/2=3\n分母：8/2=4\n答案：3/4")
    assert rewrite_solution("计算 6145.00 的平方根？", "√6145.00 = 78.39005038906404479030928703",
                            "decomposed").solution == (
        "分组：61 45.00 00 00\n61=7*7+12\n1245=148*8+61\n6100=1563*3+1411\n141100=15669*9+79\n"
        "7900=156780*0+7900\n√6145.00≈78.390≈78.39\n答案：78.39")
    discount = rewrite_solution("商品原价为 16 元，打折后的价格为 90 元，请计算打折的折扣比例。", "-462.5", "decomposed")
    assert discount.solution.endswith("80=16*5+0\n商：462.5\n答案：-462.5")


def test_a_power_too_long_to_decompose_is_written_in_the_steps_style_and_counted():
    long = rewrite_solution("计算 -456.58 的 4 次方？", "-456.58^4 = 43457779803.13985296", "decomposed")
    assert (long.status, long.fallback, long.solution) == ("rewritten", True,
                                                           "(-456.58)^4 = 43457779803.14\n答案：43457779803.14")
    short = rewrite_solution("计算 -18.24 的 2 次方？", "-18.24^2 = 332.6976", "decomposed")
    assert not short.fallback and check_solution("计算 -18.24 的 2 次方？", short.solution) == []


def test_edge_numbers_never_raise_in_the_decomposed_style(addition):
    for problem in ("计算 0 + 0 等于多少？", "计算 -5 / 0 等于多少？", "计算 0.00 - -0.01 等于多少？", "计算 5 的平方根？",
                    "计算 0.25 的平方根？", "计算 0 的 0 次方？", "解方程 7x + 0 = 0", "将分数 0/5 进行简化。",
                    "计算 99999999999999999999 * 100 等于多少？", "求以下数据的平均值：[5]"):
        result = rewrite_solution(problem, "1", "decomposed")
        assert result.status in ("rewritten", "mismatch", "refused"), problem
    assert rewrite_solution("计算 -5 / 0 等于多少？", "1", "decomposed").status == "refused"


@pytest.mark.skipif(not SAMPLE.is_file(), reason=f"the real contest sample is not at {SAMPLE}")
def test_every_real_chinese_line_in_the_decomposed_style_has_no_wrong_step(addition):
    sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    chinese = [(r["problem"], r["solution"]) for r in sample if re.search(r"[\u4e00-\u9fff]", r["problem"])]
    assert len(chinese) == 1948
    counts = _checked(chinese)
    decomposed = sum(v for (f, kind), v in counts.items() if kind == "decomposed")
    fallback = sum(v for (f, kind), v in counts.items() if kind == "fallback")
    assert decomposed + fallback == 1948
    assert {f for (f, kind) in counts if kind == "fallback"} <= {"power", "function_value"}


def test_column_steps_and_the_checker_that_finds_their_errors(monkeypatch):
    monkeypatch.setattr(decomposed, "ADDITION", "column")
    problem = "计算 -7689.15 - 8713.05 等于多少？"
    good = rewrite_solution(problem, "-7689.15 - 8713.05 = -16402.20", "decomposed").solution
    assert good == ("-7689.15-8713.05=-(7689.15+8713.05)\nf7e6d8c9b1a5\nf8e7d1c3b0a5\na:5+5=10,0\nb:1+0+1=2,20\n"
                    "c:9+3=12,2.20\nd:8+1+1=10,02.20\ne:6+7+1=14,402.20\nf:7+8+1=16,6402.20\ng:1,16402.20\n"
                    "-(7689.15+8713.05)=-16402.20\n答案：-16402.2")
    assert check_solution(problem, good) == []
    for bad in ("c:9+3=13,3.20",            # a wrong column sum (and result so far)
                "c:9+3=12,3.20",            # the sum right, the digit written wrong
                "c:8+4=12,2.20",            # right arithmetic on digits that are not the operands'
                "d:8+1=9,92.20",            # the carry from below forgotten
                ):
        label = bad[0]
        line = next(x for x in good.splitlines() if x.startswith(label + ":"))
        assert check_solution(problem, good.replace(line, bad)) != [], bad
    assert check_solution(problem, good.replace("\ng:1,16402.20", "")) != []           # the top carry dropped
    assert check_solution(problem, good.replace("f8e7d1c3b0a5", "f8e7d1c4b0a5")) != []  # an operand miscopied
    borrow = rewrite_solution("计算 3170.97 - 2187.58 等于多少？", "983.39", "decomposed").solution
    assert borrow.splitlines()[2:4] == ["a:17-8=9,9", "b:9-5-1=3,39"] and borrow.endswith("f:3-2-1=0,0983.39\n答案：983.39")
    assert check_solution("计算 3170.97 - 2187.58 等于多少？", borrow) == []
    assert check_solution("计算 3170.97 - 2187.58 等于多少？", borrow.replace("a:17-8=9,9", "a:7-8=9,9")) != []


def test_the_checker_finds_bring_down_errors_in_long_division():
    problem = "求以下数据的平均值：[74, 28, 57, 84, 97, 84]"
    good = rewrite_solution(problem, "平均值为 70.66666666666667", "decomposed").solution
    assert good.endswith("平均值：424/6\n42=6*7+0\n4=6*0+4\n40=6*6+4\n40=6*6+4\n40=6*6+4\n商：70.666≈70.67\n答案：70.67")
    assert check_solution(problem, good) == []
    for line, bad in (("\n4=6*0+4\n", "\n42=6*7+0\n"),    # the same digits brought down again
                      ("\n42=6*7+0\n", "\n4=6*0+4\n"),    # a first prefix below the divisor
                      ("\n40=6*6+4\n商", "\n商")):          # stopped a digit early: 商 is not what was divided
        assert check_solution(problem, good.replace(line, bad, 1)) != [], bad
