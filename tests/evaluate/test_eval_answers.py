from fractions import Fraction

import pytest

from mathlora.arith.answers import (answers_match, boxed_contents, extract_gold_answer,
                                       extract_prediction_answer, latex_to_plain, requires_lowest_terms)

GOLD_CASES = [
    ("4204.22 + -2369.17 = 1835.05", Fraction("1835.05"), "decimal"),
    ("183.94^5 = 210562442992.2269624224", Fraction("210562442992.2269624224"), "decimal"),
    ("√5636.97 = 75.0797...", Fraction("75.0797"), "decimal"),
    ("方程的解为：0.5128205128205128", Fraction("0.5128205128205128"), "decimal"),
    ("函数的值为：1.23E+15", Fraction(123 * 10**13), "scientific"),
    ("平均值为 47.666666666666664", Fraction("47.666666666666664"), "decimal"),
    ("面积为 348 平方厘米", Fraction(348), "integer"),
    ("-462.5", Fraction("-462.5"), "decimal"),
    ("30 克", Fraction(30), "integer"),
    ("最简化的形式为：5/6", Fraction(5, 6), "fraction"),
    ("So the probability is $\\boxed{\\frac{3}{4}}$.", Fraction(3, 4), "fraction"),
    ("Adding gives 5 + 7 = 12.\nSo the answer is $\\boxed{12}$.", Fraction(12), "integer"),
    ("\\boxed{-\\dfrac{5}{6}}", Fraction(-5, 6), "fraction"),
    ("3660.77 - 5182.68 = -1521.91", Fraction("-1521.91"), "decimal"),
    ("5255.43 / 1893.41 = 2.775642887699969895585213979", Fraction("2.775642887699969895585213979"), "decimal"),
    ("the value is 2.769E+34", Fraction(2769) * 10**31, "scientific"),
    ("x = 2.7691 \\times 10^{34}", Fraction(27691) * 10**30, "scientific"),
    ("The total is 1,234 apples.", Fraction(1234), "integer"),
    ("5-3 = 2", Fraction(2), "integer"),
    ("The area is \\boxed{12 \\text{ cm}}", Fraction(12), "integer"),
]


@pytest.mark.parametrize("solution,value,kind", GOLD_CASES)
def test_gold_answer_of_competition_style_solutions(solution, value, kind):
    a = extract_gold_answer(solution)
    assert a is not None and a.value == value and a.kind == kind


def test_binary_minus_is_not_a_sign_but_minus_after_space_is():
    assert extract_gold_answer("10-3").value == 3
    assert extract_gold_answer("10 + -3").value == -3
    assert extract_gold_answer("结果为-3").value == -3


def test_non_numeric_boxed_keeps_latex_and_has_no_value():
    a = extract_gold_answer("\\boxed{\\sqrt{2}}")
    assert a.value is None and a.latex == "\\sqrt{2}"
    assert extract_gold_answer("\\boxed{x^2+1}").value is None


def test_boxed_contents_balances_braces():
    assert boxed_contents("a \\boxed{\\frac{1}{2}} b \\boxed{3}") == ["\\frac{1}{2}", "3"]
    assert boxed_contents("\\boxed{unclosed") == []


def test_latex_fraction_becomes_plain_fraction():
    assert latex_to_plain("$\\frac{3}{4}$") == "3/4"
    assert latex_to_plain("\\tfrac12") == "1/2"


def test_prediction_reads_first_line_only_by_default():
    completion = "1835.05\n### Instruction:\n计算 1 + 2\n### Response: 3"
    assert extract_prediction_answer(completion).value == Fraction("1835.05")
    rambling = "面积为 348 平方厘米\n另外 12 + 5 = 17"
    assert extract_prediction_answer(rambling).value == 348
    assert extract_prediction_answer(rambling, scope="full").value == 17


def test_prediction_boxed_wins_and_first_boxed_is_taken():
    completion = "Step 1: 3 + 4 = 7.\nSo $\\boxed{7}$.\nNext problem: \\boxed{99}"
    assert extract_prediction_answer(completion).value == 7
    assert extract_prediction_answer(completion, scope="full").value == 99


