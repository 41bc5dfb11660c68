"""End to end: `mathlora run` on the tiny model with a small config, then a rerun that skips everything."""

import json
from tests.cli_helpers import assert_one_error, cli, records, write_lines

from mathlora.app.cli import main
from mathlora.run_dir.layout import RunLayout

SMALL = ["model=tiny-random-llama", "label.judge=heuristic", "synth.count=160", "synth.test_count=16",
         "synth.squad_paragraphs=4", "sample.total=64", "train.max_steps=4", "train.global_batch_size=8",
         "train.micro_batch_size=4", "train.save_steps=2", "eval.max_new_tokens=6", "eval.batch_size=8",
         "tokenize.seq_length=320"]


def test_run_end_to_end_then_rerun_skips_fresh_stages(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "--no-progress", "--run", str(run), *SMALL]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"report: {run / 'report.html'} | math accuracy ") and "retention" in last
    manifest = json.loads((run / "manifest.json").read_text())
    # the embedded config trains on worked solutions with calculator annotations, scored with and without it
    assert manifest["config"]["solution_style"] == "calculator" and "with the calculator" in last
    assert manifest["stages"]["rewrite"]["counts"]["rewritten"] > 0
    assert "<<" in (run / "rewritten.jsonl").read_text(encoding="utf-8")
    nocalc = json.loads((run / "eval/tuned/math_nocalc.json").read_text())
    assert nocalc["count"] == 16 and nocalc["scope"] == "final" and "comparison" in nocalc
    assert set(manifest["stages"]) >= {"synth", "ingest", "label", "sample", "normalize", "rewrite", "convert", "tokenize",
                                       "eval_base_math", "train", "merge", "eval_tuned_math", "eval_tuned_squad",
                                       "report"}
    assert manifest["stages"]["sample"]["counts"]["totals"]["drawn"] == 64
    for name in ("report.html", "report.md", "merged/config.json", "train/adapter/adapter_config.json",
                 "eval/tuned/math.json", "eval/tuned/squad.json", "tokens/tokens.parquet", "conversations.json"):
        assert (run / name).exists(), name
    lay = RunLayout(run)  # every artifact the layout names is where it says (raw/: synth made the data)
    for path in (lay.config, lay.manifest, lay.raw_train, lay.raw_test, lay.raw_squad, lay.records, lay.rejects,
                 lay.test_records, lay.test_rejects, lay.labeled, lay.label_cache, lay.label_failures, lay.sampled,
                 lay.sample_table, lay.normalized, lay.rewritten, lay.rewrite_report, lay.conversations,
                 lay.tokens_parquet, lay.tokens_stats, lay.tokens_rejects, lay.train_checkpoints, lay.train_adapter,
                 lay.train_metrics, lay.train_tensorboard, lay.train_summary, lay.merged_config, lay.report_html,
                 lay.report_md, lay.plots,
                 *[p for w in ("base", "tuned") for p in (*lay.eval(w).math_files(), lay.eval(w).math_nocalc,
                                                          lay.eval(w).squad, lay.eval(w).squad_predictions)]):
        assert path.exists(), path
    stats = json.loads(lay.tokens_stats.read_text())
    assert (stats["model"], stats["seq_length"]) == ("tiny-random-llama", 320)  # what train reads
    report = (run / "report.md").read_text(encoding="utf-8")
    for section in ("Data funnel", "Difficulty and sampling", "Training", "Math accuracy", "Retention"):
        assert section in report
    tuned = json.loads((run / "eval/tuned/math.json").read_text())
    assert tuned["count"] == 16 and "comparison" in tuned
    squad = json.loads((run / "eval/tuned/squad.json").read_text())
    assert "retention" in squad

    stamps = {k: v["finished_at"] for k, v in manifest["stages"].items()}
    assert main(["run", "--no-progress", "--run", str(run), *SMALL]) == 0
    out = capsys.readouterr().out
    assert out.count("fresh, skipped") == len(stamps)
    assert {k: v["finished_at"] for k, v in json.loads((run / "manifest.json").read_text())["stages"].items()} == stamps

    # a changed setting reruns only what depends on it; settings that cannot change the trained numbers
    # (logging, checkpoint cadence, micro-batching) keep train/ (the trainer's own "same run" rule)
    adapter = (run / "train/adapter/adapter_model.safetensors").stat().st_mtime_ns
    assert main(["run", "--no-progress", "--run", str(run), *SMALL, "eval.atol=0.5", "train.log_every=3",
                 "train.save_steps=3", "train.micro_batch_size=2"]) == 0
    out = capsys.readouterr().out
    assert "tokenize: fresh, skipped" in out and "train: fresh, skipped" in out and "merge: fresh, skipped" in out
    assert "eval_base_math: done" in out
    assert (run / "train/adapter/adapter_model.safetensors").stat().st_mtime_ns == adapter
    # a result-changing one never deletes the finished training: one line names what changed and the choices
    assert main(["run", "--no-progress", "--run", str(run), *SMALL, "eval.atol=0.5", "train.lr=0.5",
                 "train.warmup_ratio=0.2", "--stop-after", "train"]) == 2
    err = capsys.readouterr().err
    config_line, *rest = err.strip().splitlines()  # run says which config first, then one line says why it stops
    assert config_line.startswith("config: demo + overrides;") and len(rest) == 1
    assert "changed: train.lr, train.warmup_ratio" in rest[0]
    assert "--force" in err and "--run" in err
    assert (run / "train/adapter/adapter_model.safetensors").stat().st_mtime_ns == adapter
    # so is a changed data setting (issue 31 M7): refused before any stage writes, naming it (not the tokens
    # the finished adapter was trained on replaced and the folder left mixed)
    tokens = lay.tokens_parquet.stat().st_mtime_ns
    assert main(["run", "--no-progress", "--run", str(run), *SMALL, "synth.count=70", "sample.total=20"]) == 2
    err = capsys.readouterr().err
    assert "changed: synth.count" in err and "sample.total" in err and "--force" in err, err
    assert lay.tokens_parquet.stat().st_mtime_ns == tokens
    assert (run / "train/adapter/adapter_model.safetensors").stat().st_mtime_ns == adapter
    assert main(["report", "--run", str(run)]) == 0
    assert "warning" not in capsys.readouterr().err  # everything belongs together
    # --force with --stop-after before train leaves the folder mixed (new tokens, old adapter): report says so
    assert main(["run", "--no-progress", "--run", str(run), *SMALL, "synth.count=70", "--force",
                 "--stop-after", "tokenize"]) == 0
    capsys.readouterr()
    assert main(["report", "--run", str(run)]) == 0
    err = capsys.readouterr().err
    assert "tokens/tokens.parquet is not the tokens train/adapter was trained on" in err, err
    # a training that would start from its own adapter is refused before --force clears the folder
    assert main(["run", "--no-progress", "--run", str(run), *SMALL, "eval.atol=0.5", "train.lr=0.5",
                 f"lora.init_from={run / 'train' / 'adapter'}", "--force", "--stop-after", "train"]) == 2
    assert "lies in the training's output folder" in capsys.readouterr().err
    assert (run / "train/adapter/adapter_model.safetensors").stat().st_mtime_ns == adapter
    # --force retrains in place
    assert main(["run", "--no-progress", "--run", str(run), *SMALL, "eval.atol=0.5", "train.lr=0.5", "--force",
                 "--stop-after", "train"]) == 0
    assert "train: done" in capsys.readouterr().out


