"""Issue 31's remaining lows: a CSV whose header is repeated inside it, a record whose solution repeats its
problem, a config file far larger than any config."""

from __future__ import annotations

import json

from mathlora.app.config import MAX_CONFIG_BYTES
from tests.cli_helpers import assert_one_error, cli


def _rejects(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_repeated_csv_header_row_is_a_reject_with_its_reason(tmp_path, capsys):
    src = tmp_path / "train.csv"
    src.write_text("problem,solution\n1+1?,2\nproblem,solution\n2+2?,4\n", encoding="utf-8")
    out, rej = tmp_path / "records.jsonl", tmp_path / "rejects.jsonl"
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", out, "--rejects", rej)
    assert rc == 0, err
    kept = [json.loads(line)["problem"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert kept == ["1+1?", "2+2?"]
    [reject] = _rejects(rej)
    assert reject["reason"].startswith("a repeated header row")


def test_a_solution_that_repeats_its_problem_is_a_reject(tmp_path, capsys):
    src = tmp_path / "train.jsonl"
    src.write_text(json.dumps({"problem": "q", "solution": "q"}) + "\n"
                   + json.dumps({"problem": "1+1?", "solution": "2"}) + "\n", encoding="utf-8")
    out, rej = tmp_path / "records.jsonl", tmp_path / "rejects.jsonl"
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", out, "--rejects", rej)
    assert rc == 0, err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1
    [reject] = _rejects(rej)
    assert reject["reason"].startswith("solution repeats the problem")


def test_a_config_larger_than_any_config_is_one_line_before_parsing(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("train:\n  lr: 1.0e-4\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1), encoding="utf-8")
    rc, _, err = cli(capsys, "config", "show", "--config", big)
    assert_one_error(rc, err, "MiB", "at most")
