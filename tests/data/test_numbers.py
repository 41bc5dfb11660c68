import pytest

from mathlora.data.numbers import cut_decimals, format_decimals


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
