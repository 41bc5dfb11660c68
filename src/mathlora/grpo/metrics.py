"""GRPO's ``metrics.jsonl`` and trackers (a ``TrainerCallback`` on TRL's logs) and the generation timer."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mathlora.grpo.config import GrpoConfig
from mathlora.grpo.outputs import FINGERPRINT_FILE, METRICS
from mathlora.run_dir.records import JsonProblem, dumps_line, parse_json
from mathlora.run_dir.atomic import write_json_atomic, write_text_atomic

RENAMED = {"rewards/correct/mean": "accuracy", "rewards/correct/std": "accuracy_std",
           "rewards/format/mean": "format", "rewards/format/std": "format_std",
           "completions/mean_length": "completion_length", "learning_rate": "lr"}
SCALARS = ("reward", "reward_std", "accuracy", "format", "completion_length", "kl", "loss", "entropy", "grad_norm",
           "lr", "step_seconds", "generation_seconds")


class GenerationTimer:
    """Seconds spent in the model's ``generate`` (TRL's rollouts), wrapped on the instance."""

    def __init__(self, model):
        self.seconds = 0.0
        self.calls = 0
        inner = model.generate

        def generate(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        model.generate = generate


def read_metrics(path: Path) -> list[dict]:
    """``metrics.jsonl`` rows; a torn last line (an interrupted append) is dropped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = parse_json(line)
        except (JsonProblem, ValueError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def name_checkpoint_base(folder: Path, base: str) -> None:
    """The checkpoint's adapter configs (TRL's ``ref/`` too) name the base model (``adapters.base_model_name``):
    the model is trained with no name in them, so peft's save never looks the base up on the Hub."""
    for path in [folder / "adapter_config.json", *folder.glob("*/adapter_config.json")]:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict):
            config["base_model_name_or_path"] = base
            write_json_atomic(path, config)


def metrics_callback(out: Path, cfg: GrpoConfig, timer: GenerationTimer, events, fingerprint: str,
                     base: str | None = None):
    """A ``TrainerCallback`` writing a ``metrics.jsonl`` row (and the trackers' scalars) per TRL log, and each
    checkpoint's ``mathlora.json`` (the fingerprint, written last) with the base named in its adapter configs."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def __init__(self):
            self.trackers = None
            self.step_started = 0.0
            self.step_seconds = 0.0
            self.steps = 0
            self.generation_at_log = 0.0
            self.path = out / METRICS
            self.seconds = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            from mathlora.modeling.tracking import Trackers

            start = state.global_step  # a resume: the checkpoint's step
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= start]
            write_text_atomic(self.path, "".join(dumps_line(r) + "\n" for r in kept))
            self.trackers = Trackers.open(cfg.report_to, out, new_runs=start == 0, purge_step=start + 1,
                                          params={"grpo": cfg.model_dump(mode="json")})

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            took = time.perf_counter() - self.step_started
            self.step_seconds += took
            self.seconds += took
            self.steps += 1

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "train_runtime" in logs or not any(k.startswith("reward") for k in logs):
                return  # the end-of-training summary line, not a step's
            row = {"step": state.global_step}
            for key, value in logs.items():
                if isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
                    row[RENAMED.get(key, key)] = value
            row["step_seconds"] = round(self.step_seconds / max(self.steps, 1), 4)
            row["generation_seconds"] = round((timer.seconds - self.generation_at_log) / max(self.steps, 1), 4)
            row["reward_events"] = events.as_dict()
            self.generation_at_log, self.step_seconds, self.steps = timer.seconds, 0.0, 0
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(dumps_line(row) + "\n")
            if self.trackers is not None:
                self.trackers.log({f"grpo/{k}": float(row[k]) for k in SCALARS if k in row}, state.global_step)

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():  # written last: a checkpoint without it was interrupted
                if base is not None:
                    name_checkpoint_base(folder, base)
                write_json_atomic(folder / FINGERPRINT_FILE, {"fingerprint": fingerprint, "step": state.global_step})

        def close(self):
            if self.trackers is not None:
                self.trackers.close()
                self.trackers = None

    return MetricsCallback()
