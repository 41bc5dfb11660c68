import pytest

from mathlora.arith.numbers import cut_decimals, format_decimals


@pytest.mark.parametrize("text, rounded, truncated", [
    # the recipe's own example families
    ("√5636.97 = 75.0797598345", "√5636.97 = 75.08", "√5636.97 = 75.07"),
    ("方程的解为：0.5128205128205128", "方程的解为：0.51", "方程的解为：0.51"),
    ("平均值为 47.666666666666664", "平均值为 47.67", "平均值为 47.66"),
    # signs: half-up rounds ties away from zero on the magnitude, the sign is kept as written
    ("-2369.175", "-2369.18", "-2369.17"),
    ("4204.22 + -2369.175 = 1835.045", "4204.22 + -2369.18 = 1835.05", "4204.22 + -2369.17 = 1835.04"),
    ("+3.14159", "+3.14", "+3.14"),
    # scientific notation: the mantissa's digits count, the exponent is kept
    ("2.7691E+34", "2.77E+34", "2.76E+34"),
    ("1.005e-3", "1.01e-3", "1.00e-3"),
    # percent and CJK neighbours
    ("增长了12.345%", "增长了12.35%", "增长了12.34%"),
    ("面积为348.125平方厘米", "面积为348.13平方厘米", "面积为348.12平方厘米"),
    # carry across the integer part
    ("9.999", "10.00", "9.99"),
    ("0.995", "1.00", "0.99"),
])
def test_long_decimals_are_cut(text, rounded, truncated):
    assert format_decimals(text) == rounded
    assert format_decimals(text, mode="truncate") == truncated


@pytest.mark.parametrize("text", [
    "4204.22 + -2369.17 = 1835.05",  # two decimals: untouched
    "1.5 + 2.25", "面积为 348 平方厘米", "最简化的形式为：5/6", "x^16", "30 克", "12%",
    "1.2.3", "2.77E+34", "-462.5", "\\boxed{\\frac{3}{4}}", "",
])
def test_short_numbers_integers_fractions_are_byte_identical(text):
    assert format_decimals(text) == text


def test_exact_decimal_arithmetic_not_float():
    # float(2.675) is 2.67499999..., exact half-up gives 2.68
    assert format_decimals("2.675") == "2.68"
    assert format_decimals("0.8746954463782105330487925430") == "0.87"


def test_other_decimal_counts_and_count_helper():
    assert format_decimals("3.14159", decimals=3) == "3.142"
    assert format_decimals("3.14159", decimals=0) == "3"
    assert cut_decimals("1.234 and 5.6 and 7.891") == ("1.23 and 5.6 and 7.89", 2, 0)


@pytest.mark.parametrize("text", [
    "1,050.125", "$1,000.4567", "total 12,345,678.9999 yuan", "1 000.125", "1_000.125",
    "192.168.100.200", "version 1.10.125", "1.2.3", "10.0.0.1:8080",
])
def test_grouped_numbers_and_dotted_sequences_stay_as_written(text):
    assert format_decimals(text) == text
    assert format_decimals(text, mode="truncate") == text


def test_a_plain_decimal_beside_grouped_ones_is_still_cut():
    assert format_decimals("1,050.125 and 3.14159, 2.71828") == "1,050.125 and 3.14, 2.72"
    assert format_decimals("(1,2.345)") == "(1,2.35)"  # one digit before the comma: no thousands group


def _expected(text: str, decimals: int = 2) -> str:
    """An independent reading of the rule for text without exponents or signs: split the text into dotted
    digit sequences (``12``, ``1.5``, ``192.168.0.1``); one with exactly one dot, not right after a dot, not the
    last group of a grouped number (``1,050.125``) and with more than ``decimals`` fractional digits is rounded
    half-up; everything else stays byte-identical."""
    import re
    from decimal import ROUND_HALF_UP, Decimal, localcontext

    out, last = [], 0
    for m in re.finditer(r"[0-9]+(?:\.[0-9]+)*", text):
        token, at = m.group(0), m.start()
        out.append(text[last:at])
        last = m.end()
        whole, _, frac = token.partition(".")
        grouped = len(whole) == 3 and at >= 2 and text[at - 1] in ",_ '" and text[at - 2].isdigit()
        after_dot = at >= 1 and text[at - 1] == "."
        if token.count(".") == 1 and len(frac) > decimals and not grouped and not after_dot:
            with localcontext() as ctx:
                ctx.prec = 200
                token = f"{Decimal(token).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):.{decimals}f}"
        out.append(token)
    return "".join(out) + text[last:]


@pytest.mark.parametrize("seed", range(8))
def test_property_only_plain_decimals_change_and_a_second_pass_changes_nothing(seed):
    import random

    rng = random.Random(seed)
    alphabet = "0123456789" * 3 + "....,,, _'ax=%元\n"
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        once = format_decimals(text)
        assert once == _expected(text), text
        assert format_decimals(once) == once, text  # round trip: normalized text is a fixed point
