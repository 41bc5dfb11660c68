import json

import pytest

from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.squad import (SQUAD_PROMPT, best_over_golds, build_samples, dump_samples, evaluate_squad,
                                     exact_match, f1_score, load_samples, normalize_answer, retention_verdict,
                                     score_predictions)
from mathlora.run_dir.records import read_jsonl, write_jsonl


def squad_doc() -> dict:
    return {"version": "1.1", "data": [
        {"title": "A", "paragraphs": [
            {"context": "Paris is the capital of France.",
             "qas": [{"id": "q1", "question": "What is the capital of France?",
                      "answers": [{"text": "Paris", "answer_start": 0}, {"text": "the city of Paris"}]},
                     {"id": "q2", "question": "Of what is Paris the capital?", "answers": [{"text": "France"}]}]},
            {"context": "The Nile is long.", "qas": []},
        ]},
        {"title": "B", "paragraphs": [
            {"context": "Water boils at 100 degrees.",
             "qas": [{"id": "q3", "question": "At what temperature does water boil?",
                      "answers": [{"text": "100 degrees"}]}]},
        ]},
    ]}


def write_squad(path, doc=None):
    path.write_text(json.dumps(doc or squad_doc()), encoding="utf-8")
    return path


# -- official metric, hand-computed ---------------------------------------------------------------------

def test_normalize_answer_lowercases_strips_punctuation_articles_and_spaces():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("  An apple, a day ") == "apple day"
    assert normalize_answer("Theory of the Atom") == "theory of atom"  # 'the' only as a word


def test_f1_token_overlap():
    assert f1_score("the cat sat", "a cat sat on the mat") == pytest.approx(2 / 3)   # P=1, R=1/2
    assert f1_score("Paris, France", "Paris") == pytest.approx(2 / 3)                 # P=1/2, R=1
    assert f1_score("cat cat", "cat") == pytest.approx(2 / 3)                         # counts clip at 1
    assert f1_score("dog", "cat") == 0.0


def test_exact_match_after_normalization():
    assert exact_match("The Paris.", "paris") == 1.0
    assert exact_match("Paris France", "Paris") == 0.0


def test_empty_prediction_scores_zero_except_em_on_an_empty_normalized_gold():
    assert f1_score("", "Paris") == 0.0 and exact_match("", "Paris") == 0.0
    assert exact_match("", "the") == 1.0 and f1_score("", "the") == 0.0  # official v1.1 behaviour


def test_max_over_gold_answers():
    golds = ["Paris", "the city of Paris"]
    assert best_over_golds(f1_score, "city of Paris", golds) == 1.0
    assert best_over_golds(f1_score, "Paris city", golds) == pytest.approx(max(2 / 3, 0.8))
    assert best_over_golds(exact_match, "paris", golds) == 1.0


def test_score_predictions_in_percent():
    samples = [{"id": "1", "answers": ["Paris"]}, {"id": "2", "answers": ["a cat sat on the mat"]}]
    r = score_predictions({"1": "Paris", "2": "the cat sat"}, samples)
    assert r == {"f1": pytest.approx(100 * (1 + 2 / 3) / 2, abs=1e-4), "em": 50.0, "count": 2}


# -- samples and file shape -----------------------------------------------------------------------------

def test_default_samples_are_first_question_first_answer_per_paragraph():
    samples = build_samples(squad_doc()["data"])
    assert [s["id"] for s in samples] == ["q1", "q3"]
    assert samples[0]["answers"] == ["Paris"]
    assert samples[0]["prompt"] == ("Read the passage and answer the question below.\n\n### Instruction:\n"
                                    "Paris is the capital of France.\n\n### Input:\nWhat is the capital of France?"
                                    "\n\n### Response:")
    assert SQUAD_PROMPT.endswith("### Response:")


def test_all_questions_keeps_every_answer_and_limit_cuts():
    samples = build_samples(squad_doc()["data"], all_questions=True)
    assert [s["id"] for s in samples] == ["q1", "q2", "q3"]
    assert samples[0]["answers"] == ["Paris", "the city of Paris"]
    assert len(build_samples(squad_doc()["data"], limit=1)) == 1


