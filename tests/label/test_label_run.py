import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chat_stub import ChatStub, stub_records
from competition_style import competition_records
from tests.cli_helpers import (SMALL, Server, assert_one_error, cli, completion, records, strict_json_lines,
                               write_lines)
from tests.loopback import send_json

from mathlora.app.cli import main
from mathlora.errors import MathloraError
from mathlora.label.config import LabelConfig
from mathlora.label.heuristic import heuristic_difficulty
from mathlora.label.prompt import load_prompt
from mathlora.label.run import label_file
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.modeling.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]


def test_heuristic_labels_in_input_order_keeping_fields_then_reads_the_cache(tmp_path):
    records = competition_records(60, 4)
    records.append(dict(records[0]))  # a duplicate id is judged once, written twice
    records[1]["difficulty"] = 9  # an old label is replaced
    write_jsonl(tmp_path / "in.jsonl", records)
    first = label_file(LabelConfig(), None, tmp_path / "in.jsonl", tmp_path / "out.jsonl", base_model="x", progress=False)
    out = list(read_jsonl(tmp_path / "out.jsonl"))
    assert [r["id"] for r in out] == [r["id"] for r in records]
    for rec, row in zip(records, out):
        assert row["difficulty"] == heuristic_difficulty(rec["problem"], rec["solution"])
        assert row["difficulty_source"] == "heuristic:v2" and row["type"] == rec["type"]
        assert "difficulty_probs" not in row
    assert first["labeled"] == 60 and first["from_cache"] == 0 and first["failed"] == 0
    assert sum(first["distribution"].values()) == 61
    before = (tmp_path / "out.jsonl").read_bytes()
    second = label_file(LabelConfig(), None, tmp_path / "in.jsonl", tmp_path / "out.jsonl", base_model="x", progress=False)
    assert second["labeled"] == 0 and second["from_cache"] == 60
    assert (tmp_path / "out.jsonl").read_bytes() == before
    assert (tmp_path / "label_cache.sqlite").exists() and (tmp_path / "label_failures.jsonl").read_text() == ""


