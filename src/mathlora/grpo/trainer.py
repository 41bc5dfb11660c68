"""The GRPO stage's entry function: TRL's ``GRPOTrainer`` continues the SFT adapter, rewarded by mathlora's own grader.

``grpo_train(cfg.grpo, runtime, problems, sft_adapter, output_dir, model=..., template=..., seed=...)`` reads the
training problems (``normalized.jsonl``: ``problem`` and the gold ``solution``), renders each in the run's
template (``mathlora.modeling.templates``), and writes::

    <output_dir>/
      checkpoints/checkpoint-N/   TRL/Trainer checkpoints (adapter, optimizer, scheduler, RNG states,
                                  trainer_state.json) + mathlora.json (the run's fingerprint)
      adapter/                    the GRPO adapter (peft format, on the base model; the tokenizer with the
                                  template as its chat template)
      merged/                     base + GRPO adapter (when ``merged_dir`` is given: ``mathlora.train.merge``)
      metrics.jsonl               per log step: reward mean/std, accuracy (the ``correct`` reward's mean), the
                                  format reward, completion length, KL (beta > 0), loss, entropy, grad norm,
                                  step seconds and the generation seconds in them, reward events
      tensorboard/                the same scalars (``grpo.report_to``: ``mathlora.modeling.tracking``)
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
  intact; Trainer restores optimizer, scheduler, RNG states and the data position (the steps' problems are laid
  out in advance, ``schedule``: a resume replays the same order);
* rollouts run without the calculator (``CALCULATOR_NOTE``).
"""

from __future__ import annotations

import random
import sys
import time
import warnings
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.arith.answers import DEFAULT_ATOL, DEFAULT_RTOL
from mathlora.grpo.config import GrpoConfig
from mathlora.grpo.metrics import GenerationTimer, metrics_callback, read_metrics
from mathlora.grpo.outputs import (METRICS, SUMMARY, claim_folder, clear_outputs, finished_summary, grpo_settings,
                                   load_prompts, newest_checkpoint, settings_fingerprint)
from mathlora.run_dir.atomic import write_json_atomic
from mathlora.modeling.runtime import Runtime

MIN_TRL = "1.16"  # the version tested (pyproject's grpo extra); older ones lack loss types and the ref adapter
CALCULATOR_NOTE = ("rollouts run without the calculator: TRL builds a GenerationConfig from grpo's generation "
                   "kwargs, which refuses a logits_processor (transformers: it must be passed to generate() "
                   "itself), so CalculatorLogitsProcessor cannot reach TRL's generate without rewriting the trainer "
                   "(or TRL's experimental rollout_func); it also forces tokens from the greedy choice while GRPO "
                   "samples, and forced calculator tokens would enter the policy loss as the model's own")


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
        vllm_mode="colocate", shuffle_dataset=False)  # our order: schedule()


def schedule(rows: list[dict], cfg: GrpoConfig, seed: int) -> list[dict]:
    """The problems of every step in order, ``prompts_per_step`` per step: one pass over the problems after another,
    each a permutation seeded by ``(seed, pass)``. TRL's sampler draws its permutations from one generator that a
    resume starts afresh, and Trainer fast-forwards only within an epoch: as one epoch of exactly ``steps``
    batches, a resume anywhere replays the uninterrupted run's order."""
    need, order, n = cfg.steps * cfg.prompts_per_step, [], 0
    while len(order) < need:
        perm = list(range(len(rows)))
        random.Random(f"{seed}:{n}").shuffle(perm)
        order += perm
        n += 1
    return [rows[i] for i in order[:need]]


def unname_base(peft_model) -> None:
    """No base model named in the adapter configs while training: peft's save (Trainer's checkpoints) would look
    the name up on the Hub to see whether the vocabulary was resized (mathlora never resizes it). The final
    adapter and each checkpoint name it again (``name_base_model``, ``metrics.name_checkpoint_base``)."""
    for config in getattr(peft_model, "peft_config", {}).values():
        config.base_model_name_or_path = None


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

    from mathlora.modeling.adapters import read_adapter_weights

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
        if merged_dir is not None and not (Path(merged_dir) / "config.json").is_file():
            done["merged"] = _merge(runtime, model, out, merged_dir, template)  # the merge alone was lost
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

    from mathlora.modeling.adapters import attach_adapter, base_model_name, name_base_model
    from mathlora.grpo.rewards import Grading, RewardEvents, correct_reward, format_reward
    from mathlora.modeling.models import load_model
    from mathlora.run_dir.atomic import atomic_path
    from mathlora.modeling.templates import exported_tokenizer, save_tokenizer

    backend = settings["generation"]
    torch.manual_seed(seed)
    tokenizer = exported_tokenizer(model, template)  # a copy: TRL sets its padding side
    base = load_model(model, runtime)
    peft_model = attach_adapter(base, sft_adapter, model_name=model, trainable=True)
    unname_base(peft_model)
    events = RewardEvents()
    grading = Grading(atol=atol, rtol=rtol, scope=scope, timeout=cfg.reward_timeout, events=events)
    timer = GenerationTimer(peft_model)
    callback = metrics_callback(out, cfg, timer, events, fingerprint, base=base_model_name(model))
    started = time.perf_counter()
    with warnings.catch_warnings():
        # TRL's calls of names transformers 5 deprecated (gradient_checkpointing, ...): nothing a user can change
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
        args = trl_arguments(cfg, runtime, out, seed=seed, progress=progress, backend=backend)
        try:
            trainer = GRPOTrainer(model=peft_model, reward_funcs=[correct_reward(grading), format_reward(grading)],
                                  args=args, train_dataset=Dataset.from_list(schedule(rows, cfg, seed)),
                                  processing_class=tokenizer,
                                  callbacks=[callback])
            quiet_logs(trainer)
            unname_base(trainer.model)  # TRL's "ref" copy too
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
    merged = _merge(runtime, model, out, merged_dir, template) if merged_dir is not None else None
    rows_logged = read_metrics(out / METRICS)
    summary = _summary(cfg, rows_logged, fingerprint, settings, trl_version, seconds, events,
                       prompts=len(rows), skipped=skipped, resumed_from=str(start) if start else None,
                       merged=merged)
    write_json_atomic(out / SUMMARY, summary)
    return summary


def _merge(runtime: Runtime, model: str, out: Path, merged_dir, template: str) -> str:
    """base + the GRPO adapter, a plain transformers folder (``mathlora.train.merge``)."""
    from mathlora.train.merge import merge_adapter

    return str(merge_adapter(runtime, model, out / "adapter", merged_dir, template=template))


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
