"""mathlora.modeling.tracking: TensorBoard, W&B (offline) and MLflow (a file store) behind one interface; scores logged
once."""

from __future__ import annotations

import json
import sys
import time

import pytest

from mathlora.modeling import tracking
from mathlora.errors import MathloraError
from mathlora.modeling.tracking import Trackers, check_backends, log_once

needs_wandb = pytest.mark.skipif(not tracking.installed("wandb"), reason="wandb not installed")
needs_mlflow = pytest.mark.skipif(not tracking.installed("mlflow"), reason="mlflow not installed")


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard shows for the run folder ``folder`` (its own reader: purges applied):
    tag -> [(step, value)] in the order written."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))  # nothing written to ~/.config
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


@pytest.fixture
def local_mlflow(monkeypatch):
    """MLflow as a user without settings has it; what mathlora sets in the environment is undone afterwards."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


# -- which backends ---------------------------------------------------------------------------------------------

def test_an_unknown_or_missing_backend_is_one_line_naming_the_install(monkeypatch):
    with pytest.raises(MathloraError, match=r"train.report_to: unknown backend 'comet' \(allowed: tensorboard, "):
        check_backends(["comet"])
    monkeypatch.setattr(tracking, "installed", lambda name: name != "mlflow")
    with pytest.raises(MathloraError) as e:
        check_backends(["tensorboard", "mlflow"])
    assert "names mlflow, which is not installed (pip install mlflow-skinny)" in str(e.value)
    assert "\n" not in str(e.value)
    check_backends(["tensorboard"])  # installed: nothing to say
    check_backends([])


def test_the_wandb_key_check_reads_the_environment_and_netrc_and_never_prompts(monkeypatch, tmp_path):
    import io
    import sys

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    assert tracking._wandb_login() is False  # a terminal and no key: no prompt, just no key
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert tracking._wandb_login() is True  # what `wandb login` writes
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert tracking._wandb_login() is False  # that key is for another host
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert tracking._wandb_login() is True


def test_online_wandb_without_a_key_is_refused_before_anything_runs(monkeypatch, tmp_path):
    """W&B online with no API key: one line at the check (the pipeline's preflight), not at the first step."""
    monkeypatch.setattr(tracking, "installed", lambda name: True)
    monkeypatch.delenv("WANDB_MODE", raising=False)

    def no_key():
        raise RuntimeError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")

    monkeypatch.setattr(tracking, "_wandb_login", no_key)
    with pytest.raises(MathloraError) as e:
        check_backends(["wandb"])
    msg = str(e.value)
    assert "W&B cannot log in (api_key not configured (no-tty)" in msg and "WANDB_MODE=offline" in msg
    monkeypatch.setenv("WANDB_MODE", "offline")
    check_backends(["wandb"])  # offline needs no key


def test_config_reads_report_to_as_a_list_and_it_never_changes_the_result():
    from mathlora.run_dir.same_result import result_settings
    from mathlora.train.config import TrainConfig

    assert TrainConfig().report_to == ["tensorboard"]
    assert TrainConfig(report_to="wandb,mlflow").report_to == ["wandb", "mlflow"]
    assert TrainConfig(report_to=["mlflow", "mlflow"]).report_to == ["mlflow"]
    assert TrainConfig(report_to="none").report_to == [] and TrainConfig(report_to=[]).report_to == []
    with pytest.raises(ValueError, match="report_to"):
        TrainConfig(report_to=["comet"])
    assert "report_to" not in result_settings(TrainConfig(report_to=["wandb"]))
    assert result_settings(TrainConfig(report_to=["wandb"])) == result_settings(TrainConfig())


def test_a_config_error_names_report_to(tmp_path, capsys):
    from mathlora.app.cli import main

    assert main(["run", f"run_dir={tmp_path / 'r'}", "train.report_to=[tensorboard,comet]"]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert line.startswith("error: config error") and "train.report_to.1" in line and "comet" in line


# -- the backends -----------------------------------------------------------------------------------------------

def test_tensorboard_gets_the_scalars_and_a_resume_purges_the_steps_after_it(tmp_path):
    trackers = Trackers.open(["tensorboard"], tmp_path, new_runs=True, purge_step=1)
    for step, loss in ((1, 2.5), (2, 2.0), (3, 1.5)):
        trackers.log({"train/loss": loss, "train/lr": 1e-3 * step}, step)
    trackers.close()
    time.sleep(1.1)  # event files sort by their second of creation (a resume is a later process)
    trackers = Trackers.open(["tensorboard"], tmp_path, new_runs=False, purge_step=3)  # resumed at step 2
    trackers.log({"train/loss": 1.25}, 3)
    trackers.close()
    assert not (tmp_path / tracking.STATE_FILE).exists()  # TensorBoard alone has no run ids to keep
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    # TensorBoard's reader applies the purge: step 3 of the first writer is gone, the resumed one stays
    assert scalars["train/loss"] == [(1, 2.5), (2, 2.0), (3, 1.25)]
    assert scalars["train/lr"] == [(1, 0.001), (2, 0.002)]


@needs_mlflow
def test_mlflow_logs_to_a_file_store_in_the_folder_and_a_resume_continues_the_run(tmp_path, local_mlflow):
    from mlflow.tracking import MlflowClient

    params = {"model": "tiny", "lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}, "train": {"lr": 1e-3}}
    trackers = Trackers.open(["mlflow"], tmp_path / "train", new_runs=True, name="demo", params=params)
    trackers.log({"train/loss": 2.0, "eval/tuned/math_by_type/Counting & Probability": 0.5}, 1)
    trackers.close()
    state = json.loads((tmp_path / "train" / tracking.STATE_FILE).read_text())
    run_id = state["mlflow"]["run_id"]
    assert state["mlflow"]["tracking_uri"] == (tmp_path / "train" / "mlruns").resolve().as_uri()
    # resumed with another (NOT_RESULT) setting: the same run, its params kept (MLflow params are immutable)
    trackers = Trackers.open(["mlflow"], tmp_path / "train", new_runs=False, name="demo",
                             params={**params, "train": {"lr": 1e-3, "log_every": 5}})
    trackers.log({"train/loss": 1.5}, 2)
    trackers.close()
    assert json.loads((tmp_path / "train" / tracking.STATE_FILE).read_text())["mlflow"]["run_id"] == run_id

    client = MlflowClient(tracking_uri=state["mlflow"]["tracking_uri"])
    run = client.get_run(run_id)
    assert run.info.run_name == "demo" and run.info.status == "FINISHED"
    assert run.data.params == {"model": "tiny", "lora.r": "8", "lora.target_modules": "['q_proj', 'v_proj']",
                               "train.lr": "0.001"}
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train/loss")] == [(1, 2.0), (2, 1.5)]
    # a user's problem type with characters MLflow refuses in a name
    assert [m.value for m in client.get_metric_history(run_id, "eval/tuned/math_by_type/Counting _ Probability")] \
        == [0.5]
    # a training from step 0 is a new run
    trackers = Trackers.open(["mlflow"], tmp_path / "train", new_runs=True, name="demo", params=params)
    trackers.close()
    assert json.loads((tmp_path / "train" / tracking.STATE_FILE).read_text())["mlflow"]["run_id"] != run_id


@needs_mlflow
def test_mlflow_resumed_after_kill_9_logs_no_step_twice(tmp_path, local_mlflow):
    """Issue 31 low: steps 3 and 4 logged, the process killed (never closed), the training resumed from its
    step-2 checkpoint logs 3, 4 and 5 again: MLflow keeps one point per step."""
    from mlflow.tracking import MlflowClient

    trackers = Trackers.open(["mlflow"], tmp_path / "train", new_runs=True, name="demo", purge_step=1)
    for step in (1, 2, 3, 4):
        trackers.log({"train/loss": 3.0 - step / 4}, step)
    # kill -9: no close; the resume continues the recorded run from the checkpoint at step 2
    trackers = Trackers.open(["mlflow"], tmp_path / "train", new_runs=False, name="demo", purge_step=3)
    for step in (3, 4, 5):
        trackers.log({"train/loss": 3.0 - step / 4}, step)
    trackers.close()
    state = json.loads((tmp_path / "train" / tracking.STATE_FILE).read_text())
    client = MlflowClient(tracking_uri=state["mlflow"]["tracking_uri"])
    steps = [m.step for m in client.get_metric_history(state["mlflow"]["run_id"], "train/loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5]


def wandb_records(log_path) -> list[bytes]:
    """The records of a W&B transaction log (``run-<id>.wandb``): LevelDB's log format after a 7-byte header
    (``:W&B``, magic 0xBEE1, version 0), blocks of 32 KiB, each piece with a 7-byte header (crc32c, length,
    type: 1 full, 2 first, 3 middle, 4 last)."""
    import struct

    data = log_path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # still being written
            break
        piece, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            break
        pending = piece if kind in (1, 2) else pending + piece
        if kind in (1, 4):
            records.append(pending)
    return records


def wandb_history(run_dir) -> list[dict]:
    """The history rows of an offline W&B run, parsed with wandb's own protobuf messages."""
    from wandb.proto import wandb_internal_pb2

    (log,) = run_dir.glob("run-*.wandb")
    deadline = time.monotonic() + 20
    while True:  # run.finish() returns before wandb-core has written the run's last records: wait for its exit
        records = []
        for raw in wandb_records(log):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            records.append(record)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                     for item in record.history.item}
            rows.append({k: v for k, v in items.items() if not k.startswith("_")})
    return rows


@needs_wandb
def test_wandb_offline_keeps_the_run_in_the_folder_and_a_resume_continues_its_id(tmp_path, offline_wandb):
    folder = tmp_path / "run" / "train"
    trackers = Trackers.open(["wandb"], folder, new_runs=True, params={"train": {"lr": 0.001}})
    trackers.log({"train/loss": 2.0}, 1)
    trackers.log({"train/loss": 1.5}, 2)
    trackers.close()
    state = json.loads((folder / tracking.STATE_FILE).read_text())
    run_id = state["wandb"]["id"]
    assert state["wandb"]["project"] == "mathlora"
    runs = sorted((folder / "wandb" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 1  # under the training folder, nowhere else
    assert [(r["train/step"], r["train/loss"]) for r in wandb_history(runs[0])] == [(1, 2.0), (2, 1.5)]

    # W&B names an offline run's folder by the second it started: a resume within that second shares the first
    # run's folder and file, and its records were seen lost there (flaky on a fast machine); a real resume
    # (a later stage) comes seconds later
    time.sleep(1.1)
    trackers = Trackers.open(["wandb"], folder, new_runs=False)
    trackers.log({"eval/tuned/math/accuracy": 0.75}, 2)
    trackers.close()
    assert json.loads((folder / tracking.STATE_FILE).read_text())["wandb"]["id"] == run_id
    runs = sorted((folder / "wandb" / "wandb").glob(f"offline-run-*-{run_id}"))
    rows = [row for run in runs for row in wandb_history(run)]
    assert {"train/step": 2, "eval/tuned/math/accuracy": 0.75} in rows


# -- logged once ------------------------------------------------------------------------------------------------

def test_scores_are_logged_once_and_again_only_when_they_change(tmp_path):
    points = [(4, {"eval/tuned/math/accuracy": 0.5, "eval/base/math/accuracy": 0.25}),
              (2, {"eval/checkpoints/math/accuracy": 0.375})]
    assert log_once(["tensorboard"], tmp_path, "eval", points) == ["tensorboard"]
    assert log_once(["tensorboard"], tmp_path, "eval", points) == []  # a rerun: nothing opened, nothing logged
    assert len(list((tmp_path / "tensorboard").glob("events.*"))) == 1
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert scalars == {"eval/tuned/math/accuracy": [(4, 0.5)], "eval/base/math/accuracy": [(4, 0.25)],
                       "eval/checkpoints/math/accuracy": [(2, 0.375)]}
    changed = [(4, {"eval/tuned/math/accuracy": 0.625, "eval/base/math/accuracy": 0.25})]
    assert log_once(["tensorboard"], tmp_path, "eval", changed) == ["tensorboard"]
    # a second event file (TensorBoard orders files by name, in which its writer counter is not zero-padded)
    assert sorted(tensorboard_scalars(tmp_path / "tensorboard")["eval/tuned/math/accuracy"]) == [(4, 0.5), (4, 0.625)]
    assert log_once(["tensorboard"], tmp_path, "eval", []) == [] and log_once([], tmp_path, "eval", points) == []


@needs_mlflow
def test_a_backend_added_later_gets_the_scores_the_others_already_have(tmp_path, local_mlflow):
    points = [(4, {"eval/tuned/math/accuracy": 0.5})]
    assert log_once(["tensorboard"], tmp_path, "eval", points) == ["tensorboard"]
    assert log_once(["tensorboard", "mlflow"], tmp_path, "eval", points) == ["mlflow"]
    assert log_once(["tensorboard", "mlflow"], tmp_path, "eval", points) == []
    assert len(tensorboard_scalars(tmp_path / "tensorboard")["eval/tuned/math/accuracy"]) == 1


# -- run.log ----------------------------------------------------------------------------------------------------


def test_the_registry_has_one_backend_per_report_to_name_and_check_backends_reads_it(monkeypatch):
    from typing import get_args

    from mathlora.train.config import TrainConfig

    names = get_args(get_args(TrainConfig.model_fields["report_to"].annotation)[0])
    assert set(tracking.BACKENDS) == set(names) and all(b.name == k for k, b in tracking.BACKENDS.items())
    assert tracking.BACKENDS["mlflow"].install == "pip install mlflow-skinny"
    checked = []
    monkeypatch.setitem(tracking.BACKENDS, "fake", tracking.Backend("fake", "json", "pip install fake",
                                                                     lambda *a: None, check=checked.append))
    check_backends(["fake"], where="x.report_to")
    assert checked == ["x.report_to"]
    with pytest.raises(MathloraError, match="unknown backend 'nope'.*fake"):
        check_backends(["nope"])