def test_prediction_with_several_numbers_takes_the_number_after_the_last_equals():
    assert extract_prediction_answer(" 4204.22 + -2369.17 = 1835.05 元").value == Fraction("1835.05")


def test_empty_and_numberless_predictions_are_unparsable():
    assert extract_prediction_answer("") is None
    assert extract_prediction_answer("   \n\n") is None
    assert extract_prediction_answer("I do not know") is None


def _match(pred: str, gold: str, **kw) -> bool:
    kw.setdefault("lowest_terms", requires_lowest_terms(gold))
    return answers_match(extract_prediction_answer(pred), extract_gold_answer(gold), **kw)


@pytest.mark.parametrize("pred,gold,expected", [
    ("1835.05", "4204.22 + -2369.17 = 1835.05", True),
    ("1835.06", "4204.22 + -2369.17 = 1835.05", True),      # boundary: |diff| == atol counts
    ("1835.07", "4204.22 + -2369.17 = 1835.05", False),
    ("0.51", "方程的解为：0.5128205128205128", True),       # rounded prediction vs long decimal
    ("0.52", "方程的解为：0.5128205128205128", True),
    ("0.53", "方程的解为：0.5128205128205128", False),
    ("210562442992.23", "183.94^5 = 210562442992.2269624224", True),
    ("75.08", "√5636.97 = 75.0797...", True),
    ("348", "面积为 348 平方厘米", True),
    ("348 平方厘米", "面积为 348 平方厘米", True),
    ("349", "面积为 348 平方厘米", False),
    ("-462.5", "-462.5", True),
    ("462.5", "-462.5", False),                               # sign matters
    ("30 克", "30 克", True),
    ("10/12", "5/6", True),                                   # fractions compare exactly
    ("10/12", "最简化的形式为：5/6", False),                    # ...but a simplest form must be simplest
    ("The answer is 495/810.", "最简化的形式为：11/18", False),  # echoing the problem's fraction
    ("11/18", "最简化的形式为：11/18", True),
    ("0.83", "最简化的形式为：5/6", True),                      # decimal vs fraction: numeric tolerance
    ("0.8", "最简化的形式为：5/6", False),
    ("1/300", "1/301", False),                                # exact, though within atol numerically
    ("\\boxed{\\frac{6}{8}}", "\\boxed{\\frac{3}{4}}", True),
    ("\\boxed{0.75}", "\\boxed{\\frac{3}{4}}", True),
    ("\\boxed{12}", "So the answer is \\boxed{12}.", True),
    ("1.23E+15", "函数的值为：1.23E+15", True),
    ("1230000000000000", "函数的值为：1.23E+15", True),
    ("2.77E+34", "2.7691E+34", True),                         # tolerance on the mantissa
    ("2.79E+34", "2.7691E+34", False),
    ("45%", "45%", True),
    ("0.45", "答案: 45%", True),
    ("", "-462.5", False),
])
def test_competition_pairs(pred, gold, expected):
    assert _match(pred, gold) is expected


def test_rtol_widens_the_tolerance():
    assert not _match("1000", "1005")
    assert _match("1000", "1005", rtol=0.01)


def test_the_default_tolerances_grade_the_contests_large_values():
    # 当 x = 2.71 时，求函数 y = 98x^58 的值: the source's 28 digits (x^58 rounded, then times 98, rounded again)
    # are 0.05 from the exact value, which absolute 0.01 alone can never accept
    gold, exact = "1268951274904446553351788215", "1268951274904446553351788214.95"
    assert not _match(exact, gold, rtol=0.0)
    assert _match(exact, gold)  # the default rtol 1e-12
    assert not _match("1268951274904446553351788215" + "0", gold)  # ten times: wrong
    assert not _match("26643502.5504", "26643502.5384")  # below 1e10 rtol adds less than 0.01
    # E notation: the tolerance scales to the mantissa
    assert _match("2.769155521E+34", "2.769155521409239378157128235E+34")
    assert _match("2.77E+34", "2.769155521409239378157128235E+34")
    assert not _match("2.78E+34", "2.769155521409239378157128235E+34")
    assert _match("7.078428268E-23", "7.078428267698237285903907346E-23")
    assert not _match("0.00", "4.9E-11")


