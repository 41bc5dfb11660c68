"""data.normalize: long numbers rounded exactly, the rest kept byte for byte."""

from __future__ import annotations

import pytest
from tests.cli_helpers import cli, strict_json_lines, write_lines
from tests.conftest import single_torch_thread


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def test_normalize_rounds_long_numbers_exactly_and_keeps_overlong_ones(tmp_path, capsys):
    huge = "9" * 1200 + ".125"
    src = write_lines(tmp_path / "in.jsonl", [{"id": "a", "problem": "x = 123456789012345678901234567.125",
                                               "solution": f"y = {huge}"}])
    rc, out, err = cli(capsys, "normalize", "-i", src, "-o", tmp_path / "out.jsonl")
    assert rc == 0, err
    row = strict_json_lines(tmp_path / "out.jsonl")[0]
    assert row["problem"] == "x = 123456789012345678901234567.13" and row["solution"] == f"y = {huge}"
    assert "numbers_kept_too_long 1" in out


def test_non_ascii_digits_are_kept_as_written(tmp_path, capsys):
    text = "٣.١٤١٥٩ و ３.１４１５９ and 3.14159"
    src = write_lines(tmp_path / "in.jsonl", [{"id": "a", "problem": text, "solution": text}])
    assert cli(capsys, "normalize", "-i", src, "-o", tmp_path / "o.jsonl")[0] == 0
    row = strict_json_lines(tmp_path / "o.jsonl")[0]
    assert row["problem"] == row["solution"] == "٣.١٤١٥٩ و ３.１４１５９ and 3.14"
