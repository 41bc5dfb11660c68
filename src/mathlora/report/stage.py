"""The report stage of ``mathlora run``, declared (``mathlora.run_dir.stage``): ``build_report`` on the run
folder, from the scores, the predictions and the recorded stages."""

from __future__ import annotations

from pathlib import Path

from mathlora import __version__
from mathlora.run_dir.stage import Context, Stage
from mathlora.report.build import build_report


def _report_inputs(ctx: Context) -> dict[str, Path]:
    lay = ctx.layout
    base, tuned, grpo = lay.eval("base"), lay.eval("tuned"), lay.eval("grpo")
    # the predictions too (re-graded per problem for the levels, the wrong answers and the examples), the
    # held-out problems (their levels), the checkpoints' scores and the GRPO model's (grpo.enabled)
    return {str(p.relative_to(lay.root)): p for p in (
        base.math, tuned.math, base.math_nocalc, tuned.math_nocalc, base.squad, tuned.squad, lay.train_summary,
        lay.sample_table, lay.tokens_stats, lay.test_records, lay.checkpoint_scores, grpo.math, grpo.math_nocalc,
        grpo.squad, *[ev.math_files(tag)[0] for ev in (base, tuned, grpo) for tag in ("", "_nocalc")])}


def _report(ctx: Context) -> dict:
    return build_report(ctx.layout.root)


REPORT = Stage("report", inputs=_report_inputs, outputs=lambda ctx: [ctx.layout.report_html],
               settings=lambda ctx: {"version": __version__}, run=_report)
