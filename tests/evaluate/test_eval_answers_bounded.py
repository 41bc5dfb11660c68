"""evaluate.answers: answer parsing stays bounded on hostile numbers."""

from __future__ import annotations

import time

import pytest
from tests.conftest import single_torch_thread


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def test_huge_exponents_are_unparsable_in_bounded_time():
    from mathlora.evaluate.math_grading import grade_one, summarize
    from mathlora.evaluate.predict import prediction_line

    start = time.perf_counter()
    item = grade_one("x", "1e10000000", "The answer is 5")
    line = prediction_line({"id": "x", "problem": "p"}, "p", "1e10000000", scope="first_line",
                           generated_tokens=1, stopped=True)
    assert time.perf_counter() - start < 1.0
    assert item.status == "unparsable" and line["answer"] == "1e10000000"
    assert summarize([item])["unparsable_too_large"] == 1