def test_local_judge_through_label_file_uses_the_base_model(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", competition_records(5, 2))
    summary = label_file(LabelConfig(judge="local", batch_size=2), Runtime(), tmp_path / "in.jsonl",
                         tmp_path / "out.jsonl", base_model="tiny-random-llama", progress=False)
    rows = list(read_jsonl(tmp_path / "out.jsonl"))
    assert summary["source"] == "local:tiny-random-llama" and len(rows) == 5
    for row in rows:
        assert len(row["difficulty_probs"]) == 6 and abs(sum(row["difficulty_probs"]) - 1) < 1e-5
        assert row["difficulty"] == max(range(6), key=row["difficulty_probs"].__getitem__)


@pytest.mark.parametrize("record, message", [
    ({"problem": "1 + 1"}, "has no id"),
    ({"id": "", "problem": "1 + 1"}, "has no id"),
    ({"id": "a", "solution": "2"}, "has no problem text"),
    ({"id": "a", "problem": "   "}, "has no problem text"),
    ({"id": "a", "problem": "1 + 1", "solution": 2}, "solution that is not text"),
])
def test_bad_records_stop_with_one_line_and_write_nothing(tmp_path, record, message):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "ok", "problem": "1 + 1"}, record])
    with pytest.raises(MathloraError, match=message):
        label_file(LabelConfig(), None, tmp_path / "in.jsonl", tmp_path / "out.jsonl", base_model="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys):
    assert main(["label", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert main(["label", "--input", str(tmp_path), "--output", str(tmp_path / "o.jsonl")]) == 2
    (tmp_path / "in.jsonl").write_text('{"id": "a", "problem": "1 + 1"}\n')
    assert main(["label", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                 "--judge", "local", "--prompt-file", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 3 and "Traceback" not in err
    assert "not found" in err and "is a directory" in err and "prompt file not found" in err


def test_cli_prints_counts_and_distribution(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", competition_records(20, 0))
    assert main(["label", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                 "--judge", "heuristic", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "labeled 20, from cache 0, failed 0" in out and "difficulty distribution  0:" in out


def test_prompt_file_replaces_the_rubric_and_changes_the_cache_key(tmp_path):
    custom = tmp_path / "rubric.txt"
    custom.write_text("Rate 0-5: {problem}\nSolution: {solution}\n", encoding="utf-8")
    prompt = load_prompt(str(custom))
    assert prompt.render("P", "S") == "Rate 0-5: P\nSolution: S\n"
    assert prompt.version.startswith("file-") and prompt.version != load_prompt(None).version
    (tmp_path / "bad.txt").write_text("no placeholder")
    with pytest.raises(MathloraError, match="placeholder"):
        load_prompt(str(tmp_path / "bad.txt"))


def _label_command(src, out, url, *extra):
    return [sys.executable, "-m", "mathlora", "label", "--input", str(src), "--output", str(out),
            "--judge", "openai", "--base-url", url, "--model", "stub", "--concurrency", "2", "--quiet",
            "label.endpoint.retry_base_delay=0.005", *extra]


def _cached_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return {row[0] for row in db.execute("SELECT record_id FROM labels")}
    except sqlite3.OperationalError:  # tables not created yet
        return set()


def test_sigkill_midway_then_restart_equals_an_uninterrupted_run(tmp_path):
    """The stub answers 20 requests, then holds the rest: the run is killed at a known point, with exactly the
    20 answered records committed to the cache (no clock involved)."""
    records = stub_records(80)
    src = tmp_path / "in.jsonl"
    write_jsonl(src, records)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with ChatStub() as stub:
        (tmp_path / "straight").mkdir()
        subprocess.run(_label_command(src, tmp_path / "straight" / "out.jsonl", stub.base_url), env=env, check=True,
                       capture_output=True, timeout=120)
        assert set(stub.counts.values()) == {1}
        stub.counts.clear()

    with ChatStub(block_after=20) as stub:
        (tmp_path / "killed").mkdir()
        out = tmp_path / "killed" / "out.jsonl"
        cache = tmp_path / "killed" / "label_cache.sqlite"
        proc = subprocess.Popen(_label_command(src, out, stub.base_url), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # 20 answers delivered and the next request held: wait until the client has committed all 20
            assert stub.blocked.wait(timeout=60), "the labeler never got past 20 answers"
            deadline = time.monotonic() + 60
            while len(_cached_ids(cache)) < 20 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
        finished = _cached_ids(cache)
        assert len(finished) == 20
        assert not out.exists()
        asked_before = dict(stub.counts)
        stub.release()

        done = subprocess.run(_label_command(src, out, stub.base_url), env=env, capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"from cache {len(finished)}" in done.stdout
    assert out.read_bytes() == (tmp_path / "straight" / "out.jsonl").read_bytes()
    for rid in finished:  # a finished record is never asked again
        assert stub.counts[rid] == asked_before[rid] == 1
    assert sorted(stub.counts) == sorted(r["id"] for r in records)
    assert json.loads(out.read_text().splitlines()[0])["id"] == "r0000"


def _dead_url() -> str:
    with Server(lambda h, b: send_json(h, 500, b"{}")) as server:
        url = server.base_url
    return url  # closed: connection refused


def test_label_failures_are_never_done(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", records(4))
    judge = ["--judge", "openai", "--model", "m", "--max-retries", "0", "--quiet"]
    rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "out.jsonl", "--base-url", _dead_url(),
                     *judge)
    assert_one_error(rc, err, "4 of 4 records failed", "connection error")
    assert (tmp_path / "out.jsonl").read_text() == "" and len(strict_json_lines(tmp_path / "label_failures.jsonl")) == 4
    with Server(lambda h, b: send_json(h, 400, b'{"error": "bad request"}')) as server:
        rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "other/o2.jsonl", "--base-url",
                         server.base_url, *judge)
    assert_one_error(rc, err, "HTTP 400")

    # inside `mathlora run`: the stage is not done, the error says why, the next run asks again
    run = tmp_path / "run"
    opts = ["--stop-after", "label", *SMALL, "label.judge=openai", "label.model=m", "label.endpoint.max_retries=0"]
    rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, *opts, f"label.endpoint.base_url={_dead_url()}")
    assert_one_error(rc, err, "records failed", "connection error", "next `mathlora run` asks them again")
    with Server(lambda h, b: send_json(h, 200, completion(2))) as server:
        rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, *opts, f"label.endpoint.base_url={server.base_url}")
    assert rc == 0, err
    assert "label: done" in out and "fresh, skipped" not in out.split("label")[-1]
    assert all(r["difficulty"] == 2 for r in strict_json_lines(run / "labeled.jsonl"))
