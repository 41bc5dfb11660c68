"""records: the one reader of user files and artifacts."""

from __future__ import annotations

import json

import pytest
from tests.cli_helpers import assert_one_error, cli, records, strict_json_lines
from tests.conftest import single_torch_thread


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


@pytest.mark.parametrize("command", ["normalize", "convert", "label", "sample", "predict", "eval math", "eval squad"])
def test_invalid_utf8_is_one_error_naming_line_and_byte(tmp_path, capsys, command):
    good = json.dumps({"id": "a", "problem": "1+1", "solution": "2", "difficulty": 1, "completion": "2",
                       "gold": "2", "prediction": "x"}) + "\n"
    bad = b'{"id": "b", "problem": "\xff\xfe", "solution": "2"}\n'
    src = tmp_path / "in.jsonl"
    src.write_bytes(good.encode() + bad)
    offset = len(good.encode()) + bad.index(b"\xff")
    out = tmp_path / "out.jsonl"
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [
        {"id": "a", "question": "q", "answers": [{"text": "x"}]}]}]}]}))
    args = {"normalize": ["normalize", "-i", src, "-o", out], "convert": ["convert", "-i", src, "-o", out],
            "label": ["label", "--input", src, "--output", out, "--judge", "heuristic", "--quiet"],
            "sample": ["sample", "--input", src, "--output", out, "--total", "1"],
            "predict": ["predict", "--model", "tiny-random-llama", "--input", src, "--output", out, "--no-progress"],
            "eval math": ["eval", "math", "--predictions", src, "--output", out],
            "eval squad": ["eval", "squad", "--data", squad, "--predictions", src, "--output", out]}[command]
    rc, _, err = cli(capsys, *args)
    assert_one_error(rc, err, f"{src}:2:", f"byte {offset}", "UTF-8")


def test_blank_lines_before_a_json_array(tmp_path, capsys):
    src = tmp_path / "in.json"
    src.write_text("\n" * 5000 + json.dumps(records(3), indent=2))
    rc, out, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "o.jsonl")
    assert rc == 0, err
    assert len(strict_json_lines(tmp_path / "o.jsonl")) == 3 and (tmp_path / "rejects.jsonl").read_text() == ""
    rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "l.jsonl", "--judge", "heuristic",
                     "--quiet")
    assert rc == 0, err
