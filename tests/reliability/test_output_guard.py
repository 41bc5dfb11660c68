"""Issue 31 H1: no command writes over an existing file it did not make, or over any of its inputs (compared
by resolved path: ``./X`` and a symbolic link to X are X), without ``--overwrite``; one guard
(``run_dir.guards.guard_outputs``) for every command that writes a file."""

from __future__ import annotations

import json
import os

import pytest

from tests.cli_helpers import assert_one_error, cli

RAW = "".join(json.dumps({"problem": f"What is {i} + {i}?", "solution": f"answer: {2 * i}"}) + "\n"
              for i in range(1, 6))


@pytest.fixture()
def raw(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text(RAW, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("spelling", ["train.jsonl", "./train.jsonl", "link.jsonl", "{abs}"])
def test_ingest_refuses_its_own_input_as_output(raw, capsys, spelling):
    os.symlink("train.jsonl", raw / "link.jsonl")
    out = spelling.format(abs=raw / "train.jsonl")
    for extra in ([], ["--overwrite"]):
        rc, _, err = cli(capsys, "ingest", "-i", "train.jsonl", "-o", out, *extra)
        assert_one_error(rc, err, "is the --input")
    assert (raw / "train.jsonl").read_text(encoding="utf-8") == RAW


def test_convert_refuses_its_own_input_as_output(raw, capsys):
    assert cli(capsys, "ingest", "-i", "train.jsonl", "-o", "records.jsonl")[0] == 0
    before = (raw / "records.jsonl").read_bytes()
    rc, _, err = cli(capsys, "convert", "-i", "records.jsonl", "-o", "./records.jsonl", "--overwrite")
    assert_one_error(rc, err, "is the --input")
    assert (raw / "records.jsonl").read_bytes() == before


@pytest.mark.parametrize("args", [["ingest", "-i", "train.jsonl", "-o", "records.jsonl", "--rejects", "notes.txt"],
                                  ["ingest", "-i", "train.jsonl", "-o", "notes.txt"],
                                  ["normalize", "-i", "train.jsonl", "-o", "notes.txt"]])
def test_an_unrelated_existing_file_is_not_replaced(raw, capsys, args):
    rc, _, err = cli(capsys, *args)
    assert_one_error(rc, err, "notes.txt", "already exists", "--overwrite")
    assert (raw / "notes.txt").read_text(encoding="utf-8") == "my notes\n"
    assert not (raw / "records.jsonl").exists()


def test_a_second_ingest_keeps_the_first_ones_rejects(raw, capsys):
    (raw / "other.jsonl").write_text(RAW + "not json\n", encoding="utf-8")
    assert cli(capsys, "ingest", "-i", "other.jsonl", "-o", "a.jsonl")[0] == 0
    first = (raw / "rejects.jsonl").read_bytes()
    assert first
    rc, _, err = cli(capsys, "ingest", "-i", "train.jsonl", "-o", "b.jsonl")
    assert_one_error(rc, err, "rejects.jsonl", "already exists")
    assert (raw / "rejects.jsonl").read_bytes() == first
    assert cli(capsys, "ingest", "-i", "train.jsonl", "-o", "b.jsonl", "--rejects", "b_rejects.jsonl")[0] == 0


def test_overwrite_replaces_an_output_but_never_an_input(raw, capsys):
    rc, _, err = cli(capsys, "normalize", "-i", "train.jsonl", "-o", "notes.txt", "--overwrite")
    assert rc == 0, err
    assert (raw / "notes.txt").read_text(encoding="utf-8") != "my notes\n"


def test_every_file_writing_command_has_the_one_overwrite_flag():
    from mathlora.app.cli import build_parser

    parser = build_parser()
    for argv in (["ingest"], ["normalize"], ["convert"], ["sample"], ["rewrite"], ["tokenize"], ["label"],
                 ["predict"], ["synth"], ["merge"]):
        help_text = _help(parser, argv)
        assert "--overwrite" in help_text, argv


def _help(parser, argv) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        parser.parse_args([*argv, "--help"])
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["fifo", "devnull"])
def test_a_fifo_or_dev_null_input_says_what_it_is(tmp_path, capsys, kind):
    """Issue 31 low: a FIFO or /dev/null given to ingest is named as such, not "not found"."""
    if kind == "fifo":
        src = tmp_path / "pipe"
        os.mkfifo(src)
        needle = "named pipe"
    else:
        src, needle = "/dev/null", "a device"
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "r.jsonl")
    line = assert_one_error(rc, err, needle)
    assert "not found" not in line
