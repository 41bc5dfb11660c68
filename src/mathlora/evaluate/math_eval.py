"""One model's math evaluation in one folder: predict the test set, then grade it.

With ``eval.calculator`` the model is scored twice, on the same problems: ``math.json`` with the calculator
and ``math_nocalc.json`` without it. ``mathlora run`` (the ``eval_base_math`` / ``eval_tuned_math`` stages) and
``mathlora eval model`` both call ``evaluate_math``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.math_grading import grade_file
from mathlora.evaluate.predict import predict_file
from mathlora.layout import EvalLayout
from mathlora.runtime import Runtime


def math_runs(calculator: bool) -> list[tuple[str, bool]]:
    """(file tag, with the calculator) of each evaluation: as configured, plus one without the calculator."""
    return [("", calculator)] + ([("_nocalc", False)] if calculator else [])


def math_outputs(out_dir: str | os.PathLike, calculator: bool) -> list[Path]:
    """Every file ``evaluate_math`` writes into ``out_dir``."""
    out = EvalLayout(Path(out_dir))
    return [p for tag, _ in math_runs(calculator) for p in out.math_files(tag)]


def math_baselines(baseline_dir: str | os.PathLike | None, calculator: bool) -> dict[str, Path]:
    """The baseline predictions each evaluation is compared with (by tag; none without a baseline folder)."""
    if baseline_dir is None:
        return {}
    return {tag: EvalLayout(Path(baseline_dir)).math_files(tag)[0] for tag, _ in math_runs(calculator)}


def evaluate_math(cfg: EvalConfig, runtime: Runtime, model: str, adapter: str | os.PathLike | None,
                  test_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                  baseline_dir: str | os.PathLike | None = None, template: str = "default",
                  solution_style: str = "answer", progress: bool = True) -> dict:
    """Predict and grade ``test_path`` into ``out_dir`` (see the module docstring); returns the counts."""
    out = EvalLayout(Path(out_dir))
    baselines = math_baselines(baseline_dir, cfg.calculator)
    counts: dict = {}
    calls = None
    if not cfg.calculator:  # scores of an earlier run with the calculator would mislead the report
        for stale in out.root.glob("math_nocalc*"):
            stale.unlink()
    for tag, with_calculator in math_runs(cfg.calculator):
        preds, math = out.math_files(tag)
        if tag == "_nocalc" and calls == 0:
            # the calculator never forced a token, so decoding without it is the same run
            shutil.copyfile(out.math_predictions, preds)
        else:
            gen = predict_file(cfg, runtime, model, adapter, test_path, preds, template=template,
                               progress=progress, solution_style=solution_style, calculator=with_calculator)
            calls = gen.get("calculator_calls", 0) + gen.get("calculator_refused", 0)
            counts.setdefault("tokens_per_s", gen.get("tokens_per_s"))
            counts.setdefault("predict_seconds", gen.get("seconds"))
            if with_calculator:
                counts.update(calculator_calls=gen["calculator_calls"], calculator_refused=gen["calculator_refused"])
        report = grade_file(cfg, preds, math, baseline_path=baselines.get(tag), solution_style=solution_style)
        if tag:
            counts["accuracy" + tag] = report["accuracy"]
        else:
            counts.update(accuracy=report["accuracy"], count=report["count"], correct=report["correct"],
                          unparsable=report.get("unparsable"))
    return counts
