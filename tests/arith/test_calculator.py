"""The calculator: exact results in the normalize number format; hostile input refused quickly."""

import time
from fractions import Fraction

import pytest

from mathlora.arith.calculator import CalculatorError, calculate, calculate_value, annotations
from mathlora.arith.numbers import format_decimals, format_number
from mathlora.synth.competition import generate


@pytest.mark.parametrize("expr, expected", [
    ("4204.22 + -2369.17", "1835.05"),
    ("-4889.41 - -3642.06", "-1247.35"),
    ("-7547.57 * -4628.57", "34934456.07"),     # exact 34934456.0749
    ("2840.24 / 7764.71", "0.37"),               # 0.36578...
    ("183.94^5", "210562442992.23"),
    ("√5636.97", "75.08"),
    ("√(16)", "4"),
    ("sqrt(2.25)", "1.5"),
    ("gcd(495, 810)", "45"),
    ("(1 + 2) × 3 ÷ 4", "2.25"),
    ("100 - 15", "85"),
    ("2 ^ -2", "0.25"),
    ("0.125 * 1", "0.13"),                        # half-up, as normalize rounds
    ("-0.125 * 1", "-0.13"),
    ("-20 / -39", "0.51"),
    ("(-456.58)^4", "43457779803.14"),          # a negative base in parentheses keeps its sign
    ("-456.58^4", "-43457779803.14"),           # mathematical precedence: -(456.58^4)
    ("(-185.24)^3", "-6356298.98"),
    ("57 * 4.03^54", "2.769155521E+34"),         # beyond exact size: rounded by significant digits
    ("86 * 0.54^90", "7.078428268E-23"),         # tiny: E notation, never 0.00
    ("68 * 7.59^95", "2.854155448E+85"),
    ("1.01^99", "2.68"),
    ("count(74, 13, 94, 35)", "4"),
    ("0.5^9 * 3", "0.01"),                       # plain between 1e-6 and 0.01, as the source writes it
    ("-9.90 / -7732.24", "0.00"),
    ("0.5^30", "9.313225746E-10"),
])
def test_exact_results_in_the_normalize_format(expr, expected):
    assert calculate(expr) == expected


def test_format_number_agrees_with_the_normalize_rule_on_text():
    for value in [Fraction(1, 3), Fraction(-2, 3), Fraction(12345, 1000), Fraction(5, 2), Fraction(7),
                  Fraction(-1, 8), Fraction(999999, 1000)]:
        exact = f"{float(value):.6f}" if value.denominator != 1 else str(value.numerator)
        text = format_number(value)
        if len(exact.split(".")[-1].rstrip("0")) > 2:
            assert text == format_decimals(exact.lstrip("-")).join(["-" if value < 0 else "", ""])
        assert abs(Fraction(text) - value) <= Fraction(1, 200)


@pytest.mark.parametrize("expr", [
    "__import__('os')", "os.system('ls')", "().__class__", "x + 1", "abs(-1)", "9^9^9", "10^100000",
    "1" * 10_000, "1/0", "", "2 +", "gcd(1.5, 2)", "sqrt(-1)", "(" * 150 + "1" + ")" * 150, "1e5",
    "[1, 2]", "'a'", "9999999999^64", "lambda: 1", "2^1000", "9999^999", "0.5^999 * 0.5^999", "count()",
    "(10^300) * (10^300)",
])
def test_hostile_or_invalid_expressions_are_refused_quickly(expr):
    start = time.perf_counter()
    with pytest.raises(CalculatorError):
        calculate(expr)
    assert time.perf_counter() - start < 0.5


def test_every_family_expression_round_trips():
    """Every <<expr=value>> the generator writes is what the calculator computes for expr."""
    seen = set()
    for rec in generate(1500, 7, style="calculator", mix="equal"):
        for expr, value in annotations(rec["solution"]):
            assert calculate(expr) == value
            seen.add(rec["type"])
    assert len(seen) == 14  # every family but the English one has annotations


def test_huge_exponents_are_bounded_by_significant_digits_not_refused():
    exact = 86 * Fraction("0.54") ** 90
    value = calculate_value("86 * 0.54^90")
    assert value != exact and abs(value - exact) / exact < Fraction(1, 10**38)  # 40 significant digits
    start = time.perf_counter()
    for n in range(1, 1000, 7):
        calculate(f"99 * 9.99^{n // 3}")
    assert time.perf_counter() - start < 2.0


def test_value_is_exact():
    assert calculate_value("0.1 + 0.2") == Fraction(3, 10)


def test_annotation_api_golden_values_and_round_trip():
    from mathlora.arith.calculator import CLOSE, EQUALS, OPEN, annotate, open_annotation, strip_annotations

    assert (OPEN, EQUALS, CLOSE) == ("<<", "=", ">>")
    assert annotate("2 + 3", "5") == "<<2 + 3=5>>"
    text = f"和：{annotate('2 + 3', '5')} 元\n积：{annotate('5 * 4', '20')}\n答案：20"
    assert list(annotations(text)) == [("2 + 3", "5"), ("5 * 4", "20")]
    assert strip_annotations(text) == "和：2 + 3 = 5 元\n积：5 * 4 = 20\n答案：20"
    assert list(annotations("<<1+1=2 unclosed, a=b, <<x>>")) == []  # incomplete or '='-less: not annotations
    assert strip_annotations("no annotation = here") == "no annotation = here"
    # an annotation still being written: (where its expression starts, its '=' or -1)
    assert open_annotation("a <<12*3") == (4, -1)
    assert open_annotation("a <<12*3=") == (4, 8)
    assert open_annotation("<<1+1=2>> then =") is None and open_annotation("no marker") is None
    assert open_annotation("<<1=2>> <<7-") == (10, -1)
