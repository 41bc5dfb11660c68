"""The rewrite stage: synth's answer-style output comes back exactly as the worked synth output."""

import json

from mathlora.app.cli import main
from mathlora.data.rewrite import rewrite_file
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.synth.competition import generate


def test_rewriting_answer_style_synth_output_equals_the_worked_synth_output(tmp_path):
    for style in ("steps", "calculator"):
        src, out = tmp_path / f"answer-{style}.jsonl", tmp_path / f"{style}.jsonl"
        write_jsonl(src, generate(900, 5))
        report = rewrite_file(src, out, tmp_path / f"{style}_report.json", style=style)
        expected = generate(900, 5, style=style)
        got = list(read_jsonl(out))
        assert [r["solution"] for r in got] == [r["solution"] for r in expected]
        english = sum(r["type"] == "english_math" for r in expected)
        assert (report["rewritten"], report["unknown"], report["mismatch"]) == (900 - english, english, 0)
        assert all(r["original_solution"] != r["solution"] for r in got if r["type"] != "english_math")


def test_mismatches_and_unknowns_are_kept_and_counted(tmp_path):
    rows = [{"id": "a", "problem": "计算 1.5 + 2.5 等于多少？", "solution": "1.5 + 2.5 = 5"},
            {"id": "b", "problem": "计算 1.5 + 2.5 等于多少？", "solution": "1.5 + 2.5 = 4"},
            {"id": "c", "problem": "What is $2+2$?", "solution": "$\\boxed{4}$"}]
    src, out, rep = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "report.json"
    write_jsonl(src, rows)
    assert main(["rewrite", "-i", str(src), "-o", str(out), "--report", str(rep), "--solution-style", "steps"]) == 0
    got = {r["id"]: r for r in read_jsonl(out)}
    assert got["a"]["solution"] == "1.5 + 2.5 = 5" and "original_solution" not in got["a"]
    assert got["b"]["solution"] == "1.5 + 2.5 = 4\n答案：4"
    assert got["c"]["solution"] == "$\\boxed{4}$"
    report = json.loads(rep.read_text())
    assert report["per_family"]["addition"] == {"recognised": 2, "rewritten": 1, "mismatch": 1, "refused": 0}
    assert (report["unknown"], report["mismatch_examples"][0]["id"]) == (1, "a")
