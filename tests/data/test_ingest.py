import json

import pytest
from tests.cli_helpers import assert_one_error, cli, strict_json_lines

from mathlora.app.cli import main
from mathlora.data.config import IngestConfig
from mathlora.data.ingest import ingest_file, record_id
from mathlora.errors import MathloraError

GOOD = {"problem": "计算 1.23 + 2 等于多少？", "solution": "1.23 + 2 = 3.23", "type": "addition"}


def write_lines(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")


def read(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_every_bad_line_is_rejected_with_its_reason(tmp_path):
    src = tmp_path / "train.json"
    write_lines(src, [
        json.dumps(GOOD, ensure_ascii=False).encode(),
        b"not json",
        b"[1, 2]",
        b'{"solution": "x"}',
        b'{"problem": "  ", "solution": "x"}',
        b'{"problem": "p", "solution": 5}',
        b"\xff\xfe broken",
        json.dumps({**GOOD, "problem": "计算  1.23 +   2 等于多少？"}, ensure_ascii=False).encode(),  # whitespace dup
        json.dumps({"problem": "p2", "solution": "s2", "id": 7, "extra": [1]}).encode(),
    ])
    counts = ingest_file(IngestConfig(), src, tmp_path / "out.jsonl")
    assert counts["read"] == 9 and counts["kept"] == 2 and counts["duplicates"] == 1 and counts["rejected"] == 6
    rejects = read(tmp_path / "rejects.jsonl")
    assert [r["line"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    reasons = [r["reason"] for r in rejects]
    assert reasons[0].startswith("not JSON")
    assert reasons[1].startswith("not an object")
    assert reasons[2] == "missing problem"
    assert reasons[3] == "empty problem"
    assert reasons[4].startswith("solution is not a string")
    assert reasons[5].startswith("undecodable bytes")
    out = read(tmp_path / "out.jsonl")
    assert out[0]["id"] == record_id(GOOD["problem"], GOOD["solution"]) and out[0]["type"] == "addition"
    assert out[1]["source_id"] == 7 and out[1]["extra"] == [1]  # extra fields kept, input id preserved


def test_json_array_with_bom_and_keep_duplicates(tmp_path):
    src = tmp_path / "train.json"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps([GOOD, GOOD, {"problem": 1}], ensure_ascii=False).encode())
    counts = ingest_file(IngestConfig(keep_duplicates=True), src, tmp_path / "out.jsonl")
    assert counts == {**counts, "read": 3, "kept": 2, "duplicates": 0, "rejected": 1}
    ids = [r["id"] for r in read(tmp_path / "out.jsonl")]
    assert ids[1] == ids[0] + "-1"  # ids stay unique


def test_ids_are_stable_and_rerun_is_byte_identical(tmp_path):
    src = tmp_path / "train.jsonl"
    src.write_text("\n".join(json.dumps({"problem": f"p{i}", "solution": f"s{i}"}) for i in range(50)))
    ingest_file(IngestConfig(), src, tmp_path / "a.jsonl")
    ingest_file(IngestConfig(), src, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert record_id("a  b", "c") == record_id("a b", "c") != record_id("a b", "d")


def test_bad_paths_fail_cleanly(tmp_path, capsys):
    with pytest.raises(MathloraError, match="not found"):
        ingest_file(IngestConfig(), tmp_path / "missing.json", tmp_path / "o.jsonl")
    assert main(["ingest", "-i", str(tmp_path), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "is a directory" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"problem\": ")
    assert main(["ingest", "-i", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert not (tmp_path / "o.jsonl").exists()  # nothing half-written
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ingest_rejects_nan_and_out_of_range_numbers_and_writes_valid_json(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"problem": "a", "solution": "b", "x": 1e400}\n{"problem": "c", "solution": "d", "x": NaN}\n'
                   '{"problem": "e", "solution": "f", "x": -Infinity}\n{"problem": "g", "solution": "h", "x": 1.5}\n')
    rc, out, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "out.jsonl")
    assert rc == 0, err
    kept = strict_json_lines(tmp_path / "out.jsonl")
    assert [r["x"] for r in kept] == [1.5]
    reasons = [r["reason"] for r in strict_json_lines(tmp_path / "rejects.jsonl")]
    assert [r["line"] for r in strict_json_lines(tmp_path / "rejects.jsonl")] == [1, 2, 3]
    assert "1e400 is out of range" in reasons[0] and "NaN" in reasons[1] and "Infinity" in reasons[2]


def test_rejects_may_not_be_the_output(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"problem": "a", "solution": "b"}\nnot json\n')
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "o.jsonl", "--rejects", tmp_path / "o.jsonl")
    assert_one_error(rc, err, "--rejects", "output")
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "o.jsonl", "--rejects", src)
    assert_one_error(rc, err, "--rejects", "input")
    assert src.read_text().endswith("not json\n")


def test_records_made_only_of_invisible_characters_are_rejected(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"problem": "\u200b\u200d\ufeff", "solution": "1"}, {"problem": "1+1", "solution": "\u2060 \u200b"},
            {"problem": "1+\u200b1", "solution": "2"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    counts = ingest_file(IngestConfig(), src, tmp_path / "out.jsonl", rejects_path=tmp_path / "rejects.jsonl")
    assert counts["kept"] == 1 and counts["reject_reasons"] == {"empty problem": 1, "empty solution": 1}


def test_a_compressed_input_gets_a_hint(tmp_path, capsys):
    import gzip

    src = tmp_path / "train.jsonl.gz"
    src.write_bytes(gzip.compress(b'{"problem": "1+1", "solution": "2"}\n'))
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "records.jsonl")
    assert_one_error(rc, err, "gzip-compressed", "gunzip")
