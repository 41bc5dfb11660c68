"""report.scores: one reading of a run's scores for the headline, the report and the model card."""

import json

import pytest

from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.report.scores import RunScores, headline


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


RETENTION = {"passed": True, "keep": 0.9, "f1": 50.0, "em": 40.0, "base_f1": 52.0, "base_em": 41.0}


def test_headline_names_the_report_accuracy_and_retention(tmp_path):
    lay = RunLayout(tmp_path)
    assert headline(tmp_path) == f"report: {lay.report_html} | math accuracy: n/a | retention: n/a"
    write(lay.eval("base").math, {"accuracy": 0.25})
    write(lay.eval("tuned").math, {"accuracy": 0.5})
    write(lay.eval("tuned").squad, {"f1": 50.0, "em": 40.0, "retention": RETENTION})
    assert headline(tmp_path) == (f"report: {lay.report_html} | math accuracy 25.0% -> 50.0% without a tool | "
                                  "retention PASSED "
                                  "(F1 52.0 -> 50.0, EM 41.0 -> 40.0, keep 90%)")
    write(lay.eval("base").math_nocalc, {"accuracy": 0.1})
    write(lay.eval("tuned").math_nocalc, {"accuracy": 0.2})
    assert "25.0% -> 50.0% with the calculator (10.0% -> 20.0% without)" in headline(tmp_path)


def test_a_damaged_score_file_is_a_one_line_error_or_absent_when_not_strict(tmp_path):
    path = RunLayout(tmp_path).eval("tuned").math
    path.parent.mkdir(parents=True)
    path.write_text('{"accuracy": NaN}', encoding="utf-8")
    with pytest.raises(MathloraError, match="math.json"):
        RunScores.read(tmp_path)
    assert RunScores.read(tmp_path, strict=False).tuned_math is None


def test_headline_says_not_measurable_for_a_base_of_zero(tmp_path):
    lay = RunLayout(tmp_path)
    zero = {"passed": None, "measurable": False, "keep": 0.9, "f1": 0.0, "em": 0.0, "base_f1": 0.0, "base_em": 0.0}
    write(lay.eval("tuned").squad, {"f1": 0.0, "em": 0.0, "retention": zero})
    line = headline(tmp_path)
    assert "retention not measurable" in line and "PASSED" not in line and "FAILED" not in line


def test_family_table_golden_rows_shared_by_the_report_and_the_card():
    from mathlora.report.render import Doc, family_table

    base = {"count": 1200, "accuracy": 0.25, "per_type": {"b|x": {"count": 1000, "accuracy": 0.2},
                                                          "a_y": {"count": 200, "accuracy": 0.5}}}
    tuned = {"count": 1200, "accuracy": 0.5, "per_type": {"b|x": {"count": 1000, "accuracy": 0.45}}}
    header, rows = family_table([("base", base), ("tuned", tuned), ("grpo", None)], count_from=tuned,
                                changes=[("change", tuned, base), ("after", None, tuned)])
    assert header == ["family", "problems", "base", "tuned", "grpo", "change", "after"]
    assert rows == [["ALL", "1,200", "25.0%", "50.0%", "n/a", "+25.0", "n/a"],
                    ["a_y", "200", "50.0%", "n/a", "n/a", "-50.0", "n/a"],  # count: the first report that has it
                    ["b|x", "1,000", "20.0%", "45.0%", "n/a", "+25.0", "n/a"]]
    header, rows = family_table([("base", base)], total=False)
    assert [r[0] for r in rows] == ["a_y", "b|x"] and header == ["family", "problems", "base"]
    assert family_table([("base", {"accuracy": 0.5})], total=False) == (["family", "problems", "base"], [])
    doc = Doc()
    doc.table(*family_table([("base", base)], total=False))
    assert doc.md[:4] == ["| family | problems | base |", "|---|---|---|", "| a\\_y | 200 | 50.0% |",
                          "| b\\|x | 1,000 | 20.0% |"]
