"""The SQuAD v1.1 fixture: valid shape, answer spans at their offsets, determinism."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from mathlora.errors import MathloraError
from mathlora.synth.squad import Passage, generate_squad


@pytest.fixture(scope="module")
def squad() -> dict:
    return generate_squad(300, seed=11)


def paragraphs(squad: dict) -> list[dict]:
    return [p for article in squad["data"] for p in article["paragraphs"]]


def test_shape_is_squad_v11(squad):
    assert squad["version"] == "1.1"
    assert json.loads(json.dumps(squad)) == squad
    assert len(paragraphs(squad)) == 300
    for article in squad["data"]:
        assert set(article) == {"title", "paragraphs"} and article["title"]
        for p in article["paragraphs"]:
            assert set(p) == {"context", "qas"} and 1 <= len(p["qas"]) <= 3
            for qa in p["qas"]:
                assert set(qa) == {"id", "question", "answers"} and qa["question"].endswith("?")
                assert re.fullmatch(r"[0-9a-f]{24}", qa["id"]) and 1 <= len(qa["answers"]) <= 3


def test_every_answer_is_a_span_at_its_offset(squad):
    for p in paragraphs(squad):
        for qa in p["qas"]:
            for answer in qa["answers"]:
                assert set(answer) == {"text", "answer_start"}
                assert p["context"][answer["answer_start"]:].startswith(answer["text"]), (qa, p["context"])
                assert answer["text"] == answer["text"].strip() and len(answer["text"].split()) <= 5


def test_ids_unique_and_answers_varied(squad):
    qas = [qa for p in paragraphs(squad) for qa in p["qas"]]
    assert len({qa["id"] for qa in qas}) == len(qas)
    answer_counts = Counter(len(qa["answers"]) for qa in qas)
    assert answer_counts[1] and answer_counts[2] and answer_counts[3]
    assert Counter(len(p["qas"]) for p in paragraphs(squad)).keys() == {1, 2, 3}
    assert any(qa["answers"][1]["text"] == f"in {qa['answers'][0]['text']}" for qa in qas if len(qa["answers"]) > 1)
    assert len({p["context"].split()[0] for p in paragraphs(squad)}) > 20  # many subjects, not one template
    assert len({p["context"] for p in paragraphs(squad)}) == 300


def test_passages_have_several_sentences(squad):
    for p in paragraphs(squad):
        assert p["context"].count(". ") >= 3 and p["context"].endswith(".")
        assert " a a" not in p["context"] and " a e" not in p["context"] and " a o" not in p["context"]


def test_deterministic_per_seed():
    assert generate_squad(40, seed=2) == generate_squad(40, seed=2)
    assert generate_squad(40, seed=2) != generate_squad(40, seed=3)


def test_passage_answer_offsets_for_wider_alternatives():
    p = Passage()
    p.sentence("Ann Lee was born in ", ("year", "1998"), ".")
    p.sentence("She moved to ", ("city", "Oakport"), ".")
    assert p.context == "Ann Lee was born in 1998. She moved to Oakport."
    assert p.answer("year") == {"text": "1998", "answer_start": 20}
    assert p.answer("year", "in 1998") == {"text": "in 1998", "answer_start": 17}
    assert p.answer("city") == {"text": "Oakport", "answer_start": 39}
    with pytest.raises(AssertionError):
        p.answer("city", "to Oakport, Aldoria")


def test_negative_paragraphs_rejected():
    assert generate_squad(0, seed=0) == {"version": "1.1", "data": []}
    with pytest.raises(MathloraError):
        generate_squad(-1, seed=0)
