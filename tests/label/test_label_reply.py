import math

import pytest

from mathlora.label.reply import parse_difficulty, probs_from_logprobs


@pytest.mark.parametrize("text, level", [
    ("3", 3), (" 0\n", 0), ("Difficulty: 3", 3), ("difficulty level: 4", 4), ("**Difficulty:** 2", 2),
    ('{"difficulty": 5}', 5), ('```json\n{"difficulty": "1"}\n```', 1), ("I would rate this a 4 out of 5.", 4),
    ("难度：2", 2), ('{"difficulty": 2.0}', 2),
])
def test_parse_difficulty_accepts_common_reply_shapes(text, level):
    assert parse_difficulty(text) == (level, None)


@pytest.mark.parametrize("text, reason", [
    ("7", "out of range"), ('{"difficulty": 9}', "out of range"), ("3.5", "out of range"), ("-1", "out of range"),
    ("I cannot rate this.", "no digit"), ("", "empty"), (None, "empty"),
])
def test_parse_difficulty_rejects_unusable_replies(text, reason):
    level, why = parse_difficulty(text)
    assert level is None and reason in why


def test_probs_from_logprobs_reads_the_digit_position_and_renormalises():
    content = [
        {"token": "Difficulty", "logprob": -0.1, "top_logprobs": [{"token": "1", "logprob": -5.0}]},
        {"token": ":", "logprob": -0.1, "top_logprobs": []},
        {"token": " 3", "logprob": math.log(0.6), "top_logprobs": [
            {"token": " 3", "logprob": math.log(0.6)}, {"token": "2", "logprob": math.log(0.2)},
            {"token": "x", "logprob": math.log(0.1)}, {"token": "4", "logprob": math.log(0.1)}]},
    ]
    probs = probs_from_logprobs(content)
    assert probs == pytest.approx([0, 0, 0.2 / 0.9, 0.6 / 0.9, 0.1 / 0.9, 0])
    assert sum(probs) == pytest.approx(1.0)


def test_probs_from_logprobs_without_a_digit_token_is_none():
    assert probs_from_logprobs(None) is None
    assert probs_from_logprobs([{"token": "hello", "top_logprobs": [{"token": "3", "logprob": -1}]}]) is None


@pytest.mark.parametrize("text, level", [
    ("Difficulty (0-5): 4", 4), ("Difficulty [0 to 5]: 2", 2), ("On a scale of 0-5, this is a 3.", 3),
    ("Rating (0–5) = 1", 1), ("3/5", 3), ("Difficulty: 5/5", 5), ("Level (0..5): 0", 0),
])
def test_a_restated_scale_is_not_read_as_the_verdict(text, level):
    assert parse_difficulty(text) == (level, None)
