"""The same hostile files through every command that reads user files, in-process.

Every call ends with rc 0 (the file was usable, or its bad entries became rejects with a reason) or rc 2
with exactly one ``error:`` line; never a traceback, and whatever JSON is written is valid JSON.
"""

from __future__ import annotations

import codecs
import json
import random
from pathlib import Path

import pytest
from tests.cli_helpers import cli, error_lines

GOOD = [{"id": f"g{i}", "problem": f"What is {i}.12345 + 1?", "solution": f"{i}.12345 + 1 = {i + 1}.12345",
         "difficulty": 1 + i % 4, "type": "addsub", "completion": f"{i + 1}.12", "gold": f"= {i + 1}.12345",
         "prediction": "x"} for i in range(3)]
LINE = json.dumps(GOOD[0], ensure_ascii=False)
LINES = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in GOOD)


def _nested(depth: int) -> str:
    return '{"id": "n", "problem": "p", "solution": "s", "x": ' + "[" * depth + "]" * depth + "}\n"


# name -> bytes (or "dir" / "missing"); ingest's documented outcome: ("ok", kept), ("reject", reason) or
# ("error", text of the error line)
FILES: dict[str, tuple[bytes | str, tuple]] = {
    "invalid_utf8": ((LINE + "\n").encode() + b'{"problem": "\xff\xfe", "solution": "2"}\n', ("reject", "not UTF-8")),
    "latin1": ('{"problem": "café", "solution": "2"}\n'.encode("latin-1"), ("reject", "not UTF-8")),
    "utf16": (codecs.BOM_UTF16_LE + LINES.encode("utf-16-le"), ("reject", "not UTF-8")),
    "empty": (b"", ("error", "no records")),
    "blank_lines": (b"\n\n   \n\t\n", ("error", "no records")),
    "binary": (bytes(random.Random(0).randrange(256) for _ in range(3000)), ("reject", "")),
    "nul_bytes": (b'{"problem": "a\x00b", "solution": "c"}\n', ("reject", "not JSON")),
    "truncated_array": (b'[{"problem": "1+1", "solution": "2"}, {"problem": ', ("error", "not valid JSON")),
    "truncated_line": ((LINE[:40] + "\n").encode(), ("reject", "not JSON")),
    "nan": ((LINE[:-1] + ', "x": NaN}\n').encode(), ("reject", "NaN")),
    "infinity": ((LINE[:-1] + ', "x": -Infinity}\n').encode(), ("reject", "Infinity")),
    "huge_float": ((LINE[:-1] + ', "x": 1e400}\n').encode(), ("reject", "out of range")),
    "tiny_float": ((LINE[:-1] + ', "x": 1e-400}\n').encode(), ("reject", "out of range")),
    "huge_int": ((LINE[:-1] + ', "x": 1' + "0" * 5000 + "}\n").encode(), ("reject", "not JSON")),
    "huge_numbers_in_text": (json.dumps({"id": "h", "problem": "1e10000000 and 123456789012345678901234567.125",
                                         "solution": "= 1e10000000", "completion": "1e10000000", "gold": "1e99999",
                                         "difficulty": 1}).encode() + b"\n", ("ok", 1)),
    "wrong_types": (b'{"problem": 5, "solution": ["x"], "id": 3, "difficulty": "hard"}\n', ("reject", "not a string")),
    "nulls": (b'{"problem": null, "solution": null, "id": null, "difficulty": null}\n', ("reject", "not a string")),
    "not_objects": (b'"text"\n[1, 2]\n42\nnull\n', ("reject", "not an object")),
    "array_of_non_objects": (b"[1, 2, 3]", ("reject", "not an object")),
    "top_level_object": (json.dumps(GOOD[0], indent=2).encode(), ("reject", "not JSON")),
    "trailing_garbage": (json.dumps(GOOD).encode() + b" xyz", ("error", "not valid JSON")),
    "bom": (codecs.BOM_UTF8 + LINES.encode(), ("ok", 3)),
    "bom_array": (codecs.BOM_UTF8 + json.dumps(GOOD).encode(), ("ok", 3)),
    "crlf": (LINES.replace("\n", "\r\n").encode(), ("ok", 3)),
    "cr_only": (LINES.replace("\n", "\r").encode(), ("reject", "not JSON")),
    "blank_before_array": (b"\n" * 300 + b"  \t\n" + json.dumps(GOOD, indent=1).encode(), ("ok", 3)),
    "empty_array": (b"  [ ]  ", ("error", "no records")),
    "deep_nesting": (_nested(100_000).encode(), ("reject", "nested too deeply")),
    "moderate_nesting": (_nested(500).encode(), ("ok", 1)),
    "lone_surrogate": (b'{"problem": "\\ud800", "solution": "x"}\n', ("reject", "surrogate")),
    "long_line": (json.dumps({"id": "l", "problem": "7 " * 200_000, "solution": "7", "difficulty": 1,
                              "completion": "7", "gold": "7"}).encode() + b"\n", ("ok", 1)),
    "duplicate_keys": (b'{"problem": "a", "problem": "b", "solution": "c"}\n', ("ok", 1)),
    "directory": ("dir", ("error", "directory")),
    "missing": ("missing", ("error", "not found")),
}

