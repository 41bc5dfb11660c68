"""A model card's scores: the Hub's ``model-index`` results, the headline with its interval, the per-family
table (the numbers formatted as the report formats them, ``mathlora.report.render``)."""

from __future__ import annotations

from mathlora.modeling.adapters import hub_id
from mathlora.report.render import Doc, family_table, interval_text, pct
from mathlora.report.scores import RunScores, retention_word


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _with_interval(scores: RunScores, which: str, calculator: bool) -> str:
    """An accuracy with its Wilson 95% interval where the report records correct and count."""
    text = pct(scores.accuracy(which, calculator=calculator))
    interval = scores.interval(which, calculator=calculator)
    if interval and scores.accuracy(which, calculator=calculator) is not None:
        text += f" (95% CI {interval_text(interval)})"
    return text


SQUAD = "rajpurkar/squad"


def real_squad(scores: RunScores) -> bool:
    """Whether the retention set is the real SQuAD (``data.squad`` naming ``rajpurkar/squad`` or a file of its
    Hugging Face cache), not the demo's generated set (``raw/squad.json``) or a user's own file."""
    report = scores.tuned_squad or scores.base_squad or {}
    data = str(report.get("data") or "").replace("\\", "/")
    return hub_id(data, "datasets") == SQUAD or data.split("@")[0].split(":")[0] == SQUAD


def squad_name(scores: RunScores) -> str:
    """What the retention set is, in words: SQuAD v1.1 only when it is the real one."""
    if real_squad(scores):
        return "SQuAD v1.1"
    report = scores.tuned_squad or scores.base_squad or {}
    data = str(report.get("data") or "")
    if data.replace("\\", "/").endswith("raw/squad.json"):
        return "a generated SQuAD-style reading set (mathlora synth; not SQuAD)"
    return f"a SQuAD-format reading set ({data.replace(chr(92), '/').rsplit('/', 1)[-1] or 'unnamed'}; not SQuAD)"


def eval_results(scores: RunScores):
    from huggingface_hub import EvalResult

    results = []
    for report, name in ((scores.tuned_math, "math accuracy"), (scores.tuned_math_nocalc,
                                                               "math accuracy without the calculator")):
        if report and report.get("accuracy") is not None:
            results.append(EvalResult(task_type="text-generation", task_name="math word problems",
                                      dataset_type="mathlora-heldout-math", dataset_name="held-out math test set",
                                      metric_type="accuracy", metric_name=name,
                                      metric_value=round(float(report["accuracy"]), 4)))
    real = real_squad(scores)
    for key, metric in (("f1", "f1"), ("em", "exact_match")):
        value = scores.squad("tuned", key)
        if value is not None:
            results.append(EvalResult(task_type="question-answering", task_name="reading comprehension (retention)",
                                      dataset_type=SQUAD if real else "mathlora-generated-reading",
                                      dataset_name="SQuAD v1.1 (first question per paragraph)" if real else
                                      squad_name(scores), metric_type=metric,
                                      metric_name=f"{'SQuAD' if real else 'reading'} {key.upper()}",
                                      metric_value=round(float(value), 2)))
    return results


def _family_rows(scores: RunScores) -> list[str]:
    """The per-family table, the report's (``mathlora.report.render.family_table``) for the base and the
    fine-tuned model, and without the calculator where those were scored per family."""
    plain = any((report or {}).get("per_type") for report in (scores.base_math_nocalc, scores.tuned_math_nocalc))
    columns = [("base", scores.base_math), ("fine-tuned", scores.tuned_math)]
    if plain:
        columns += [("base, no calculator", scores.base_math_nocalc),
                    ("fine-tuned, no calculator", scores.tuned_math_nocalc)]
    header, rows = family_table(columns, total=False, count_from=scores.tuned_math)
    if not rows:
        return []
    doc = Doc()
    doc.table(header, rows)
    return ["", "Per family:", "", *doc.md[:-1]]  # the table without its closing blank line


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def score_lines(scores: RunScores | None, kind: str) -> list[str]:
    if kind == "checkpoint":
        return ["A checkpoint is not scored on its own: the run's scores are in the final adapter's card."]
    if scores is None or not (scores.base_math or scores.tuned_math or scores.base_squad or scores.tuned_squad):
        return ["Not evaluated yet: `mathlora run` scores the base and the fine-tuned model and writes the "
                "scores here."]
    lines = ["Held-out math test set (greedy decoding, graded numerically):", "",
             "| model | accuracy" + (" | without the calculator" if scores.tuned_math_nocalc or
                                     scores.base_math_nocalc else "") + " |"]
    plain = bool(scores.tuned_math_nocalc or scores.base_math_nocalc)
    lines.append("|---|---|" + ("---|" if plain else ""))
    for which, label in (("base", "base"), ("tuned", "fine-tuned")):
        row = f"| {label} | {_with_interval(scores, which, True)}"
        if plain:
            row += f" | {_with_interval(scores, which, False)}"
        lines.append(row + " |")
    count = (scores.tuned_math or scores.base_math or {}).get("count")
    if count:
        lines[0] = f"Held-out math test set ({count} problems, greedy decoding, graded numerically):"
    lines += _family_rows(scores)
    rows = scores.checkpoint_rows()
    if rows:
        lines += ["", "Per checkpoint (`eval.checkpoints`):", "", "| step | accuracy |", "|---|---|"]
        lines += [f"| {r['step']} | {pct(r.get('accuracy'))} |" for r in rows]
    if scores.base_squad or scores.tuned_squad:
        lines += ["", f"Reading comprehension kept ({squad_name(scores)}):", "", "| metric | base | fine-tuned |", "|---|---|---|",
                  f"| F1 | {_num(scores.squad('base', 'f1'))} | {_num(scores.squad('tuned', 'f1'))} |",
                  f"| EM | {_num(scores.squad('base', 'em'))} | {_num(scores.squad('tuned', 'em'))} |"]
        if scores.retention is not None:
            keep = scores.retention.get("keep", 0.9)
            lines += ["", f"Retention (fine-tuned >= {keep:.0%} of base on SQuAD F1 and EM): "
                          f"{retention_word(scores.retention)}."]
    return lines
