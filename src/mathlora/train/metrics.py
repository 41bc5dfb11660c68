"""``metrics.jsonl`` (a row per log step, appended) and the trackers of ``train.report_to`` (TensorBoard, W&B,
MLflow: ``mathlora.modeling.tracking``), written by rank 0 only."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mathlora.errors import MathloraError
from mathlora.run_dir.records import JsonProblem, dumps_line, parse_json
from mathlora.run_dir.atomic import no_space_message, write_text_atomic
from mathlora.train.outputs import METRICS
from mathlora.train.state import Interval, StepResult, TrainState
from mathlora.train.flops import model_flops, utilization
from mathlora.modeling.tracking import Trackers

if TYPE_CHECKING:
    from mathlora.modeling.tracking import Trackers
    from mathlora.train.job import TrainJob

SCALARS = ("loss", "lr", "grad_norm", "learnable_tokens", "tokens_per_s", "epoch", "mfu")  # train/<name>


def run_params(job: "TrainJob") -> dict:
    """The settings a new W&B / MLflow run records (its config / params)."""
    return {"model": job.model, "seq_length": job.seq_length, "seed": job.seed, "lora": job.lora.model_dump(mode="json"),
            "train": job.train.model_dump(mode="json"), "precision": job.runtime.precision,
            "device": job.runtime.device}


class MetricsLog:
    """Rows after ``start_step`` (a resume) are dropped from the file, and TensorBoard purges them too; W&B and
    MLflow continue the runs of a resumed training (``tracking.json``) and start new ones at step 0.

    ``job`` gives ``train.report_to`` and the settings to record (without it: TensorBoard only)."""

    def __init__(self, out: Path, start_step: int, enabled: bool, job: "TrainJob | None" = None):
        self.enabled = enabled
        self.path = out / METRICS
        self.trackers: Trackers | None = None
        if not enabled:
            return

        names = job.train.report_to if job is not None else ["tensorboard"]
        self.trackers = Trackers.open(names, out, new_runs=start_step == 0, purge_step=start_step + 1,
                                      params=run_params(job) if job is not None else None)  # checked first
        try:
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= start_step]
            write_text_atomic(self.path, "".join(dumps_line(r) + "\n" for r in kept))
        except BaseException:
            self.close()
            raise

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(dumps_line(row) + "\n")
        except OSError as e:  # disk full: one line (the torn row is dropped on resume)
            full = no_space_message(e, self.path)
            if full:
                raise MathloraError(full) from None
            raise
        if self.trackers is not None:
            self.trackers.log({f"train/{k}": row[k] for k in SCALARS if row.get(k) is not None}, row["step"])

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.close()
            self.trackers = None


def read_metrics(path: Path) -> list[dict]:
    """The rows of ``metrics.jsonl`` (none when missing). A torn last line (a process killed while appending)
    is dropped with a note; a bad line before the last is an error (the file is not a metrics log)."""
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    rows = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = parse_json(raw)
        except (JsonProblem, UnicodeDecodeError):
            if any(x.strip() for x in lines[i + 1:]):
                raise MathloraError(f"{path}:{i + 1}: not valid JSON; move the file away to resume") from None
            print(f"note: dropped the torn last line of {path} (line {i + 1}, from an interrupted run)",
                  file=sys.stderr)
            break
        if not isinstance(row, dict):
            raise MathloraError(f"{path}:{i + 1}: expected a JSON object per line; move the file away to resume")
        rows.append(row)
    return rows


def sync_interval(state: TrainState, result: StepResult, interval: Interval) -> tuple[float, float, float]:
    """Wait for the device, stop on a non-finite step since the last sync, and add the interval to the
    loop's counters; returns (loss, gradient norm, the interval's seconds)."""
    loss, grad_norm = float(result.loss), float(result.grad_norm)
    if int(state.first_bad):
        bad = int(state.first_bad)
        raise MathloraError(f"training stopped: the loss or gradient norm was not finite at step {bad} (step "
                            f"{state.step}: loss {loss}, gradient norm {grad_norm}); lower train.lr or check the "
                            f"data. Checkpoints up to step {bad - 1} are kept")
    dt = time.perf_counter() - interval.t0
    state.learnable_done += interval.learnable
    state.tokens_done = state.tokens_done + interval.tokens if state.tokens_done is not None else None
    state.seconds_done += dt
    state.last_loss = loss
    return loss, grad_norm, dt


def metrics_row(state: TrainState, result: StepResult, interval: Interval, matmul: int, peak, *, loss: float,
                grad_norm: float, seconds: float) -> dict:
    """The metrics row of a synced interval (``sync_interval``): a pure formatter, changes nothing."""

    dt = seconds
    row = {"step": state.step, "epoch": round(state.step / state.n_epoch, 4), "loss": loss, "lr": result.lr,
           "grad_norm": grad_norm, "learnable_tokens": result.batch.learnable_tokens,
           "tokens_per_s": interval.learnable / dt, "seconds": round(state.seconds_done, 3),
           "interval_steps": interval.steps, "interval_seconds": round(dt, 6),
           "interval_learnable_tokens": interval.learnable, "interval_tokens": interval.tokens}
    mfu = utilization(model_flops(matmul, interval.tokens, interval.learnable) / state.group.world, dt, peak)
    row["mfu"] = round(mfu, 4) if mfu is not None else None  # strict, per device; None off known GPUs
    return row