def test_run_reports_bad_config_cleanly(tmp_path, capsys):
    assert main(["run", "--run", str(tmp_path / "r"), "train.lr=abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config error") and "train.lr" in err
    assert main(["run", "--run", str(tmp_path / "r"), "train.nope=1"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert main(["run", "--run", str(tmp_path / "r"), "data.train=/does/not/exist.json"]) == 2
    assert "data.train file not found" in capsys.readouterr().err


def test_run_grades_with_the_configured_answer_scope_and_wrong_samples(tmp_path):
    """eval.answer_scope and eval.wrong_samples reach the grading in `mathlora run`, not only its fingerprint."""
    run = tmp_path / "run"
    args = ["run", "--no-progress", "--run", str(run), "--stop-after", "eval_base_math", *SMALL,
            "eval.answer_scope=full", "eval.wrong_samples=1"]
    assert main(args) == 0
    report = json.loads((run / "eval/base/math.json").read_text())
    assert report["scope"] == "full"
    assert report["count"] - report["correct"] > 1 and len(report["wrong_samples"]) == 1


def test_damaged_sqlite_cache_bad_port_and_symlinked_train(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", records(40))
    args = ["label", "--input", src, "--output", tmp_path / "out.jsonl", "--judge", "heuristic", "--quiet"]
    assert cli(capsys, *args)[0] == 0
    cache = tmp_path / "label_cache.sqlite"
    raw = bytearray(cache.read_bytes())
    assert len(raw) > 4096
    raw[4096:] = b"\xab" * (len(raw) - 4096)  # every page but the first: garbage
    cache.write_bytes(bytes(raw))
    rc, _, err = cli(capsys, *args)  # the output exists: the guard speaks first (issue 31 H1)
    assert_one_error(rc, err, "out.jsonl", "--overwrite")
    rc, _, err = cli(capsys, *args, "--overwrite")
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
    rc, _, err = cli(capsys, "run", "--no-progress", "--run", run, "--stop-after", "synth", *SMALL)
    assert_one_error(rc, err, "symbolic link")
    assert (elsewhere / "precious.bin").read_bytes() == b"1"


# -- tracking: run.log, the manifest's environment, the scores in the trackers ---------------------------------

def test_run_log_gets_every_stage_line_per_invocation_and_the_manifest_the_environment(tmp_path, capsys):
    import re

    import peft
    import torch
    import transformers

    run = tmp_path / "run"
    assert main(["run", "--no-progress", "--run", str(run), "--stop-after", "ingest", *SMALL]) == 0
    captured = capsys.readouterr()
    printed = captured.out.splitlines()
    log = (run / "run.log").read_text(encoding="utf-8").splitlines()
    assert re.fullmatch(r"=== \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ mathlora run --stop-after ingest \(.+\): .+ \(pid \d+\) ===",
                        log[0])
    # the config line (printed on stderr before the log opens), what run printed, in order (stderr's lines too,
    # none here), then how it ended
    config_line = captured.err.splitlines()[0]
    assert config_line.startswith("config: ") and "calculator on" in config_line
    assert log[1:] == [config_line] + printed[:-1] + ["stopped after ingest as asked"]
    assert any(line.startswith("[ 1/") and "synth: done in" in line for line in log)
    manifest = json.loads((run / "manifest.json").read_text())
    versions = manifest["versions"]
    assert (versions["torch"], versions["transformers"], versions["peft"]) == (
        torch.__version__, transformers.__version__, peft.__version__)
    assert versions["mathlora"] == manifest["mathlora_version"] and versions["python"] == manifest["python"]
    assert manifest["runtime"] == {"device": "cpu", "precision": "fp32", "precision_auto": False,
                                   "deterministic": False}

    # a rerun appends (its stages fresh: the environment is outside every fingerprint), an error ends its entry
    assert main(["run", "--no-progress", "--run", str(run), "--stop-after", "ingest", *SMALL]) == 0
    assert capsys.readouterr().out.count("fresh, skipped") == 2
    assert main(["run", "--no-progress", "--run", str(run), *SMALL, "data.test=/does/not/exist.json"]) == 2
    capsys.readouterr()
    log = (run / "run.log").read_text(encoding="utf-8").splitlines()
    assert [line for line in log if line.startswith("=== ")] == [log[0], log[len(printed) + 3], log[-3]]
    assert log[1:len(printed) + 3] == [config_line] + printed[:-1] + ["stopped after ingest as asked", ""]
    assert log[len(printed) + 4].startswith("config: ") and log[-2].startswith("config: ")
    assert "synth: fresh, skipped" in log[len(printed) + 6]
    assert log[-1].startswith("error: data.test file not found")  # the config check, before any stage


def test_scores_go_to_the_trackers_once_at_the_last_training_step(tmp_path):
    from tests.modeling.test_tracking import tensorboard_scalars

    from mathlora.app.config import load_config
    from mathlora.app.pipeline import Pipeline

    run = tmp_path / "run"
    pipeline = Pipeline(load_config(None, {"run_dir": str(run), "train.report_to": ["tensorboard"]}))
    assert pipeline.track_scores() == []  # no training folder yet: nothing to log into
    lay = RunLayout(run)
    lay.train.mkdir()
    (lay.train / "summary.json").write_text(json.dumps({"steps": 60}))
    for which, acc, nocalc, f1 in (("base", 0.25, 0.125, 12.5), ("tuned", 0.75, 0.375, 20.0)):
        ev = lay.eval(which)
        ev.root.mkdir(parents=True)
        ev.math.write_text(json.dumps({"accuracy": acc, "count": 8, "correct": int(8 * acc),
                                       "per_type": {"mass": {"accuracy": acc, "count": 8, "correct": int(8 * acc)}}}))
        ev.math_nocalc.write_text(json.dumps({"accuracy": nocalc, "count": 8, "per_type": {}}))
        retention = {"retention": {"passed": True, "keep": 0.9, "base_f1": 12.5, "f1": 20.0, "base_em": 0.0,
                                   "em": 0.0}} if which == "tuned" else {}
        ev.squad.write_text(json.dumps({"f1": f1, "em": 0.0, "count": 4, **retention}))
    lay.checkpoint_scores.parent.mkdir(parents=True)  # eval.checkpoints: each checkpoint at its own step
    lay.checkpoint_scores.write_text(json.dumps({"checkpoints": [
        {"step": 40, "accuracy": 0.5, "correct": 4, "count": 8, "accuracy_nocalc": 0.25},
        {"step": 20, "accuracy": 0.375, "correct": 3, "count": 8}]}))
    assert pipeline.track_scores() == ["tensorboard"]
    assert pipeline.track_scores() == []  # a rerun with the same scores logs nothing
    scalars = tensorboard_scalars(lay.train_tensorboard)
    assert scalars == {
        "eval/base/math/accuracy": [(60, 0.25)], "eval/base/math_by_type/mass": [(60, 0.25)],
        "eval/base/math_nocalc/accuracy": [(60, 0.125)], "eval/base/squad/f1": [(60, 12.5)],
        "eval/base/squad/em": [(60, 0.0)], "eval/tuned/math/accuracy": [(60, 0.75)],
        "eval/tuned/math_by_type/mass": [(60, 0.75)], "eval/tuned/math_nocalc/accuracy": [(60, 0.375)],
        "eval/tuned/squad/f1": [(60, 20.0)], "eval/tuned/squad/em": [(60, 0.0)], "eval/retention/passed": [(60, 1.0)],
        "eval/checkpoints/math/accuracy": [(20, 0.375), (40, 0.5)], "eval/checkpoints/math_nocalc/accuracy": [(40, 0.25)]}


def test_a_run_logs_its_scores_to_mlflow_and_a_fresh_rerun_logs_nothing(tmp_path, capsys, monkeypatch):
    """The whole run with report_to [tensorboard, mlflow]: the training's scalars and, after the evaluations, the
    scores in the same MLflow run; the rerun skips every stage and adds nothing to either tracker."""
    import pytest
    from tests.cli_helpers import SMALL as FAST
    from tests.modeling.test_tracking import tensorboard_scalars

    from mathlora.app.stages import STAGES

    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)  # as a user without MLflow settings; what the run sets is undone afterwards
    run = tmp_path / "run"
    args = ["run", "--no-progress", "--run", str(run), *FAST, "train.report_to=[tensorboard,mlflow]"]
    assert main(args) == 0
    capsys.readouterr()
    lay = RunLayout(run)
    state = json.loads((lay.train / "tracking.json").read_text())
    client = MlflowClient(tracking_uri=state["mlflow"]["tracking_uri"])
    assert state["mlflow"]["tracking_uri"] == (lay.train / "mlruns").resolve().as_uri()
    run_id = state["mlflow"]["run_id"]
    tuned = json.loads(lay.eval("tuned").math.read_text())
    history = client.get_metric_history(run_id, "eval/tuned/math/accuracy")
    assert [(m.step, m.value) for m in history] == [(2, tuned["accuracy"])]  # at the training's last step (2)
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [1, 2]
    squad = json.loads(lay.eval("base").squad.read_text())
    assert [m.value for m in client.get_metric_history(run_id, "eval/base/squad/f1")] == [squad["f1"]]
    tb = tensorboard_scalars(lay.train_tensorboard)
    assert tb["eval/tuned/math/accuracy"] == [(2, round(tuned["accuracy"], 6))]
    events = sorted(p.name for p in lay.train_tensorboard.iterdir())

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "eval_tuned_squad: fresh, skipped" in out and "report: fresh, skipped" in out
    assert out.count("fresh, skipped") + out.count("not used") == len(STAGES)
    assert sorted(p.name for p in lay.train_tensorboard.iterdir()) == events
    assert len(client.get_metric_history(run_id, "eval/tuned/math/accuracy")) == 1
    assert "mathlora run" in (run / "run.log").read_text() and "report: " in (run / "run.log").read_text()


def test_a_run_stopped_before_its_first_stage_leaves_a_folder_the_next_run_takes(tmp_path, capsys):
    """run.log is written before the manifest exists (like the lock): it never makes the folder look foreign."""
    run = tmp_path / "run"
    assert main(["run", "--no-progress", "-o", str(run), *SMALL, "data.test=/does/not/exist.json"]) == 2
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == ["run.log"]
    assert main(["run", "--no-progress", "-o", str(run), "--stop-after", "synth", *SMALL]) == 0
    capsys.readouterr()
    log = (run / "run.log").read_text(encoding="utf-8")
    assert log.count("=== ") == 2 and "error: data.test file not found" in log and "stopped after synth" in log
