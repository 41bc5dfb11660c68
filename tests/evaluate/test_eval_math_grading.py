import json

import pytest

from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.math_grading import grade_file
from mathlora.run_dir.records import write_jsonl

GOLD = [
    {"id": "a", "solution": "4204.22 + -2369.17 = 1835.05", "type": "addition"},
    {"id": "b", "solution": "最简化的形式为：5/6", "type": "fraction_simplify"},
    {"id": "c", "solution": "面积为 348 平方厘米", "type": "rectangle_area"},
    {"id": "d", "solution": "So $x = \\boxed{12}$.", "type": "english_math"},
    {"id": "e", "solution": "方程的解为：0.5128205128205128", "type": "linear_equation"},
]
COMPLETIONS = {"a": "1835.05", "b": "5/6", "c": "350 平方厘米", "d": "", "e": "0.51\n### Instruction: 7"}


def _preds(completions: dict, with_gold: bool = True) -> list[dict]:
    out = []
    for g in GOLD:
        line = {"id": g["id"], "completion": completions[g["id"]], "type": g["type"]}
        if with_gold:
            line["gold"] = g["solution"]
        out.append(line)
    return out


def test_grade_file_accuracy_per_type_and_wrong_samples(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", _preds(COMPLETIONS))
    r = grade_file(EvalConfig(), tmp_path / "p.jsonl", tmp_path / "r.json")
    assert (r["count"], r["correct"], r["unparsable"]) == (5, 3, 1)
    assert r["accuracy"] == 0.6
    assert r["per_type"]["rectangle_area"] == {"count": 1, "correct": 0, "accuracy": 0.0}
    assert r["per_type"]["fraction_simplify"]["accuracy"] == 1.0
    wrong = {w["id"]: w for w in r["wrong_samples"]}
    assert set(wrong) == {"c", "d"}
    assert wrong["c"]["predicted"] == "350" and wrong["c"]["gold_answer"] == "348"
    assert wrong["d"]["status"] == "unparsable"
    assert json.loads((tmp_path / "r.json").read_text())["accuracy"] == 0.6


def test_gold_file_joins_by_id_regardless_of_order(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", _preds(COMPLETIONS, with_gold=False)[::-1])
    write_jsonl(tmp_path / "g.jsonl", GOLD)
    r = grade_file(EvalConfig(), tmp_path / "p.jsonl", tmp_path / "r.json", gold_path=tmp_path / "g.jsonl")
    assert r["correct"] == 3 and r["count"] == 5


def test_tolerance_is_configurable(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", _preds(COMPLETIONS))
    r = grade_file(EvalConfig(atol=2.0), tmp_path / "p.jsonl", tmp_path / "r.json")
    assert r["correct"] == 4  # 350 vs 348 now within tolerance


def test_baseline_comparison(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", _preds(COMPLETIONS))
    base = {**COMPLETIONS, "a": "1", "c": "348", "b": "oops"}
    write_jsonl(tmp_path / "base.jsonl", _preds(base))
    r = grade_file(EvalConfig(), tmp_path / "p.jsonl", tmp_path / "r.json", baseline_path=tmp_path / "base.jsonl")
    c = r["comparison"]
    assert (c["before"], c["after"], c["change"]) == (0.4, 0.6, 0.2)
    assert (c["fixed"], c["broken"]) == (2, 1)  # a and b fixed, c broken
    assert c["per_type"]["rectangle_area"] == {"before": 1.0, "after": 0.0, "change": -1.0, "count": 1}


def test_unparsable_gold_is_left_out_and_counted(tmp_path):
    lines = _preds(COMPLETIONS) + [{"id": "z", "completion": "3", "gold": "no number here"}]
    write_jsonl(tmp_path / "p.jsonl", lines)
    r = grade_file(EvalConfig(), tmp_path / "p.jsonl", tmp_path / "r.json")
    assert r["gold_unparsable"] == 1 and r["count"] == 5


def test_ids_that_do_not_line_up_are_an_error(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", _preds(COMPLETIONS, with_gold=False))
    write_jsonl(tmp_path / "g.jsonl", GOLD[:3] + [{"id": "x", "solution": "1"}])
    with pytest.raises(MathloraError, match="do not line up"):
        grade_file(EvalConfig(), tmp_path / "p.jsonl", tmp_path / "r.json", gold_path=tmp_path / "g.jsonl")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("content,message", [
    ("", "is empty"),
    ('{"id": "a", "completion": "1"}\n', "no 'gold'"),
    ('{"completion": "1", "gold": "1"}\n', "has no 'id'"),
    ('{"id": "a", "completion": "1", "gold": "1"}\n{"id": "a", "completion": "2", "gold": "1"}\n', "duplicate"),
    ("not json\n", "not valid JSON"),
])
def test_bad_prediction_files(tmp_path, content, message):
    (tmp_path / "p.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(MathloraError, match=message):
        grade_file(EvalConfig(), tmp_path / "p.jsonl", tmp_path / "r.json")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MathloraError, match="not found"):
        grade_file(EvalConfig(), tmp_path / "nope.jsonl", tmp_path / "r.json")
    with pytest.raises(MathloraError, match="directory"):
        grade_file(EvalConfig(), tmp_path, tmp_path / "r.json")


@pytest.mark.parametrize("mode", ["round", "truncate"])
def test_every_synth_family_graded_correct_against_its_2_decimal_normalized_self(mode):
    """A model that learned the normalized training solutions exactly is graded 100% on the raw gold."""
    from mathlora.arith.numbers import format_decimals
    from mathlora.evaluate.math_grading import grade_one
    from mathlora.synth.competition import generate

    records = generate(300, seed=7)
    assert len({r["type"] for r in records}) >= 10
    for r in records:
        completion = format_decimals(r["solution"], 2, mode)
        item = grade_one("x", completion, r["solution"], scope="first_line")
        assert item.correct, (r, completion, item)


def test_echoing_the_problems_fraction_does_not_simplify_it():
    from mathlora.evaluate.math_grading import grade_one

    echo = grade_one("x", "\nThe answer is 2376/4400.", "最简化的形式为：27/50", type_="fraction_simplify")
    right = grade_one("y", "最简化的形式为：27/50", "最简化的形式为：27/50", type_="fraction_simplify")
    assert echo.status == "wrong" and right.status == "correct"
