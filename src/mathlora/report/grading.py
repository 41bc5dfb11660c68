"""Per-problem views of the report: predictions re-graded under their recorded settings, held-out levels,
examples and wrong answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.report.scores import RunScores
from mathlora.evaluate.math_grading import grade_predictions
from mathlora.label.heuristic import heuristic_difficulty


# -- per-problem grading and levels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One math evaluation as the report shows it: its name, its scores and (when re-graded) its items."""
    name: str
    which: str  # base | tuned | grpo
    calculator: bool
    report: dict
    items: dict | None  # id -> GradedItem (None: predictions missing or not re-gradable)


def regrade(predictions: Path, report: dict):
    """The per-problem grades of ``predictions`` under ``report``'s recorded rules (id -> ``GradedItem``); None
    when the file is missing or damaged, or when the grades disagree with the recorded count."""

    if not predictions.is_file() or not all(k in report for k in ("atol", "rtol", "scope")):
        return None
    try:
        items = grade_predictions(predictions, gold_path=report.get("gold"), atol=report["atol"],
                                  rtol=report["rtol"], scope=report["scope"])
    except (MathloraError, OSError):
        return None
    if sum(i.correct for i in items) != report.get("correct"):
        return None
    return {i.id: i for i in items}


def report_runs(lay: RunLayout, scores: RunScores, calculator: bool) -> list[Run]:
    """The math evaluations of the run, in the order the report shows them (the ones recorded)."""
    if calculator:
        wanted = [("base", "base", False), ("base + calculator", "base", True),
                  ("fine-tuned", "tuned", False), ("fine-tuned + calculator", "tuned", True),
                  ("GRPO", "grpo", False), ("GRPO + calculator", "grpo", True)]
    else:  # the configured run: no calculator
        wanted = [("base", "base", True), ("fine-tuned", "tuned", True), ("GRPO", "grpo", True)]
    runs = []
    for name, which, with_calc in wanted:
        report = scores.math(which, calculator=with_calc)
        if report:
            tag = "" if with_calc else "_nocalc"
            items = regrade(lay.eval(which).math_files(tag)[0], report)
            runs.append(Run(name, which, calculator and with_calc, report, items))
    return runs


def problem_levels(records: list[dict] | None) -> dict[str, int]:
    """id -> difficulty 0-5 of each held-out problem, by the heuristic judge."""

    out = {}
    for rec in records or []:
        if isinstance(rec.get("problem"), str) and "id" in rec:
            out[str(rec["id"])] = heuristic_difficulty(rec["problem"], str(rec.get("solution") or ""))
    return out


def _graded(items: dict) -> dict:
    return {k: i for k, i in items.items() if i.status != "gold_unparsable"}


def pick_examples(base: dict, tuned: dict, order: list[str], per_kind: int = 2) -> list[tuple[str, str]]:
    """(kind, id) of example problems: fixed by fine-tuning, right in both, wrong in both, broken by it; up to
    ``per_kind`` of each, in the test set's order, a family at most once per kind."""
    kinds = {"fixed by fine-tuning": (False, True), "right before and after": (True, True),
             "still wrong": (False, False), "broken by fine-tuning": (True, False)}
    out = []
    for kind, (was, now) in kinds.items():
        families: set[str] = set()
        for key in order:
            b, t = base.get(key), tuned.get(key)
            if b is None or t is None or (b.correct, t.correct) != (was, now) or t.type in families:
                continue
            families.add(t.type)
            out.append((kind, key))
            if len(families) == per_kind:
                break
    return out


def spread_wrong(tuned: dict, order: list[str], limit: int) -> list[str]:
    """Ids of up to ``limit`` wrong answers, taken in turn from each family (one family cannot fill the list)."""
    by_family: dict[str, list[str]] = {}
    for key in order:
        item = tuned.get(key)
        if item is not None and not item.correct:
            by_family.setdefault(item.type, []).append(key)
    picked: list[str] = []
    while len(picked) < limit and any(by_family.values()):
        for family in sorted(by_family):
            if by_family[family] and len(picked) < limit:
                picked.append(by_family[family].pop(0))
    return picked


def _verdict(item) -> str:
    answer = item.predicted if item.predicted is not None else "(no answer)"
    return f"{'right' if item.correct else 'wrong'}: {answer}"