@pytest.mark.parametrize("doc,message", [
    ([1, 2], "top level"),
    ({"data": [{"title": "x"}]}, r"data\[0\] must have a 'paragraphs' list"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, r"data\[0\].paragraphs\[0\]"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q", "answers": []}]}]}]},
     "non-empty 'answers'"),
    ({"data": []}, "has no questions"),
])
def test_wrong_shape_is_one_clear_error(tmp_path, doc, message):
    with pytest.raises(MathloraError, match=message):
        load_samples(write_squad(tmp_path / "s.json", doc))


def test_not_json_and_missing_file(tmp_path):
    (tmp_path / "s.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(MathloraError, match="not valid JSON"):
        load_samples(tmp_path / "s.json")
    with pytest.raises(MathloraError, match="not found"):
        load_samples(tmp_path / "missing.json")


# -- retention ------------------------------------------------------------------------------------------

def test_retention_verdict_threshold_is_inclusive():
    v = retention_verdict({"f1": 50.0, "em": 40.0}, {"f1": 45.0, "em": 36.0}, 0.9)
    assert v["passed"] and v["f1_ratio"] == 0.9 and v["em_ratio"] == 0.9
    v = retention_verdict({"f1": 50.0, "em": 40.0}, {"f1": 60.0, "em": 35.9}, 0.9)
    assert v["f1_ok"] and not v["em_ok"] and not v["passed"]


def test_retention_verdict_rejects_a_non_result():
    with pytest.raises(MathloraError, match="numeric 'f1'"):
        retention_verdict({"accuracy": 1}, {"f1": 1.0, "em": 1.0}, 0.9)


# -- scoring completions made elsewhere -----------------------------------------------------------------

def test_dump_samples_then_score_external_predictions(tmp_path):
    data = write_squad(tmp_path / "s.json")
    assert dump_samples(data, tmp_path / "samples.jsonl") == 2
    dumped = list(read_jsonl(tmp_path / "samples.jsonl"))
    assert {"id", "prompt", "question", "answers"} <= set(dumped[0])
    answers = {"q1": " Paris\nand more text", "q3": "100 degrees Celsius"}
    write_jsonl(tmp_path / "pred.jsonl", [{"id": s["id"], "prediction": answers[s["id"]]} for s in dumped])
    r = evaluate_squad(EvalConfig(), None, None, None, data, tmp_path / "r.json", predictions_in=tmp_path / "pred.jsonl")
    # q1: first line "Paris" -> 1/1; q3: P=2/3, R=1 -> F1 0.8, EM 0
    assert r["count"] == 2 and r["em"] == 50.0 and r["f1"] == pytest.approx(90.0)
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"f1": 95.0, "em": 50.0, "samples_sha256": r["samples_sha256"]}))
    r2 = evaluate_squad(EvalConfig(), None, None, None, data, tmp_path / "r2.json",
                        predictions_in=tmp_path / "pred.jsonl", baseline_path=base)
    assert r2["retention"]["passed"] and r2["retention"]["f1_ratio"] == pytest.approx(90 / 95, abs=1e-4)


def test_external_predictions_must_cover_every_sample(tmp_path):
    data = write_squad(tmp_path / "s.json")
    write_jsonl(tmp_path / "pred.jsonl", [{"id": "q1", "prediction": "Paris"}])
    with pytest.raises(MathloraError, match="do(es)? not line up"):
        evaluate_squad(EvalConfig(), None, None, None, data, tmp_path / "r.json", predictions_in=tmp_path / "pred.jsonl")


def test_baseline_on_other_samples_is_refused(tmp_path):
    data = write_squad(tmp_path / "s.json")
    write_jsonl(tmp_path / "pred.jsonl", [{"id": "q1", "prediction": "Paris"}, {"id": "q3", "prediction": "x"}])
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"f1": 95.0, "em": 50.0, "samples_sha256": "0123", "count": 2067}))
    with pytest.raises(MathloraError, match="other samples"):
        evaluate_squad(EvalConfig(), None, None, None, data, tmp_path / "r.json",
                       predictions_in=tmp_path / "pred.jsonl", baseline_path=base)


def test_retention_from_a_base_of_zero_is_not_measurable():
    v = retention_verdict({"f1": 0.0, "em": 0.0}, {"f1": 0.0, "em": 0.0}, 0.9)
    assert v["passed"] is None and v["measurable"] is False
