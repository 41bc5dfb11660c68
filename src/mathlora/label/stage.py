"""The label stage of ``mathlora run``, declared (``mathlora.run_dir.stage``): ``label_file`` on the ingested
records, with its own policy: a run always asks again about records that failed before."""

from __future__ import annotations

from mathlora.errors import MathloraError
from mathlora.modeling.models import model_identity
from mathlora.run_dir.stage import Context, Stage
from mathlora.run_dir.same_result import result_settings
from mathlora.label.run import judge_source
from mathlora.label.run import failure_message, label_file


def _label_settings(ctx: Context) -> dict:
    settings = result_settings(ctx.cfg.label)
    if ctx.cfg.label.judge == "local":
        settings["runtime"] = ctx.runtime.fingerprint()
        settings["model_identity"] = model_identity(ctx.cfg.label.model or ctx.cfg.model)  # the judge's
    if ctx.cfg.label.judge == "heuristic":  # new rules (a new version) label again
        settings["source"] = judge_source(ctx.cfg.label, ctx.cfg.model)
    return {"label": settings, "model": ctx.cfg.model}


def _forget_failed_label(ctx: Context, fp: str) -> None:
    if ((ctx.manifest.stage_record("label") or {}).get("counts") or {}).get("failed"):
        ctx.manifest.forget("label")  # recorded with failures by an older mathlora: not done


def _label(ctx: Context) -> dict:
    lay = ctx.layout
    # a run always asks again about records that failed before: a label stage with failures is not done
    summary = label_file(ctx.cfg.label.model_copy(update={"retry_failed": True}), ctx.runtime, lay.records,
                         lay.labeled, base_model=ctx.cfg.model, progress=ctx.progress)
    if summary["failed"]:
        raise MathloraError(failure_message(summary, lay.labeled) + "; the next `mathlora run` asks them again")
    return summary


LABEL = Stage("label", inputs=lambda ctx: {"input": ctx.layout.records}, outputs=lambda ctx: [ctx.layout.labeled],
              settings=_label_settings, run=_label, before=_forget_failed_label)