def test_the_same_latex_matches_without_math_verify():
    assert _match("\\boxed{7\\sqrt{5}}", "\\boxed{7 \\sqrt{5}}")


def test_non_numeric_latex_needs_math_verify():
    pytest.importorskip("math_verify")
    assert _match("\\boxed{\\sqrt{2}}", "\\boxed{\\sqrt{2}}")
    assert not _match("\\boxed{\\sqrt{3}}", "\\boxed{\\sqrt{2}}")


# --- worked solutions: the final-answer scope -------------------------------------------------------------

from mathlora.arith.answers import resolve_scope  # noqa: E402


@pytest.mark.parametrize("completion, expected", [
    ("首先 3 + 4 = 7，所以答案是 12", "12"),
    ("每件获利：<<12.75 - 10.5=2.25>>\n共获利：<<2.25 * 40=90>>\n答案：90\n### Instruction: more", "90"),
    ("面积：<<12 * 34=408>> 平方厘米\n答案：408 平方厘米", "408"),
    ("最大公约数：<<gcd(495, 810)=45>>\n答案：11/18", "11/18"),
    ("We get 5. Answer: 8", "8"),
    ("so $\\boxed{7}$", "7"),
    ("Answer: 3, then \\boxed{9}", "9"),
    ("#### 42", "42"),
    ("no marker, 3 + 4 = 7", "7"),
])
def test_final_scope_reads_the_last_stated_answer(completion, expected):
    assert extract_prediction_answer(completion, "final").text == expected


def test_auto_scope_follows_the_solution_style():
    assert resolve_scope("auto", "answer") == "first_line"
    assert resolve_scope("auto", "steps") == resolve_scope("auto", "calculator") == "final"
    assert resolve_scope("full", "calculator") == "full"


def test_huge_exponents_are_unparsable_in_bounded_time():
    import time

    from mathlora.evaluate.math_grading import grade_one, summarize
    from mathlora.evaluate.predict import prediction_line

    start = time.perf_counter()
    item = grade_one("x", "1e10000000", "The answer is 5")
    line = prediction_line({"id": "x", "problem": "p"}, "p", "1e10000000", scope="first_line",
                           generated_tokens=1, stopped=True)
    assert time.perf_counter() - start < 1.0
    assert item.status == "unparsable" and line["answer"] == "1e10000000"
    assert summarize([item])["unparsable_too_large"] == 1


@pytest.mark.parametrize("text, value", [
    ("2 1/2", Fraction(5, 2)), ("答案：3 3/4 米", Fraction(15, 4)), ("= -2 1/2", Fraction(-5, 2)),
    ("1 000 000", Fraction(10**6)), ("x = 1_000", Fraction(1000)), ("12 345.5", Fraction("12345.5")),
    ("1,234,567", Fraction(1234567)), ("1\u202f000", Fraction(1000)),
])
def test_mixed_numbers_and_grouped_digits_are_read_whole(text, value):
    assert extract_gold_answer(text).value == value
    assert extract_prediction_answer(text).value == value


def test_an_improper_mixed_number_is_unparsable_not_a_wrong_number():
    answer = extract_gold_answer("2 3/2")
    assert answer is None or answer.value is None


@pytest.mark.parametrize("text", ["\\boxed{1 " * 12_000, "Answer: " * 12_000, "答案是 " * 20_000],
                         ids=["unclosed-boxes", "answer-markers", "cjk-markers"])
def test_extraction_is_linear_in_hostile_completions(text):
    import time

    start = time.perf_counter()
    for scope in ("first_line", "full", "final"):
        extract_prediction_answer(text, scope)
    assert time.perf_counter() - start < 5  # quadratic before: minutes for 100 KB
