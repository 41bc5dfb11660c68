"""One test per defect of issue 13 (reliability): each failed before its fix.

Numbers in the test names are the defect numbers of the issue.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from reliability_helpers import (SMALL, Server, assert_one_error, cli, completion, drip, error_lines, records,
                                 strict_json_lines, tiny_adapter, write_lines, write_tokens)
from tests.conftest import single_torch_thread
from tests.loopback import send_json

from mathlora.errors import MathloraError
from mathlora.runtime import Runtime

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK_MODE = 0o777 & ~_umask()


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


@pytest.fixture
def conversations(tmp_path, capsys) -> Path:
    src = write_lines(tmp_path / "records.jsonl", records(6))
    assert cli(capsys, "convert", "-i", src, "-o", tmp_path / "conv.json")[0] == 0
    return tmp_path / "conv.json"


# -- 1 (and 16: tokenize --output .; 19: folders follow the umask) --------------------------------------------

def test_01_tokenize_and_merge_never_delete_a_folder_they_did_not_create(tmp_path, capsys, conversations,
                                                                        monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("three years of work")
    tok = ["--model", "tiny-random-llama", "--seq-length", "256"]
    rc, _, err = cli(capsys, "tokenize", "-i", conversations, "-o", mine, *tok)
    assert_one_error(rc, err, "not empty", "--overwrite")
    rc, _, err = cli(capsys, "merge", "--model", "tiny-random-llama", "--adapter",
                     tiny_adapter(tmp_path / "adapter"), "--output", mine)
    assert_one_error(rc, err, "not empty", "--overwrite")
    assert (mine / "thesis.txt").read_text() == "three years of work"
    assert stat.S_IMODE(mine.stat().st_mode) == UMASK_MODE

    # a folder mathlora made is replaced on a rerun; created folders follow the umask (not 0700)
    out = tmp_path / "tokens"
    assert cli(capsys, "tokenize", "-i", conversations, "-o", out, *tok)[0] == 0
    assert cli(capsys, "tokenize", "-i", conversations, "-o", out, *tok)[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == UMASK_MODE
    merged = tmp_path / "merged"
    assert cli(capsys, "merge", "--model", "tiny-random-llama", "--adapter", tmp_path / "adapter",
               "--output", merged)[0] == 0
    assert stat.S_IMODE(merged.stat().st_mode) == UMASK_MODE
    # --overwrite replaces a user's folder when asked
    assert cli(capsys, "tokenize", "-i", conversations, "-o", mine, "--overwrite", *tok)[0] == 0
    assert not (mine / "thesis.txt").exists() and (mine / "tokens.parquet").is_file()

    # 16: `--output .` is refused, whatever is in the current folder
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep")
    monkeypatch.chdir(work)
    rc, _, err = cli(capsys, "tokenize", "-i", conversations, "-o", ".", "--overwrite", *tok)
    assert_one_error(rc, err, "current folder")
    assert (work / "notes.txt").read_text() == "keep"


# -- 2 -----------------------------------------------------------------------------------------------------------

def test_02_a_truncated_tokens_file_is_redone_and_the_finished_training_kept(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "train", *SMALL)[0] == 0
    adapter = (run / "train/adapter/adapter_model.safetensors").read_bytes()
    tokens = run / "tokens/tokens.parquet"
    good = tokens.read_bytes()
    tokens.write_bytes(good[: len(good) // 2])

    rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "train", *SMALL)
    assert rc == 0, err
    assert "tokenize: tokens/tokens.parquet is damaged" in out and "train: fresh, skipped" in out
    assert tokens.read_bytes() == good
    assert (run / "train/adapter/adapter_model.safetensors").read_bytes() == adapter

    # the manifest carries size and hash of each output: overwritten bytes (same size) are caught too
    record = json.loads((run / "manifest.json").read_text())["stages"]["tokenize"]["verify"]["tokens/tokens.parquet"]
    assert record["size"] == len(good) and len(record["sha256"]) == 64
    from mathlora.layout import RunLayout
    from mathlora.run_dir.manifest import Manifest

    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF
    tokens.write_bytes(bytes(damaged))
    assert "content differs" in Manifest(RunLayout(run)).stale_reason(
        "tokenize", json.loads((run / "manifest.json").read_text())["stages"]["tokenize"]["fingerprint"], [tokens])


# -- 3 -----------------------------------------------------------------------------------------------------------

def _train(tmp_path, out, **train):
    from mathlora.config import load_config
    from mathlora.runtime import Runtime
    from mathlora.train.trainer import train as run_train

    overrides = {"model": "tiny-random-llama", "seed": 3, "train.global_batch_size": 8, "train.micro_batch_size": 8,
                 "train.lr": 1e-2, "train.warmup_ratio": 0.0, "train.max_steps": 4, "train.save_steps": 2,
                 "train.gradient_checkpointing": False, **{f"train.{k}": v for k, v in train.items()}}
    tokens = tmp_path / "tokens"
    if not tokens.exists():
        write_tokens(tokens)
    cfg = load_config(None, overrides)
    return run_train(cfg.train, Runtime.resolve(), tokens, out, lora=cfg.lora,
                     seed=cfg.seed, progress=False)


def test_03_damaged_checkpoints_are_skipped_and_non_finite_weights_never_used(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "train"
    _train(tmp_path, out)
    reference = (out / "adapter/adapter_model.safetensors").read_bytes()
    step4 = out / "checkpoints/step-4"

    # overwritten bytes (same size, NaN patterns) in the newest checkpoint: resume falls back to step 2
    weights = step4 / "adapter_model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-64:] = b"\xff" * 64
    weights.write_bytes(bytes(raw))
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    capsys.readouterr()
    _train(tmp_path, out)
    err = capsys.readouterr().err
    assert "step-4 is damaged" in err and "falling back to step-2" in err
    assert (out / "adapter/adapter_model.safetensors").read_bytes() == reference
    assert (step4 / "checksum.json").is_file()  # the checkpoint was written again, checksum last

    # a truncated checkpoint: the same fallback, no traceback
    optimizer = step4 / "optimizer.safetensors"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    _train(tmp_path, out)
    assert "falling back to step-2" in capsys.readouterr().err
    assert (out / "adapter/adapter_model.safetensors").read_bytes() == reference

    # a NaN adapter is never merged nor scored
    nan = tmp_path / "nan_adapter"
    shutil.copytree(out / "adapter", nan)
    tensors = load_file(str(nan / "adapter_model.safetensors"))
    save_file({k: v * float("nan") for k, v in tensors.items()}, str(nan / "adapter_model.safetensors"))
    rc, _, err = cli(capsys, "merge", "--model", "tiny-random-llama", "--adapter", nan, "--output", tmp_path / "m")
    assert_one_error(rc, err, "non-finite")
    assert not (tmp_path / "m").exists()
    test = write_lines(tmp_path / "test.jsonl", records(2))
    rc, _, err = cli(capsys, "predict", "--model", "tiny-random-llama", "--adapter", nan, "--input", test,
                     "--output", tmp_path / "p.jsonl", "--no-progress")
    assert_one_error(rc, err, "non-finite")

    # a diverging run stops with a clear error instead of saving NaN weights
    with pytest.raises(MathloraError, match="not finite"):
        _train(tmp_path, tmp_path / "diverged", lr=3e37, max_grad_norm=None, max_steps=6)
    assert not (tmp_path / "diverged/adapter").exists()


# -- 4 -----------------------------------------------------------------------------------------------------------

def test_04_one_writer_per_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{"stages": {}}\n')
    fd = os.open(run / ".mathlora.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process holding the run
        os.write(fd, b"424242\n")
        rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)
        assert_one_error(rc, err, "in use", "PID 424242")
        assert "synth" not in out
        src = write_lines(tmp_path / "in.jsonl", records(3))
        rc, _, err = cli(capsys, "ingest", "-i", src, "-o", run / "records.jsonl")
        assert_one_error(rc, err, "PID 424242")
    finally:
        os.close(fd)
    assert cli(capsys, "ingest", "-i", tmp_path / "in.jsonl", "-o", run / "records.jsonl")[0] == 0


# -- 5 -----------------------------------------------------------------------------------------------------------

def test_05_an_overlong_prompt_never_enters_a_batch(tmp_path, monkeypatch):
    import mathlora.evaluate.generation as generation
    from mathlora.evaluate.config import EvalConfig
    from mathlora.evaluate.predict import predict_file

    shapes = []

    def spy(model, ids, mask, budgets, eos, min_new_tokens=0, calculator=None):
        shapes.append(tuple(ids.shape))  # never run the model on a huge batch, even before the fix
        return [generation.Decoded([], False) for _ in budgets]

    monkeypatch.setattr(generation, "decode_batch", spy)
    rows = records(7)
    rows.insert(3, {"id": "huge", "problem": "7 " * 50_000, "solution": "7"})
    src = write_lines(tmp_path / "test.jsonl", rows)
    cfg = EvalConfig(max_new_tokens=4, max_length=256, batch_size=8)
    summary = predict_file(cfg, Runtime.resolve(), "tiny-random-llama", None, src, tmp_path / "p.jsonl", template="alpaca",
                           progress=False)
    assert shapes and max(w for _, w in shapes) <= 256
    preds = {p["id"]: p for p in strict_json_lines(tmp_path / "p.jsonl")}
    assert "limit" in preds["huge"]["skipped"] and summary["skipped_prompt_too_long"] == 1

    # the other policy cuts it from the left instead; batches stay within the token budget
    shapes.clear()
    cfg = EvalConfig(max_new_tokens=4, max_length=256, batch_size=8, long_prompts="truncate_left", batch_tokens=600)
    predict_file(cfg, Runtime.resolve(), "tiny-random-llama", None, src, tmp_path / "p2.jsonl", template="alpaca", progress=False)
    assert all(rows * width <= 600 or rows == 1 for rows, width in shapes) and max(w for _, w in shapes) <= 256
    assert {p["id"]: p for p in strict_json_lines(tmp_path / "p2.jsonl")}["huge"]["prompt_truncated"]
    assert generation.plan_batches([100, 100, 10, 10], [5, 5, 5, 5], 4, 220) == [[0, 1], [2, 3]]


# -- 6 -----------------------------------------------------------------------------------------------------------

def test_06_huge_exponents_are_unparsable_in_bounded_time():
    from mathlora.evaluate.math_grading import grade_one, summarize
    from mathlora.evaluate.predict import prediction_line

    start = time.perf_counter()
    item = grade_one("x", "1e10000000", "The answer is 5")
    line = prediction_line({"id": "x", "problem": "p"}, "p", "1e10000000", scope="first_line",
                           generated_tokens=1, stopped=True)
    assert time.perf_counter() - start < 1.0
    assert item.status == "unparsable" and line["answer"] == "1e10000000"
    assert summarize([item])["unparsable_too_large"] == 1


# -- 7 -----------------------------------------------------------------------------------------------------------

def _dead_url() -> str:
    with Server(lambda h, b: send_json(h, 500, b"{}")) as server:
        url = server.base_url
    return url  # closed: connection refused


def test_07_label_failures_are_never_done(tmp_path, capsys):
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


# -- 8 -----------------------------------------------------------------------------------------------------------

def test_08_normalize_rounds_long_numbers_exactly_and_keeps_overlong_ones(tmp_path, capsys):
    huge = "9" * 1200 + ".125"
    src = write_lines(tmp_path / "in.jsonl", [{"id": "a", "problem": "x = 123456789012345678901234567.125",
                                               "solution": f"y = {huge}"}])
    rc, out, err = cli(capsys, "normalize", "-i", src, "-o", tmp_path / "out.jsonl")
    assert rc == 0, err
    row = strict_json_lines(tmp_path / "out.jsonl")[0]
    assert row["problem"] == "x = 123456789012345678901234567.13" and row["solution"] == f"y = {huge}"
    assert "numbers_kept_too_long 1" in out


# -- 9 -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["normalize", "convert", "label", "sample", "predict", "eval math", "eval squad"])
def test_09_invalid_utf8_is_one_error_naming_line_and_byte(tmp_path, capsys, command):
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


# -- 10, 11, 12 ----------------------------------------------------------------------------------------------------

def test_10_ingest_rejects_nan_and_out_of_range_numbers_and_writes_valid_json(tmp_path, capsys):
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


def test_11_rejects_may_not_be_the_output(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"problem": "a", "solution": "b"}\nnot json\n')
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "o.jsonl", "--rejects", tmp_path / "o.jsonl")
    assert_one_error(rc, err, "--rejects", "output")
    rc, _, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "o.jsonl", "--rejects", src)
    assert_one_error(rc, err, "--rejects", "input")
    assert src.read_text().endswith("not json\n")


def test_12_blank_lines_before_a_json_array(tmp_path, capsys):
    src = tmp_path / "in.json"
    src.write_text("\n" * 5000 + json.dumps(records(3), indent=2))
    rc, out, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "o.jsonl")
    assert rc == 0, err
    assert len(strict_json_lines(tmp_path / "o.jsonl")) == 3 and (tmp_path / "rejects.jsonl").read_text() == ""
    rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "l.jsonl", "--judge", "heuristic",
                     "--quiet")
    assert rc == 0, err


# -- 13, 14, 15 ----------------------------------------------------------------------------------------------------

def test_13_ratios_are_text_not_base_60(tmp_path):
    from mathlora.config import load_config

    assert load_config(None, ["sample.ratios=5:1"]).sample.ratios == "5:1"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sample: {total: 10, ratios: 5:1}\n")
    assert load_config(cfg).sample.ratios == "5:1"


def test_14_a_truncated_conversation_array_is_refused(tmp_path, capsys, conversations):
    lines = conversations.read_text(encoding="utf-8").splitlines()
    assert lines[-1] == "]"
    conversations.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # cut after a complete element
    rc, _, err = cli(capsys, "tokenize", "-i", conversations, "-o", tmp_path / "t", "--model", "tiny-random-llama")
    assert_one_error(rc, err, "truncated")
    assert not (tmp_path / "t").exists()


def test_15_non_ascii_digits_are_kept_as_written(tmp_path, capsys):
    text = "٣.١٤١٥٩ و ３.１４１５９ and 3.14159"
    src = write_lines(tmp_path / "in.jsonl", [{"id": "a", "problem": text, "solution": text}])
    assert cli(capsys, "normalize", "-i", src, "-o", tmp_path / "o.jsonl")[0] == 0
    row = strict_json_lines(tmp_path / "o.jsonl")[0]
    assert row["problem"] == row["solution"] == "٣.١٤١٥٩ و ３.１４１５９ and 3.14"


# -- 16 ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"[]", b"\x00\xff\xfe binary", b'{"stages": []}', "directory"])
def test_16_damaged_manifests(tmp_path, capsys, content):
    run = tmp_path / "run"
    run.mkdir()
    if content == "directory":
        (run / "manifest.json").mkdir()
        rc, _, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)
        assert_one_error(rc, err, "manifest.json is a directory")
        return
    (run / "manifest.json").write_bytes(content)
    rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)
    assert rc == 0 and "manifest.json is damaged" in err and not error_lines(err), err
    assert json.loads((run / "manifest.json").read_text())["stages"]["synth"]
    (run / "manifest.json").write_bytes(content)
    rc, _, err = cli(capsys, "report", run)
    assert_one_error(rc, err, "damaged")


def test_16_damaged_sqlite_cache_bad_port_and_symlinked_train(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", records(40))
    args = ["label", "--input", src, "--output", tmp_path / "out.jsonl", "--judge", "heuristic", "--quiet"]
    assert cli(capsys, *args)[0] == 0
    cache = tmp_path / "label_cache.sqlite"
    raw = bytearray(cache.read_bytes())
    assert len(raw) > 4096
    raw[4096:] = b"\xab" * (len(raw) - 4096)  # every page but the first: garbage
    cache.write_bytes(bytes(raw))
    rc, _, err = cli(capsys, *args)
    assert_one_error(rc, err, "label_cache.sqlite")

    rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "o.jsonl", "--judge", "openai",
                     "--model", "m", "--base-url", "http://127.0.0.1:99999/v1", "--max-retries", "0", "--quiet")
    assert_one_error(rc, err, "99999")

    run = tmp_path / "run"
    run.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.bin").write_bytes(b"1")
    (run / "train").symlink_to(elsewhere)
    rc, _, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)
    assert_one_error(rc, err, "symbolic link")
    assert (elsewhere / "precious.bin").read_bytes() == b"1"


# -- 17, 18 --------------------------------------------------------------------------------------------------------

def test_17_an_api_key_echoed_by_the_server_is_never_stored(tmp_path, capsys, monkeypatch):
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    def echo(handler, body):
        send_json(handler, 401, json.dumps({"error": f"invalid key: {handler.headers['Authorization']}"}).encode())

    src = write_lines(tmp_path / "in.jsonl", records(3))
    with Server(echo) as server:
        rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "out.jsonl", "--judge", "openai",
                         "--model", "m", "--base-url", server.base_url, "--quiet")
    assert_one_error(rc, err, "HTTP 401")
    assert secret not in err
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f
    assert "***" in (tmp_path / "label_failures.jsonl").read_text()


def test_18_timeout_bounds_the_whole_request(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", records(1))
    with Server(lambda h, b: drip(h, completion(3), 0.5)) as server:
        start = time.perf_counter()
        rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "out.jsonl", "--judge", "openai",
                         "--model", "m", "--base-url", server.base_url, "--timeout", "1", "--max-retries", "0",
                         "--quiet")
        elapsed = time.perf_counter() - start
    assert_one_error(rc, err, "timeout")
    assert elapsed < 4, elapsed


# -- 19 ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, needle", [("model=/no/such/model", "/no/such/model"),
                                              ("template=nope", "unknown template"),
                                              ("sample.ratios=1:4,9:1", "level 9"),
                                              ("label.judge=local", "label.model")])
def test_19_config_is_checked_before_the_first_stage(tmp_path, capsys, override, needle):
    extra = ["label.model=/no/such/judge"] if override == "label.judge=local" else []
    rc, out, err = cli(capsys, "run", "--no-progress", "-o", tmp_path / "run", *SMALL, override, *extra)
    assert_one_error(rc, err, needle)
    assert "[ 1/" not in out and not (tmp_path / "run/raw").exists()


def test_19_leftover_temp_files_are_cleaned_on_the_next_run(tmp_path, capsys):
    run = tmp_path / "run"
    (run / ".tokens.x1y2.tmp").mkdir(parents=True)
    (run / ".tokens.x1y2.tmp/tokens.parquet").write_bytes(b"partial")
    (run / ".records.jsonl.ab12.tmp").write_text("partial")
    (run / ".train.old.123").mkdir()
    assert cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)[0] == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".mathlora.lock"]
    assert stat.S_IMODE((run / "raw").stat().st_mode) == UMASK_MODE
