"""Grading math predictions: final answers compared numerically, accuracy overall and per problem type.

Input: prediction lines ``{"id", "completion", "gold"?, "type"?}`` (``predict`` writes them). The gold
solution comes from ``--gold`` (lines ``{"id", "solution", "type"?}``, joined by id) or else from each line's
``gold`` field. Extraction and comparison rules are in ``mathlora.arith.answers``.

Items whose gold has no parsable answer are left out of the accuracy and counted as ``gold_unparsable``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

from mathlora.errors import MathloraError
from mathlora.arith.answers import (DEFAULT_ATOL, DEFAULT_RTOL, Answer, answers_match, extract_gold_answer, extract_prediction_answer,
                                      requires_lowest_terms, resolve_scope)
from mathlora.evaluate.config import EvalConfig
from mathlora.arith.families import family_of
from mathlora.run_dir.records import read_records
from mathlora.run_dir import write_json_atomic

UNKNOWN_TYPE = "unknown"


@dataclass(frozen=True)
class GradedItem:
    id: str
    type: str
    status: str  # correct | wrong | unparsable | gold_unparsable
    predicted: str | None
    gold_answer: str | None
    completion: str
    too_large: bool = False  # the predicted number is beyond the parsing caps (graded unparsable)

    @property
    def correct(self) -> bool:
        return self.status == "correct"


def grade_one(item_id: str, completion: str, gold_solution: str, *, type_: str = UNKNOWN_TYPE,
              atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, scope: str = "first_line") -> GradedItem:
    gold = extract_gold_answer(gold_solution)
    pred = extract_prediction_answer(completion, scope)
    if gold is None or (not gold.is_number and gold.latex is None):
        status = "gold_unparsable"
    elif pred is None or (not pred.is_number and pred.latex is None):
        status = "unparsable"
    else:
        status = "correct" if answers_match(pred, gold, atol=atol, rtol=rtol,
                                            lowest_terms=requires_lowest_terms(gold_solution)) else "wrong"
    return GradedItem(id=item_id, type=type_, status=status, predicted=_text(pred), gold_answer=_text(gold),
                      completion=completion, too_large=pred is not None and pred.too_large)


def _text(a: Answer | None) -> str | None:
    return None if a is None else a.text


def _index_by_id(records: list[dict], path: str | os.PathLike, what: str) -> dict[str, dict]:
    if not records:
        raise MathloraError(f"{what} file {path} is empty")
    out: dict[str, dict] = {}
    for n, rec in enumerate(records, 1):
        if "id" not in rec:
            raise MathloraError(f"{what} file {path}: record {n} has no 'id'")
        key = str(rec["id"])
        if key in out:
            raise MathloraError(f"{what} file {path}: duplicate id {key!r}")
        out[key] = rec
    return out


def _check_same_ids(a: dict, b: dict, a_name: str, b_name: str) -> None:
    missing = [k for k in a if k not in b]
    extra = [k for k in b if k not in a]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} {a_name} ids missing from {b_name} (e.g. {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} {b_name} ids not in {a_name} (e.g. {extra[0]!r})")
        raise MathloraError(f"{a_name} and {b_name} do not line up by id: " + "; ".join(parts))


def _completion_of(rec: dict, path, n: str) -> str:
    value = rec.get("completion", rec.get("answer"))
    if value is None:
        raise MathloraError(f"predictions file {path}: id {n!r} has neither 'completion' nor 'answer'")
    return str(value)


def grade_predictions(predictions_path, *, gold_path=None, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                      scope: str = "first_line") -> list[GradedItem]:
    """Grade every prediction line against its gold solution (by id)."""
    preds = _index_by_id(read_records(predictions_path, "predictions"), predictions_path, "predictions")
    if gold_path is not None:
        golds = _index_by_id(read_records(gold_path, "gold"), gold_path, "gold")
        _check_same_ids(preds, golds, "predictions", "gold")
        for key, g in golds.items():
            if "solution" not in g:
                raise MathloraError(f"gold file {gold_path}: id {key!r} has no 'solution'")
    else:
        without = [k for k, p in preds.items() if "gold" not in p]
        if without:
            raise MathloraError(f"predictions file {predictions_path} has no 'gold' for id {without[0]!r} "
                                f"({len(without)} lines); give --gold FILE")
        golds = {k: {"solution": p["gold"], "type": p.get("type")} for k, p in preds.items()}
    items = []
    for key, p in preds.items():
        g = golds[key]
        type_ = p.get("type") or g.get("type") or family_of(str(g.get("problem") or p.get("problem") or "")) \
            or UNKNOWN_TYPE
        items.append(grade_one(key, _completion_of(p, predictions_path, key), str(g["solution"] or ""),
                               type_=str(type_), atol=atol, rtol=rtol, scope=scope))
    return items


def _ratio(correct: int, count: int) -> float:
    return round(correct / count, 6) if count else 0.0


def summarize(items: list[GradedItem], *, wrong_samples: int = 20) -> dict:
    graded = [i for i in items if i.status != "gold_unparsable"]
    per_type: dict[str, dict] = defaultdict(lambda: {"count": 0, "correct": 0})
    for i in graded:
        per_type[i.type]["count"] += 1
        per_type[i.type]["correct"] += i.correct
    correct = sum(i.correct for i in graded)
    wrong = [i for i in graded if not i.correct]
    return {
        "accuracy": _ratio(correct, len(graded)),
        "count": len(graded),
        "correct": correct,
        "unparsable": sum(i.status == "unparsable" for i in graded),
        "unparsable_too_large": sum(i.status == "unparsable" and i.too_large for i in graded),
        "gold_unparsable": len(items) - len(graded),
        "per_type": {t: {**v, "accuracy": _ratio(v["correct"], v["count"])} for t, v in sorted(per_type.items())},
        "wrong_samples": [{"id": i.id, "type": i.type, "status": i.status, "predicted": i.predicted,
                           "gold_answer": i.gold_answer, "completion": i.completion[:300]}
                          for i in wrong[:wrong_samples]],
    }


def compare_reports(baseline: dict, current: dict, baseline_items: list[GradedItem],
                    current_items: list[GradedItem]) -> dict:
    """Before/after: accuracy change overall and per type, and how many items were fixed or broken."""
    before = {i.id: i.correct for i in baseline_items if i.status != "gold_unparsable"}
    after = {i.id: i.correct for i in current_items if i.status != "gold_unparsable"}
    types = sorted(set(baseline["per_type"]) | set(current["per_type"]))
    per_type = {}
    for t in types:
        b = baseline["per_type"].get(t, {"accuracy": 0.0, "count": 0})
        c = current["per_type"].get(t, {"accuracy": 0.0, "count": 0})
        per_type[t] = {"before": b["accuracy"], "after": c["accuracy"],
                       "change": round(c["accuracy"] - b["accuracy"], 6), "count": c["count"]}
    return {
        "before": baseline["accuracy"], "after": current["accuracy"],
        "change": round(current["accuracy"] - baseline["accuracy"], 6),
        "fixed": sum(1 for k, ok in after.items() if ok and not before.get(k, False)),
        "broken": sum(1 for k, ok in after.items() if not ok and before.get(k, False)),
        "per_type": per_type,
    }


def grade_file(cfg: EvalConfig, predictions_path, output_path, *, gold_path=None, baseline_path=None,
               solution_style: str = "answer") -> dict:
    """Grade a predictions file, write the JSON report to ``output_path`` and return it.

    ``cfg`` gives the tolerances (``atol``, ``rtol``), where an answer is read (``answer_scope``; ``auto`` is
    resolved by the ``solution_style`` the model was trained on) and how many wrong answers the report lists
    (``wrong_samples``).

    With ``baseline_path`` (the predictions of another model on the same problems) the report gains a
    ``comparison`` section: before/after accuracy, per-type change, fixed and broken counts.
    """
    atol, rtol, wrong_samples = cfg.atol, cfg.rtol, cfg.wrong_samples
    scope = resolve_scope(cfg.answer_scope, solution_style)
    items = grade_predictions(predictions_path, gold_path=gold_path, atol=atol, rtol=rtol, scope=scope)
    report = {"predictions": str(predictions_path), "gold": str(gold_path) if gold_path else None,
              "atol": atol, "rtol": rtol, "scope": scope, **summarize(items, wrong_samples=wrong_samples)}
    if baseline_path is not None:
        base_items = grade_predictions(baseline_path, gold_path=gold_path, atol=atol, rtol=rtol, scope=scope)
        _check_same_ids({i.id: i for i in items}, {i.id: i for i in base_items}, "predictions", "baseline")
        baseline = summarize(base_items, wrong_samples=0)
        report["baseline"] = str(baseline_path)
        report["comparison"] = compare_reports(baseline, report, base_items, items)
    write_json_atomic(output_path, report)
    return report
