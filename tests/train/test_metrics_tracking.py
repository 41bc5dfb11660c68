"""train.report_to: the training's scalars reach TensorBoard, MLflow and W&B (offline) exactly as metrics.jsonl has
them, rank 0 only, and a resumed training continues the same tracker runs."""

from __future__ import annotations

import json
import shutil

import pytest
from tests.test_tracking import local_mlflow, needs_mlflow, needs_wandb, offline_wandb, tensorboard_scalars, \
    wandb_history  # noqa: F401 (fixtures)

from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.train.job import TrainJob
from mathlora.train.metrics import MetricsLog, run_params

from .conftest import tiny_config, train


def job(report_to) -> TrainJob:
    return TrainJob(TrainConfig(report_to=report_to), LoraConfig(), 7, "tiny-random-llama", 64, Runtime())


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_only_the_writing_rank_opens_trackers(tmp_path):
    log = MetricsLog(tmp_path, 0, enabled=False, job=job(["tensorboard", "mlflow", "wandb"]))
    log.write({"step": 1, "loss": 1.0})
    log.close()
    assert list(tmp_path.iterdir()) == []  # rank > 0: no file, no tracker, not even a check


def test_no_backend_keeps_metrics_jsonl_only(tmp_path):
    log = MetricsLog(tmp_path, 0, enabled=True, job=job([]))
    log.write({"step": 1, "loss": 1.0, "lr": 0.1, "grad_norm": 1.0, "learnable_tokens": 3, "tokens_per_s": 9.0,
               "epoch": 0.5, "mfu": None})
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_a_missing_backend_stops_before_the_first_step(tmp_path, tokens_dir, monkeypatch):
    from mathlora.modeling import tracking

    monkeypatch.setattr(tracking, "installed", lambda name: name == "tensorboard")
    with pytest.raises(MathloraError, match="names mlflow, which is not installed"):
        train(tiny_config(report_to=["tensorboard", "mlflow"]), tokens_dir, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "metrics.jsonl").exists() and not (tmp_path / "out" / "checkpoints").exists()


def test_run_params_name_the_training():
    params = run_params(job(["mlflow"]))
    assert params["model"] == "tiny-random-llama" and params["seed"] == 7 and params["seq_length"] == 64
    assert params["lora"]["r"] == 8 and params["train"]["lr"] == 1e-5 and params["precision"] == "fp32"


@needs_mlflow
def test_training_logs_every_row_to_tensorboard_and_mlflow_and_a_resume_continues_the_run(
        tmp_path, tokens_dir, local_mlflow):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "demo" / "train"
    cfg = tiny_config(save_steps=2, report_to=["tensorboard", "mlflow"])
    train(cfg, tokens_dir, out, progress=False)
    expected = rows(out)
    assert [r["step"] for r in expected] == [1, 2, 3, 4, 5, 6]
    scalars = tensorboard_scalars(out / "tensorboard")
    assert [s for s, _ in scalars["train/loss"]] == [r["step"] for r in expected]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([r["loss"] for r in expected], rel=1e-6)  # float32
    assert [s for s, _ in scalars["train/epoch"]] == [1, 2, 3, 4, 5, 6]
    assert "train/mfu" not in scalars  # None off known GPUs: not logged as a number
    state = json.loads((out / "tracking.json").read_text())
    client = MlflowClient(tracking_uri=state["mlflow"]["tracking_uri"])
    run = client.get_run(state["mlflow"]["run_id"])
    assert run.info.run_name == "demo" and run.info.status == "FINISHED"
    assert run.data.params["train.report_to"] == "['tensorboard', 'mlflow']" and run.data.params["seed"] == "7"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["loss"]) for r in expected]

    # a crash after the step-4 checkpoint: the resume continues the same MLflow run and TensorBoard purges 5-6
    shutil.rmtree(out / "checkpoints" / "step-6")
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    train(cfg, tokens_dir, out, progress=False)
    assert json.loads((out / "tracking.json").read_text())["mlflow"]["run_id"] == run.info.run_id
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3, 4, 5, 6, 5, 6]
    assert [m.value for m in history][-2:] == pytest.approx([r["loss"] for r in expected][-2:], abs=1e-6)
    scalars = tensorboard_scalars(out / "tensorboard")
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([round(r["loss"], 6) for r in expected], abs=1e-5)


@needs_wandb
def test_training_logs_to_wandb_offline_under_the_training_folder(tmp_path, tokens_dir, offline_wandb):
    out = tmp_path / "demo" / "train"
    train(tiny_config(max_steps=3, report_to=["wandb"]), tokens_dir, out, progress=False)
    expected = rows(out)
    run_id = json.loads((out / "tracking.json").read_text())["wandb"]["id"]
    (run_dir,) = (out / "wandb" / "wandb").glob(f"offline-run-*-{run_id}")
    history = wandb_history(run_dir)
    assert [(h["train/step"], h["train/loss"]) for h in history] == [(r["step"], r["loss"]) for r in expected]
    assert not (out / "tensorboard").exists()  # only what report_to names


@needs_mlflow
def test_under_torchrun_only_rank_0_logs(tmp_path, tokens_dir, local_mlflow, monkeypatch):
    """Two processes, one MLflow run and one TensorBoard writer: every step logged once."""
    from mlflow.tracking import MlflowClient

    from .conftest import torchrun_train

    out = tmp_path / "ddp"
    torchrun_train(tiny_config(max_steps=3, micro_batch_size=1, report_to=["tensorboard", "mlflow"]), tokens_dir,
                   out, timeout=240)
    expected = rows(out)
    assert [r["step"] for r in expected] == [1, 2, 3]
    assert len(list((out / "tensorboard").glob("events.*"))) == 1
    assert [s for s, _ in tensorboard_scalars(out / "tensorboard")["train/loss"]] == [1, 2, 3]
    state = json.loads((out / "tracking.json").read_text())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a reader of a file store needs it too (MLflow 3)
    client = MlflowClient(tracking_uri=state["mlflow"]["tracking_uri"])
    (experiment,) = [e for e in client.search_experiments() if e.name == "mathlora"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == state["mlflow"]["run_id"]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")] == \
        [(r["step"], r["loss"]) for r in expected]
