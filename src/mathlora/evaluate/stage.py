"""The evaluation stages of ``mathlora run``, declared (``mathlora.run_dir.stage``): the math and SQuAD
evaluations of the base model, of the tuned (merged) one and, with ``grpo.enabled``, of the GRPO model (its math
compared with the tuned model's: SFT -> GRPO per family; its SQuAD retention against the base), and, with
``eval.checkpoints``, every training checkpoint scored like the tuned model."""

from __future__ import annotations

from pathlib import Path

from mathlora.modeling.models import model_identity
from mathlora.run_dir.stage import Context, Stage
from mathlora.run_dir.same_result import result_settings
from mathlora.evaluate.math_eval import math_baselines
from mathlora.evaluate.math_eval import math_outputs
from mathlora.evaluate.math_eval import evaluate_math
from mathlora.evaluate.squad import evaluate_squad
from mathlora.evaluate.math_eval import checkpoint_outputs
from mathlora.evaluate.math_eval import evaluate_checkpoints


# the model each evaluation scores, by its place in the run folder; the adapter whose hash stands for it
MODELS = {"tuned": "merged", "grpo": "grpo/merged"}


def _eval_model(ctx: Context, which: str) -> str:
    return ctx.cfg.model if which == "base" else str(ctx.layout.root / MODELS[which])


def _eval_settings(ctx: Context, which: str) -> dict:
    cfg = ctx.cfg
    # the tuned model by its place in the run folder (a moved folder stays fresh) and the base it was merged on
    return {"eval": result_settings(cfg.eval), "template": cfg.template,
            "model": cfg.model if which == "base" else MODELS[which], "model_identity": model_identity(ctx.cfg.model),
            "solution_style": cfg.solution_style, "runtime": ctx.runtime.fingerprint()}


def _tuned_inputs(ctx: Context, which: str) -> dict[str, Path]:
    # the merged model is a function of base + adapter: the adapter's hash stands for it
    return {"tuned": {"adapter": ctx.layout.train_adapter}, "grpo": {"adapter": ctx.layout.grpo_adapter}}.get(which, {})


def _math_baseline(ctx: Context, which: str) -> Path | None:
    """What a model's math is compared with: the base model's (tuned), the tuned model's (grpo: SFT -> GRPO)."""
    return {"tuned": ctx.layout.eval("base").root, "grpo": ctx.layout.eval("tuned").root}.get(which)


def _math_inputs(ctx: Context, which: str) -> dict[str, Path]:
    baseline = _math_baseline(ctx, which)
    return {"test": ctx.layout.test_records, **_tuned_inputs(ctx, which),
            **{f"baseline{tag}": p for tag, p in math_baselines(baseline, ctx.cfg.eval.calculator).items()}}


def _math_outputs(ctx: Context, which: str) -> list[Path]:
    return math_outputs(ctx.layout.eval(which).root, ctx.cfg.eval.calculator)


def _run_math(ctx: Context, which: str) -> dict:
    cfg, lay = ctx.cfg, ctx.layout
    return evaluate_math(cfg.eval, ctx.runtime, _eval_model(ctx, which), None, lay.test_records,
                         lay.eval(which).root, baseline_dir=_math_baseline(ctx, which),
                         template=cfg.template, solution_style=cfg.solution_style, progress=ctx.progress)


def _squad_baseline(ctx: Context, which: str) -> Path | None:
    return ctx.layout.eval("base").squad if which != "base" else None  # retention: against the base model


def _squad_inputs(ctx: Context, which: str) -> dict[str, Path]:
    baseline = _squad_baseline(ctx, which)
    return {"squad": ctx.source("squad"), **_tuned_inputs(ctx, which), **({"baseline": baseline} if baseline else {})}


def _run_squad(ctx: Context, which: str) -> dict:
    res = evaluate_squad(ctx.cfg.eval, ctx.runtime, _eval_model(ctx, which), None, ctx.source("squad"),
                         ctx.layout.eval(which).squad, progress=ctx.progress,
                         baseline_path=_squad_baseline(ctx, which))
    return {k: res[k] for k in ("f1", "em", "count") if k in res} | (
        {"retained": res["retention"]["passed"]} if "retention" in res else {})


def _enabled(which: str):
    return (lambda cfg: cfg.grpo.enabled) if which == "grpo" else (lambda cfg: True)


def eval_stages(which: str) -> tuple[Stage, Stage]:
    """The math and SQuAD evaluations of the ``base`` model, the ``tuned`` (merged) one or the ``grpo`` one."""
    off = "grpo.enabled is off" if which == "grpo" else ""
    math = Stage(f"eval_{which}_math", inputs=lambda ctx: _math_inputs(ctx, which),
                 outputs=lambda ctx: _math_outputs(ctx, which), settings=lambda ctx: _eval_settings(ctx, which),
                 run=lambda ctx: _run_math(ctx, which), enabled=_enabled(which), unused_because=off)
    squad = Stage(f"eval_{which}_squad", inputs=lambda ctx: _squad_inputs(ctx, which),
                  outputs=lambda ctx: [ctx.layout.eval(which).squad], settings=lambda ctx: _eval_settings(ctx, which),
                  run=lambda ctx: _run_squad(ctx, which), enabled=_enabled(which), unused_because=off)
    return math, squad


# -- checkpoints (eval.checkpoints): every training checkpoint scored like the tuned model ------------------

def _checkpoint_inputs(ctx: Context) -> dict[str, Path]:
    from mathlora.train.checkpoint import CHECKSUM_FILE, list_checkpoints

    lay = ctx.layout
    # a checkpoint's checksum.json stands for its files (its merged/ model is a function of base + adapter)
    return {"test": lay.test_records,
            **{f"baseline{tag}": p for tag, p in math_baselines(lay.eval("base").root, ctx.cfg.eval.calculator).items()},
            **{f"step-{step}": folder / CHECKSUM_FILE for step, folder in list_checkpoints(lay.train_checkpoints)}}


def _checkpoint_outputs(ctx: Context) -> list[Path]:
    return checkpoint_outputs(ctx.layout.train_checkpoints, ctx.layout.eval_checkpoints, ctx.cfg.eval.calculator)


def _run_checkpoints(ctx: Context) -> dict:
    cfg, lay = ctx.cfg, ctx.layout
    return evaluate_checkpoints(cfg.eval, ctx.runtime, cfg.model, lay.train_checkpoints, lay.test_records,
                                lay.eval_checkpoints, baseline_dir=lay.eval("base").root, template=cfg.template,
                                solution_style=cfg.solution_style, progress=ctx.progress)


EVAL_CHECKPOINTS = Stage("eval_checkpoints", inputs=_checkpoint_inputs, outputs=_checkpoint_outputs,
                         settings=lambda ctx: {**_eval_settings(ctx, "tuned"), "model": "train/checkpoints"},
                         run=_run_checkpoints, enabled=lambda cfg: cfg.eval.checkpoints,
                         unused_because="eval.checkpoints is off")
