"""The GRPO rewards are mathlora's grader: right answers 1, wrong 0, and hostile completions a counted 0."""

from __future__ import annotations

import time

import pytest

from mathlora.grpo import rewards
from mathlora.grpo.rewards import Grading, correct_reward, format_reward

GOLD = "3 + 4 = 7"


def test_correct_and_format_follow_the_grader():
    grading = Grading(scope="first_line")
    correct, fmt = correct_reward(grading), format_reward(grading)
    completions = ["7", "7.001", "8", "no number here", "\\boxed{7}"]
    golds = [GOLD] * len(completions)
    assert correct(prompts=[""] * 5, completions=completions, gold=golds) == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert fmt(prompts=[""] * 5, completions=completions, gold=golds) == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert grading.events.as_dict()["graded"] == 5 and sum(grading.events.counts.values()) == 0


def test_tolerances_are_the_runs():
    strict = correct_reward(Grading(atol=0.0, rtol=0.0))
    assert strict(completions=["7.001"], gold=[GOLD]) == [0.0]
    assert correct_reward(Grading(atol=0.01))(completions=["7.001"], gold=[GOLD]) == [1.0]


def test_worked_solutions_are_read_after_their_answer_marker():
    final = correct_reward(Grading(scope="final"))
    assert final(completions=["3 + 4 = 8 is wrong; 3 + 4 = 7\n答案：7"], gold=[GOLD]) == [1.0]


HOSTILE = [
    "1e999999999999",                     # an exponent past the cap
    "10^10^10",                           # a tower
    "2^{2^{2^{100}}}",
    "9" * 5000,                           # digits past the cap
    "\\frac{1}{0}",                       # a zero denominator
    "\\boxed{" * 10000,                   # runaway nesting, unclosed
    "\ud800\udfff\x00\u202e\ufeff１２３ ７",  # lone surrogates, NUL, bidi, full-width digits
    "=" * 50000 + "7",
    "7" * (rewards.MAX_CHARS + 1),        # longer than any completion
    None, 12, [{"role": "assistant", "content": 7}], b"7",  # not text
]


def test_hostile_completions_are_zero_and_counted_never_a_crash():
    grading = Grading(timeout=2.0)
    correct, fmt = correct_reward(grading), format_reward(grading)
    logged = {}
    start = time.perf_counter()
    got = correct(completions=HOSTILE, gold=[GOLD] * len(HOSTILE),
                  log_metric=lambda name, value: logged.__setitem__(name, value))
    fmt_got = fmt(completions=HOSTILE, gold=[GOLD] * len(HOSTILE))
    assert time.perf_counter() - start < 10
    assert len(got) == len(fmt_got) == len(HOSTILE)
    assert all(r in (0.0, 1.0) for r in got + fmt_got)
    assert got[:6] == [0.0] * 6 and got[8:] == [0.0] * 5
    events = grading.events.as_dict()
    assert events["not_text"] == 4 and events["too_long"] == 1
    assert logged["reward_events/not_text"] == 4.0 and logged["reward_events/too_long"] == 1.0


def test_a_grader_that_raises_is_a_counted_zero(monkeypatch):
    def boom(*a, **k):
        raise RecursionError("deep")

    monkeypatch.setattr(rewards, "grade_one", boom)
    grading = Grading()
    assert correct_reward(grading)(completions=["7", "8"], gold=[GOLD, GOLD]) == [0.0, 0.0]
    assert grading.events.as_dict()["error"] == 2


def test_a_grader_that_hangs_is_a_counted_zero_after_the_timeout(monkeypatch):
    def slow(*a, **k):
        while True:  # pure Python: the alarm interrupts it
            pass

    monkeypatch.setattr(rewards, "grade_one", slow)
    grading = Grading(timeout=0.2)
    start = time.perf_counter()
    assert correct_reward(grading)(completions=["7", "8"], gold=[GOLD, GOLD]) == [0.0, 0.0]
    assert time.perf_counter() - start < 2
    assert grading.events.as_dict()["timeout"] == 2


def test_an_ungradable_gold_is_a_counted_zero():
    grading = Grading()
    assert correct_reward(grading)(completions=["7"], gold=["no answer"]) == [0.0]
    assert grading.events.as_dict()["gold_unparsable"] == 1


@pytest.mark.parametrize("gold", [None, 7])
def test_a_missing_gold_is_a_counted_zero(gold):
    grading = Grading()
    assert correct_reward(grading)(completions=["7"], gold=[gold]) == [0.0]
    assert grading.events.as_dict()["not_text"] == 1
