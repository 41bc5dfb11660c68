"""One model's math evaluation in one folder: predict the test set, then grade it.

With ``eval.calculator`` the model is scored twice, on the same problems: ``math.json`` with the calculator
and ``math_nocalc.json`` without it. ``mathlora run`` (the ``eval_base_math`` / ``eval_tuned_math`` stages) and
``mathlora eval model`` both call ``evaluate_math``. With ``eval.checkpoints`` the ``eval_checkpoints`` stage
calls ``evaluate_checkpoints``: the same evaluation of every training checkpoint, one folder per step, and
``scores.json`` with the accuracy per step.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.evaluate.backend import hold_model
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.math_grading import grade_file
from mathlora.evaluate.predict import predict_file
from mathlora.run_dir.layout import EvalLayout
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.atomic import write_json_atomic
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.templates import DEFAULT_TEMPLATE

SCORES_FILE = "scores.json"  # RunLayout.checkpoint_scores
STEP_FOLDER = re.compile(r"^step-\d+$")


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
                  baseline_dir: str | os.PathLike | None = None, template: str = DEFAULT_TEMPLATE,
                  solution_style: str = "answer", progress: bool = True) -> dict:
    """Predict and grade ``test_path`` into ``out_dir`` (see the module docstring); returns the counts."""
    out = EvalLayout(Path(out_dir))
    baselines = math_baselines(baseline_dir, cfg.calculator)
    counts: dict = {}
    calls = None
    held = hold_model(cfg, runtime, model, adapter)  # one load for the predictions with and without the calculator
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
                               progress=progress, solution_style=solution_style, calculator=with_calculator,
                               held=held)
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


def checkpoint_model(base_model: str, checkpoint: Path) -> tuple[str, Path | None]:
    """(model, adapter) that scores a checkpoint: its ``merged/`` model when ``train.merge_checkpoints`` wrote
    one (a plain transformers folder), else the base model with the checkpoint's adapter."""
    merged = checkpoint / "merged"
    if (merged / "config.json").is_file():
        return str(merged), None
    return base_model, checkpoint


def checkpoint_outputs(checkpoints_dir: str | os.PathLike, out_dir: str | os.PathLike, calculator: bool) -> list[Path]:
    """Every file ``evaluate_checkpoints`` writes: each checkpoint's math files (but those of the checkpoints its
    ``scores.json`` says it skipped as damaged), then ``scores.json``."""
    from mathlora.train.checkpoint import list_checkpoints

    out = Path(out_dir)
    skipped: set = set()
    if (out / SCORES_FILE).is_file():
        try:
            recorded = read_json_document(out / SCORES_FILE, SCORES_FILE)
            skipped = {s.get("step") for s in recorded.get("skipped") or [] if isinstance(s, dict)}
        except (MathloraError, AttributeError):
            skipped = set()  # damaged: the stage runs again and rewrites it
    return [p for step, _ in list_checkpoints(checkpoints_dir) if step not in skipped
            for p in math_outputs(out / f"step-{step}", calculator)] + [out / SCORES_FILE]


def evaluate_checkpoints(cfg: EvalConfig, runtime: Runtime, model: str, checkpoints_dir: str | os.PathLike,
                         test_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                         baseline_dir: str | os.PathLike | None = None, template: str = DEFAULT_TEMPLATE,
                         solution_style: str = "answer", progress: bool = True) -> dict:
    """Score every training checkpoint under ``checkpoints_dir`` (``step-N/``) on ``test_path``.

    Each complete checkpoint is checked first (its checksum, its files, finite weights: a damaged one is
    skipped with its reason, never scored), then evaluated by ``evaluate_math`` into ``out_dir/step-N/``
    with ``checkpoint_model``'s choice of model. ``out_dir/scores.json`` lists per step the model used,
    ``accuracy``, ``correct``, ``count`` (and ``accuracy_nocalc``, ``correct_nocalc`` with ``eval.calculator``)
    and the skipped checkpoints; it is what the report plots over steps. The folders of checkpoints that
    no longer exist or were skipped are removed (only ``step-N`` folders inside ``out_dir``).
    """
    from mathlora.train.checkpoint import checkpoint_problem, list_checkpoints

    out = Path(out_dir)
    found = list_checkpoints(checkpoints_dir)
    if not found:
        raise MathloraError(f"eval.checkpoints: no checkpoint in {checkpoints_dir} to score (train.save_steps "
                            "decides which steps get one; the last step always does)")
    steps = {f"step-{step}" for step, _ in found}
    if out.is_dir():
        for old in out.iterdir():
            if old.is_dir() and STEP_FOLDER.match(old.name) and old.name not in steps:
                shutil.rmtree(old)
    rows, skipped = [], []
    for step, folder in found:
        problem = checkpoint_problem(folder)
        if problem is not None:
            print(f"warning: checkpoint {folder} is damaged ({problem}); not scored", flush=True)
            skipped.append({"step": step, "reason": problem})
            shutil.rmtree(out / f"step-{step}", ignore_errors=True)  # its old scores would mislead
            continue
        scored_model, adapter = checkpoint_model(model, folder)
        counts = evaluate_math(cfg, runtime, scored_model, adapter, test_path, out / f"step-{step}",
                               baseline_dir=baseline_dir, template=template, solution_style=solution_style,
                               progress=progress)
        row = {"step": step, "model": "merged" if adapter is None else "adapter",
               **{k: counts[k] for k in ("accuracy", "correct", "count") if k in counts}}
        for tag, _ in math_runs(cfg.calculator)[1:]:
            graded = read_json_document(EvalLayout(out / f"step-{step}").math_files(tag)[1], f"math{tag}.json")
            row.update({f"accuracy{tag}": graded.get("accuracy"), f"correct{tag}": graded.get("correct")})
        rows.append(row)
    write_json_atomic(out / SCORES_FILE, {"calculator": cfg.calculator, "checkpoints": rows, "skipped": skipped})
    best = max(rows, key=lambda r: (r.get("accuracy", 0), r["step"]), default=None)
    return {"scored": len(rows), "skipped": len(skipped),
            **({"best_step": best["step"], "best_accuracy": best.get("accuracy")} if best else {})}
