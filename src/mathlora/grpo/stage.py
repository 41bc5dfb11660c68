"""The GRPO stage: TRL's ``GRPOTrainer`` continues the SFT adapter, rewarded by mathlora's own grader.

``grpo_train(cfg.grpo, runtime, problems, sft_adapter, output_dir, model=..., template=..., seed=...)`` reads the
training problems (``normalized.jsonl``: ``problem`` and the gold ``solution``), renders each in the run's
template (``mathlora.templates``), and writes::

    <output_dir>/
      checkpoints/checkpoint-N/   TRL/Trainer checkpoints (adapter, optimizer, scheduler, RNG states,
                                  trainer_state.json) + mathlora.json (the run's fingerprint)
      adapter/                    the GRPO adapter (peft format, on the base model; the tokenizer with the
                                  template as its chat template)
      merged/                     base + GRPO adapter (when ``merged_dir`` is given: ``mathlora.train.merge``)
      metrics.jsonl               per log step: reward mean/std, accuracy (the ``correct`` reward's mean), the
                                  format reward, completion length, KL (beta > 0), loss, entropy, grad norm,
                                  step seconds and the generation seconds in them, reward events
      tensorboard/                the same scalars (``grpo.report_to``: ``mathlora.tracking``)
      summary.json                written last: a finished run of the same fingerprint is skipped when rerun

Semantics:

* the loop is TRL's (``GRPOTrainer``): per step ``prompts_per_step`` problems x ``num_generations`` sampled
  completions, rewards ``correct`` and ``format`` (``mathlora.grpo.rewards``) weighted by ``correct_reward`` /
  ``format_reward``, one optimizer step (one generation per step: ``steps_per_generation=1``, one iteration);
* the model is the base model + the SFT adapter, loaded trainable; with ``beta > 0`` TRL keeps a frozen copy of
  the SFT adapter as the reference model (its ``ref`` adapter), so the KL is to the SFT policy, not to the base;
* "the same run" is the fingerprint: the ``grpo`` settings that can change the result (``NOT_RESULT`` marks),
  the base model's identity, the SFT adapter's weights and config, the problems file, template, seed, solution
  style, grading tolerances and scope, precision and the generation backend. A finished run of the same
  fingerprint returns its summary (nothing runs); one of another fingerprint is refused unless
  ``resume=False`` (then the folder starts over);
* resume: the newest checkpoint with this fingerprint whose ``trainer_state.json`` and adapter weights are
  intact; Trainer restores optimizer, scheduler, RNG states and the data position;
* rollouts run without the calculator (``CALCULATOR_NOTE``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.evaluate.answers import DEFAULT_ATOL, DEFAULT_RTOL, extract_gold_answer, resolve_scope
from mathlora.grpo.config import GrpoConfig
from mathlora.records import JsonProblem, dumps_line, parse_json, read_json_document, read_jsonl
from mathlora.run_dir.atomic import write_json_atomic, write_text_atomic
from mathlora.runtime import Runtime
from mathlora.same_result import result_settings

MIN_TRL = "1.16"  # the version tested (pyproject's grpo extra); older ones lack loss types and the ref adapter
SUMMARY, METRICS, FINGERPRINT_FILE = "summary.json", "metrics.jsonl", "mathlora.json"
OWN_NAMES = ("checkpoints", "adapter", "tensorboard", METRICS, SUMMARY)  # what the stage writes (and clears)
KIND = "grpo"
CALCULATOR_NOTE = ("rollouts run without the calculator: TRL builds a GenerationConfig from grpo's generation "
                   "kwargs, which refuses a logits_processor (transformers: it must be passed to generate() "
                   "itself), so CalculatorLogitsProcessor cannot reach TRL's generate without rewriting the trainer "
                   "(or TRL's experimental rollout_func); it also forces tokens from the greedy choice while GRPO "
                   "samples, and forced calculator tokens would enter the policy loss as the model's own")
# metrics.jsonl names for TRL's log keys (others are kept under their own names)
RENAMED = {"rewards/correct/mean": "accuracy", "rewards/correct/std": "accuracy_std",
           "rewards/format/mean": "format", "rewards/format/std": "format_std",
           "completions/mean_length": "completion_length", "learning_rate": "lr"}
SCALARS = ("reward", "reward_std", "accuracy", "format", "completion_length", "kl", "loss", "entropy", "grad_norm",
           "lr", "step_seconds", "generation_seconds")


def require_trl():
    """The ``trl`` module (at least ``MIN_TRL``), else one line saying how to install it."""
    try:
        import trl
    except ImportError:
        raise MathloraError("the grpo stage needs TRL: pip install 'mathlora[grpo]'") from None
    from packaging.version import Version

    if Version(trl.__version__) < Version(MIN_TRL):
        raise MathloraError(f"the grpo stage needs trl>={MIN_TRL} (installed: {trl.__version__}): "
                            "pip install 'mathlora[grpo]'")
    return trl


# -- prompts ----------------------------------------------------------------------------------------------------

def load_prompts(problems_path, template: str, max_prompts: int | None = None) -> tuple[list[dict], int]:
    """The GRPO dataset: ``{"prompt": the problem in the template, "gold": its solution, "id", "type"}`` per
    record whose solution has a gradable answer; and how many records were left out (no gradable gold)."""
    from mathlora.templates import render_prompt

    rows, skipped = [], 0
    for n, rec in enumerate(read_jsonl(problems_path), 1):
        problem, solution = rec.get("problem"), rec.get("solution")
        if not isinstance(problem, str) or not isinstance(solution, str):
            raise MathloraError(f"{problems_path}: record {rec.get('id', n)} has no problem/solution text")
        gold = extract_gold_answer(solution)
        if gold is None or (not gold.is_number and gold.latex is None):
            skipped += 1
            continue
        rows.append({"prompt": render_prompt(template, problem), "gold": solution, "id": str(rec.get("id", n)),
                     "type": str(rec.get("type") or "")})
        if max_prompts is not None and len(rows) >= max_prompts:
            break
    if not rows:
        raise MathloraError(f"{problems_path} holds no problem with a gradable gold answer ({skipped} without)")
    return rows, skipped


# -- same run ---------------------------------------------------------------------------------------------------

def generation_backend(cfg: GrpoConfig, runtime: Runtime) -> str:
    """``transformers`` or ``vllm`` (``grpo.generation``; auto: vLLM on CUDA when it is installed)."""
    import importlib.util

    if cfg.generation != "auto":
        if cfg.generation == "vllm" and not runtime.device.startswith("cuda"):
            raise MathloraError("grpo.generation=vllm needs a CUDA device (runtime.device); use auto or "
                                "transformers")
        return cfg.generation
    return "vllm" if runtime.device.startswith("cuda") and importlib.util.find_spec("vllm") else "transformers"


def grpo_settings(cfg: GrpoConfig, runtime: Runtime, problems_path, adapter_dir, *, model: str, template: str,
                  seed: int, solution_style: str, atol: float, rtol: float, answer_scope: str) -> dict:
    """What the fingerprint hashes, readable (a changed run names what changed)."""
    from mathlora.adapters import ADAPTER_FILES, require_adapter_dir
    from mathlora.models import model_identity
    from mathlora.run_dir.hashing import file_sha256

    adapter = require_adapter_dir(adapter_dir)
    return {"grpo": result_settings(cfg), "model": model, "model_identity": model_identity(model),
            # the adapter's weights and config (its README.md card is rewritten by the cards stage: not hashed)
            "sft_adapter": {name: file_sha256(adapter / name) for name in ADAPTER_FILES},
            "problems": file_sha256(problems_path), "template": template, "seed": seed,
            "solution_style": solution_style, "atol": atol, "rtol": rtol,
            "scope": resolve_scope(answer_scope, solution_style), **runtime.fingerprint(),
            "generation": generation_backend(cfg, runtime)}


def settings_fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# -- the output folder ------------------------------------------------------------------------------------------

def claim_folder(out: Path) -> None:
    """Make ``out`` a GRPO folder (its marker); a folder of other files holding our names is refused."""
    from mathlora.run_dir.guards import artifact_kind, write_artifact_marker

    taken = sorted(n for n in OWN_NAMES if (out / n).exists() or (out / n).is_symlink()) if out.is_dir() else []
    if taken and artifact_kind(out) != KIND:
        raise MathloraError(f"output folder {out} holds {taken[0]!r} and is not a mathlora GRPO folder; give a new "
                            "folder (nothing was changed)")
    out.mkdir(parents=True, exist_ok=True)
    if artifact_kind(out) != KIND:
        write_artifact_marker(out, KIND)


def clear_outputs(out: Path) -> None:
    for name in OWN_NAMES[:3]:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in OWN_NAMES[3:]:
        (out / name).unlink(missing_ok=True)


def finished_summary(out: Path, fingerprint: str, resume: bool) -> dict | None:
    """The summary of a finished run of this fingerprint whose adapter is intact; None when there is none. A
    finished run of another fingerprint is refused when resuming."""
    from mathlora.adapters import adapter_problem

    path = out / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = read_json_document(path, "GRPO summary")
    except MathloraError:
        return None
    if not isinstance(summary, dict):
        return None
    if summary.get("fingerprint") != fingerprint:
        if resume:
            raise MathloraError(f"{out} holds a finished GRPO run with other settings; choose another output "
                                "folder or pass --no-resume (mathlora run: --force) to start it over")
        return None
    problem = adapter_problem(out / "adapter")
    if problem is not None:
        print(f"warning: the finished GRPO adapter {out / 'adapter'} {problem}; rebuilding it from the "
              "checkpoints", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None
    return summary


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def checkpoint_problem(folder: Path, fingerprint: str) -> str | None:
    """Why a TRL checkpoint cannot be resumed from (None: it can)."""
    from mathlora.adapters import adapter_problem

    try:
        mark = json.loads((folder / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"has no readable {FINGERPRINT_FILE} (interrupted while saving)"
    if not isinstance(mark, dict) or mark.get("fingerprint") != fingerprint:
        return "belongs to a run with other settings"
    for name in ("trainer_state.json", "optimizer.pt"):
        if not (folder / name).is_file():
            return f"lacks {name}"
    return adapter_problem(folder)


def newest_checkpoint(out: Path, fingerprint: str) -> Path | None:
    """The newest resumable checkpoint of this run, saying which newer ones were skipped and why."""
    root = out / "checkpoints"
    folders = sorted((p for p in root.glob("checkpoint-*") if p.is_dir() and _step_of(p) >= 0), key=_step_of,
                     reverse=True) if root.is_dir() else []
    for folder in folders:
        problem = checkpoint_problem(folder, fingerprint)
        if problem is None:
            return folder
        print(f"warning: GRPO checkpoint {folder} {problem}; skipped", file=sys.stderr)
    return None


# -- metrics, trackers, timing ----------------------------------------------------------------------------------

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


def metrics_callback(out: Path, cfg: GrpoConfig, timer: GenerationTimer, events, fingerprint: str):
    """A ``TrainerCallback`` writing a ``metrics.jsonl`` row (and the trackers' scalars) per TRL log."""
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
            from mathlora.tracking import Trackers

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
                write_json_atomic(folder / FINGERPRINT_FILE, {"fingerprint": fingerprint, "step": state.global_step})

        def close(self):
            if self.trackers is not None:
                self.trackers.close()
                self.trackers = None

    return MetricsCallback()


# -- the stage --------------------------------------------------------------------------------------------------

def trl_arguments(cfg: GrpoConfig, runtime: Runtime, out: Path, *, seed: int, progress: bool, backend: str):
    """TRL's ``GRPOConfig`` for this stage."""
    from trl import GRPOConfig

    on_cpu = not runtime.device.startswith("cuda")
    return GRPOConfig(
        output_dir=str(out / "checkpoints"), max_steps=cfg.steps, learning_rate=cfg.lr,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=cfg.max_grad_norm, weight_decay=0.0,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations, gradient_accumulation_steps=1,
        steps_per_generation=1, num_iterations=1, num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, beta=cfg.beta,
        loss_type=cfg.loss_type, reward_weights=[cfg.correct_reward, cfg.format_reward],
        remove_unused_columns=False, logging_steps=cfg.log_every, save_strategy="steps", save_steps=cfg.save_steps,
        save_only_model=False, report_to="none", seed=seed, data_seed=seed, use_cpu=on_cpu,
        bf16=runtime.precision == "bf16", fp16=runtime.precision == "fp16",
        dataloader_num_workers=0, disable_tqdm=not progress, log_completions=False, use_vllm=backend == "vllm",
        vllm_mode="colocate", shuffle_dataset=True)


def quiet_logs(trainer) -> None:
    """Trainer prints every log dict (PrinterCallback without a bar, ProgressCallback under one): metrics.jsonl
    holds them; the progress bar stays."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly)


def load_trained_adapter(peft_model, checkpoint: Path) -> None:
    """The checkpoint's trained ("default") adapter weights into ``peft_model``, after TRL copied the SFT adapter
    into its reference ("ref"). Trainer's resume loads them too on transformers 5; transformers 4.56 loads only
    the adapters in subfolders (TRL's ``ref/``) when a checkpoint has any, and would resume from the SFT weights."""
    from peft import set_peft_model_state_dict

    from mathlora.adapters import read_adapter_weights

    result = set_peft_model_state_dict(peft_model, read_adapter_weights(checkpoint), adapter_name="default")
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise MathloraError(f"GRPO checkpoint {checkpoint} does not fit the adapter (e.g. {missing[0]})")


def grpo_train(cfg: GrpoConfig, runtime: Runtime, problems_path, sft_adapter, output_dir, *, model: str,
               template: str, seed: int, solution_style: str = "answer", atol: float = DEFAULT_ATOL,
               rtol: float = DEFAULT_RTOL, answer_scope: str = "auto", merged_dir=None, resume: bool = True,
               progress: bool = True) -> dict:
    """GRPO on ``problems_path`` from the SFT adapter ``sft_adapter`` into ``output_dir`` (see the module
    docstring); returns the summary (also ``summary.json``)."""
    trl = require_trl()
    if runtime.precision == "fp16":
        raise MathloraError("runtime.precision=fp16 is not supported for GRPO (use bf16, fp32 or auto)")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise MathloraError(f"output {out} exists and is a file; expected a folder")
    settings = grpo_settings(cfg, runtime, problems_path, sft_adapter, model=model, template=template, seed=seed,
                             solution_style=solution_style, atol=atol, rtol=rtol, answer_scope=answer_scope)
    fingerprint = settings_fingerprint(settings)
    claim_folder(out)
    done = finished_summary(out, fingerprint, resume)
    if done is not None:
        print(f"grpo: {out} holds this finished run (step {done.get('steps')}); nothing to do", file=sys.stderr)
        return {**done, "skipped": True}
    rows, skipped = load_prompts(problems_path, template, cfg.max_prompts)
    start = newest_checkpoint(out, fingerprint) if resume else None
    if start is None:
        clear_outputs(out)
    else:
        print(f"grpo: resuming from {start}", file=sys.stderr)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    return _run(cfg, runtime, out, rows, skipped, sft_adapter, start, fingerprint, settings, trl.__version__,
                model=model, template=template, seed=seed, scope=settings["scope"], atol=atol, rtol=rtol,
                merged_dir=merged_dir, progress=progress)


def _run(cfg: GrpoConfig, runtime: Runtime, out: Path, rows: list[dict], skipped: int, sft_adapter, start,
         fingerprint: str, settings: dict, trl_version: str, *, model: str, template: str, seed: int, scope: str,
         atol: float, rtol: float, merged_dir, progress: bool) -> dict:
    import torch
    from datasets import Dataset
    from trl import GRPOTrainer

    from mathlora.adapters import attach_adapter, name_base_model
    from mathlora.grpo.rewards import Grading, RewardEvents, correct_reward, format_reward
    from mathlora.models import load_model
    from mathlora.run_dir.atomic import atomic_path
    from mathlora.templates import exported_tokenizer, save_tokenizer

    backend = settings["generation"]
    torch.manual_seed(seed)
    tokenizer = exported_tokenizer(model, template)  # a copy: TRL sets its padding side
    base = load_model(model, runtime)
    peft_model = attach_adapter(base, sft_adapter, model_name=model, trainable=True)
    events = RewardEvents()
    grading = Grading(atol=atol, rtol=rtol, scope=scope, timeout=cfg.reward_timeout, events=events)
    timer = GenerationTimer(peft_model)
    callback = metrics_callback(out, cfg, timer, events, fingerprint)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # TRL's calls of names transformers 5 deprecated (gradient_checkpointing, ...): nothing a user can change
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
        args = trl_arguments(cfg, runtime, out, seed=seed, progress=progress, backend=backend)
        try:
            trainer = GRPOTrainer(model=peft_model, reward_funcs=[correct_reward(grading), format_reward(grading)],
                                  args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                                  callbacks=[callback])
            quiet_logs(trainer)
            if start is not None:
                load_trained_adapter(trainer.model, start)
            trainer.train(resume_from_checkpoint=str(start) if start is not None else None)
        finally:
            callback.close()
    seconds = time.perf_counter() - started
    final = trainer.model
    name_base_model(final, model)
    with atomic_path(out / "adapter", directory=True) as tmp:
        # the trained adapter only (TRL's frozen reference copy is "ref"); no embedding lookup on the Hub
        final.save_pretrained(str(tmp), selected_adapters=["default"], safe_serialization=True,
                              save_embedding_layers=False)
        save_tokenizer(tokenizer, tmp)
    merged = None
    if merged_dir is not None:
        from mathlora.train.merge import merge_adapter

        merged = str(merge_adapter(runtime, model, out / "adapter", merged_dir, template=template))
    rows_logged = read_metrics(out / METRICS)
    summary = _summary(cfg, rows_logged, fingerprint, settings, trl_version, seconds, events,
                       prompts=len(rows), skipped=skipped, resumed_from=str(start) if start else None,
                       merged=merged)
    write_json_atomic(out / SUMMARY, summary)
    return summary


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return round(sum(values) / len(values), 6) if values else None


def _summary(cfg: GrpoConfig, rows: list[dict], fingerprint: str, settings: dict, trl_version: str,
             seconds: float, events, *, prompts: int, skipped: int,
             resumed_from: str | None, merged: str | None) -> dict:
    """The run in numbers: reward and accuracy over the first and last quarter of the logged steps, time per
    step and the share of it spent generating."""
    quarter = max(1, len(rows) // 4)
    first, last = rows[:quarter], rows[-quarter:]
    steps_timed = [r["step_seconds"] for r in rows if isinstance(r.get("step_seconds"), (int, float))]
    gen_timed = [r["generation_seconds"] for r in rows if isinstance(r.get("generation_seconds"), (int, float))]
    per_step = sum(steps_timed) / len(steps_timed) if steps_timed else None
    per_gen = sum(gen_timed) / len(gen_timed) if gen_timed else None
    return {
        "fingerprint": fingerprint, "steps": cfg.steps, "prompts": prompts, "prompts_without_gold": skipped,
        "completions_per_step": cfg.prompts_per_step * cfg.num_generations,
        "reward_first": _mean(first, "reward"), "reward_last": _mean(last, "reward"),
        "accuracy_first": _mean(first, "accuracy"), "accuracy_last": _mean(last, "accuracy"),
        "kl_last": _mean(last, "kl"), "completion_length_last": _mean(last, "completion_length"),
        "seconds": round(seconds, 2),
        "seconds_per_step": round(per_step, 4) if per_step is not None else None,
        "generation_seconds_per_step": round(per_gen, 4) if per_gen is not None else None,
        "generation_share": round(per_gen / per_step, 4) if per_gen is not None and per_step else None,
        "reward_events": events.as_dict(), "resumed_from": resumed_from, "merged": merged,
        "generation": settings["generation"], "calculator": False, "calculator_note": CALCULATOR_NOTE,
        "trl": trl_version, "settings": settings,
    }