COMMANDS = ["ingest", "normalize", "rewrite", "convert", "tokenize", "label", "sample", "predict", "eval math", "eval squad"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name, (content, _) in FILES.items():
        path = root / name
        if content == "dir":
            path.mkdir()
        elif content != "missing":
            path.write_bytes(content)
    (root / "squad.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [
        {"id": f"g{i}", "question": "q", "answers": [{"text": "x"}]} for i in range(3)]}]}]}))
    return root


def _args(command: str, src: Path, out: Path, squad: Path) -> list:
    return {
        "ingest": ["ingest", "-i", src, "-o", out / "records.jsonl"],
        "normalize": ["normalize", "-i", src, "-o", out / "n.jsonl"],
        "rewrite": ["rewrite", "-i", src, "-o", out / "r.jsonl", "--solution-style", "calculator"],
        "convert": ["convert", "-i", src, "-o", out / "c.json"],
        "tokenize": ["tokenize", "-i", src, "-o", out / "tokens", "--model", "tiny-random-llama", "--seq-length", "64"],
        "label": ["label", "--input", src, "--output", out / "l.jsonl", "--judge", "heuristic", "--quiet"],
        "sample": ["sample", "--input", src, "--output", out / "s.jsonl", "--total", "1"],
        "predict": ["predict", "--model", "tiny-random-llama", "--input", src, "--output", out / "p.jsonl",
                    "--max-new-tokens", "1", "--max-length", "64", "--no-progress"],
        "eval math": ["eval", "math", "--predictions", src, "--output", out / "m.json"],
        "eval squad": ["eval", "squad", "--data", squad, "--predictions", src, "--output", out / "sq.json"],
    }[command]


def _valid_json_everywhere(folder: Path) -> None:
    def refuse(name):
        raise AssertionError(f"{name} written in {folder}")

    for f in folder.rglob("*"):
        if f.suffix in (".json", ".jsonl") and f.is_file():
            text = f.read_text(encoding="utf-8")
            if f.suffix == ".json" and text.strip():
                json.loads(text, parse_constant=refuse)
            else:
                for line in text.splitlines():
                    if line.strip():
                        json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize("command", COMMANDS)
def test_hostile_files_never_give_a_traceback(hostile, tmp_path, capsys, command):
    import torch

    torch.set_num_threads(1)
    problems = []
    for name in FILES:
        out = tmp_path / name
        out.mkdir()
        try:
            rc, stdout, err = cli(capsys, *_args(command, hostile / name, out, hostile / "squad.json"))
        except BaseException as e:  # noqa: BLE001 - a traceback is the failure under test
            problems.append(f"{name}: raised {type(e).__name__}: {str(e)[:200]}")
            continue
        lines = error_lines(err)
        if "Traceback" in err or rc not in (0, 2) or (rc == 2) != (len(lines) == 1) or len(lines) > 1:
            problems.append(f"{name}: rc {rc}, stderr {err[-300:]!r}")
            continue
        try:
            _valid_json_everywhere(out)
        except (AssertionError, ValueError) as e:
            problems.append(f"{name}: invalid JSON written: {e}")
        if command == "ingest":
            kind, detail = FILES[name][1]
            if kind == "error" and not (rc == 2 and detail in lines[0]):
                problems.append(f"{name}: expected an error with {detail!r}, got rc {rc} {err[-200:]!r}")
            elif kind == "ok" and not (rc == 0 and len((out / "records.jsonl").read_text().splitlines()) == detail):
                problems.append(f"{name}: expected {detail} records kept, got rc {rc} {err[-200:]!r}")
            elif kind == "reject":
                # a file with no usable record is one error line at ingest; its rejects are written either way
                rejects = (out / "rejects.jsonl").read_text().splitlines() if (out / "rejects.jsonl").exists() else []
                reasons = [json.loads(x)["reason"] for x in rejects]
                if rc == 2 and "no usable record" not in lines[0]:
                    problems.append(f"{name}: expected rejects or 'no usable record', got {lines[0]!r}")
                elif not reasons or not all(r for r in reasons) or not any(detail in r for r in reasons):
                    problems.append(f"{name}: expected a reject with {detail!r}, got rc {rc} {reasons[:3]}")
    assert not problems, "\n".join(problems)
