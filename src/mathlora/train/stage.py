"""The train and merge stages of ``mathlora run``, declared (``mathlora.run_dir.stage``), with train's own
policy: the trainer's "same run" rule is its fingerprint, and a training of other settings (finished or
interrupted) is started over only with ``--force``."""

from __future__ import annotations

from mathlora.errors import MathloraError
from mathlora.modeling.models import model_identity
from mathlora.run_dir.stage import Context, Stage
from mathlora.train.fingerprint import training_fingerprint
from mathlora.train.fingerprint import training_settings
from mathlora.train.fingerprint import changed_settings
from mathlora.train.outputs import discard_training, require_start_elsewhere
from mathlora.train.merge import merge_adapter


def _train_fingerprint(ctx: Context) -> str:
    # "same run" is the trainer's rule: settings that cannot change the result never invalidate train/
    cfg = ctx.cfg
    return training_fingerprint(cfg.train, ctx.runtime, ctx.layout.tokens, lora=cfg.lora, seed=cfg.seed)


def _train_settings(ctx: Context) -> dict:
    cfg = ctx.cfg  # recorded in the manifest: a later run names what changed
    return training_settings(cfg.train, ctx.runtime, ctx.layout.tokens, lora=cfg.lora, seed=cfg.seed)


def _start_over_when_changed(ctx: Context, fp: str) -> None:
    """``--force``: train again from step 0. A training of other settings, finished or interrupted, is never
    deleted without it: one line names the changed settings (when recorded) and the choices."""
    from mathlora.train.checkpoint import checkpoint_fingerprint, newest_valid_checkpoint

    lay = ctx.layout
    require_start_elsewhere(ctx.cfg.lora.init_from, lay.train)
    if not lay.train.exists():
        return
    if ctx.force:
        discard_training(lay.train, lay.tokens_parquet)  # a fresh run, not a resume of the old one
        return
    rec = ctx.manifest.stage_record("train")
    choices = "run with --force to retrain in place, or give a new --run folder"
    if rec and rec.get("fingerprint") != fp:
        old = rec.get("settings")
        changed = changed_settings(old, _train_settings(ctx)) if isinstance(old, dict) else []
        what = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "") if changed else \
            "settings or tokens (recorded by an older mathlora)"
        raise MathloraError(f"{lay.train} holds a finished training made with other settings (changed: "
                            f"{what}); {choices}")
    newest = newest_valid_checkpoint(lay.train_checkpoints) if rec is None else None
    if newest is not None and checkpoint_fingerprint(newest) != fp:  # an interrupted training of other settings
        raise MathloraError(f"{lay.train} holds an interrupted training made with other settings or tokens "
                            f"({newest.name}); {choices}")


def _train(ctx: Context) -> dict:
    from mathlora.train.trainer import train

    cfg = ctx.cfg
    return train(cfg.train, ctx.runtime, ctx.layout.tokens, ctx.layout.train, lora=cfg.lora, seed=cfg.seed,
                 resume=True, progress=ctx.progress)


def _merge(ctx: Context) -> dict:
    lay = ctx.layout
    # replaces only an earlier merge (its marker): a folder of the user's is refused, never deleted
    return {"merged": str(merge_adapter(ctx.runtime, ctx.cfg.model, lay.train_adapter, lay.merged,
                                        template=ctx.cfg.template))}  # the training prompt as its chat template


TRAIN = Stage("train", inputs=lambda ctx: {"tokens": ctx.layout.tokens_parquet},
              outputs=lambda ctx: [ctx.layout.train_summary, ctx.layout.train_adapter], settings=_train_settings,
              run=_train, fingerprint=_train_fingerprint, before=_start_over_when_changed)
MERGE = Stage("merge", inputs=lambda ctx: {"adapter": ctx.layout.train_adapter},
              outputs=lambda ctx: [ctx.layout.merged_config, ctx.layout.merged],
              settings=lambda ctx: {"model": ctx.cfg.model, "model_identity": model_identity(ctx.cfg.model),
                                    "runtime": ctx.runtime.fingerprint()}, run=_merge)
