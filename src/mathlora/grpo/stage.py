"""The grpo stage of ``mathlora run``, declared (``mathlora.run_dir.stage``): after train (off unless
``grpo.enabled``), TRL's GRPOTrainer continues the SFT adapter on the training problems, rewarded by the grader.

Its own policy, as train's: "the same run" is the fingerprint ``grpo_train`` keeps (``grpo.outputs.grpo_settings``:
settings that cannot change the result never make ``grpo/`` stale), and a GRPO run of other settings, finished or
interrupted, is started over only with ``--force`` (one line names the changed settings)."""

from __future__ import annotations

from mathlora.errors import MathloraError
from mathlora.run_dir.stage import Context, Stage


def _settings(ctx: Context) -> dict:
    from mathlora.grpo.outputs import grpo_settings

    cfg, lay = ctx.cfg, ctx.layout
    return grpo_settings(cfg.grpo, ctx.runtime, lay.normalized, lay.train_adapter, model=cfg.model,
                         template=cfg.template, seed=cfg.seed, solution_style=cfg.solution_style, atol=cfg.eval.atol,
                         rtol=cfg.eval.rtol, answer_scope=cfg.eval.answer_scope)


def _fingerprint(ctx: Context) -> str:
    from mathlora.grpo.outputs import settings_fingerprint

    return settings_fingerprint(_settings(ctx))


def _start_over_when_changed(ctx: Context, fp: str) -> None:
    """``--force``: GRPO again from step 0. A GRPO run of other settings (finished, or checkpoints only) is never
    deleted without it."""
    from mathlora.grpo.outputs import SUMMARY, checkpoint_fingerprints, clear_outputs
    from mathlora.train.fingerprint import changed_settings

    lay = ctx.layout
    if not lay.grpo.exists():
        return
    if ctx.force:
        clear_outputs(lay.grpo)
        return
    choices = "run with --force to run GRPO again in place, or give a new --run folder"
    rec = ctx.manifest.stage_record("grpo")
    if rec and rec.get("fingerprint") != fp and (lay.grpo / SUMMARY).is_file():
        old = rec.get("settings")
        changed = changed_settings(old, _settings(ctx)) if isinstance(old, dict) else []
        what = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "") if changed else "settings"
        raise MathloraError(f"{lay.grpo} holds a finished GRPO run made with other settings (changed: {what}); "
                            f"{choices}")
    marks = checkpoint_fingerprints(lay.grpo)
    if marks and fp not in marks:
        raise MathloraError(f"{lay.grpo} holds an interrupted GRPO run made with other settings; {choices}")


def _grpo(ctx: Context) -> dict:
    from mathlora.grpo.trainer import grpo_train

    cfg, lay = ctx.cfg, ctx.layout
    summary = grpo_train(cfg.grpo, ctx.runtime, lay.normalized, lay.train_adapter, lay.grpo, model=cfg.model,
                         template=cfg.template, seed=cfg.seed, solution_style=cfg.solution_style, atol=cfg.eval.atol,
                         rtol=cfg.eval.rtol, answer_scope=cfg.eval.answer_scope, merged_dir=lay.grpo_merged,
                         resume=True, progress=ctx.progress)
    events = summary.get("reward_events") or {}
    return {k: summary.get(k) for k in ("steps", "prompts", "reward_first", "reward_last", "accuracy_first",
                                        "accuracy_last", "kl_last", "seconds_per_step", "generation_share")} | {
        "reward_events": sum(v for k, v in events.items() if k not in ("graded", "seconds"))}


GRPO = Stage("grpo", inputs=lambda ctx: {"problems": ctx.layout.normalized, "adapter": ctx.layout.train_adapter},
             outputs=lambda ctx: [ctx.layout.grpo_summary, ctx.layout.grpo_adapter, ctx.layout.grpo_merged_config,
                                  ctx.layout.grpo_merged],
             settings=_settings, run=_grpo, enabled=lambda cfg: cfg.grpo.enabled, unused_because="grpo.enabled is off",
             fingerprint=_fingerprint, before=_start_over_when_changed)
