"""Worked solutions: a recognised problem's plan (:mod:`mathlora.arith.families`) written in a solution style.

* ``answer``: the contest's original format (not built here: the record keeps its solution);
* ``steps``: each computation written out with its result, ``1234.5 - 1000 = 234.5``;
* ``calculator``: the same steps with every computation written ``<<expr=value>>`` (GSM8K's annotation), so at
  inference a calculator (:mod:`mathlora.arith.calculator`) can supply ``value`` once the model wrote ``<<expr=``;
* ``decomposed``: no tool at all; every multi-digit operation written in steps small enough to compute digit
  by digit (:mod:`mathlora.arith.decomposed`); a power or function value too long for that is written in the
  ``steps`` style and marked ``fallback``.

The last line is ``答案：<final>``. Every value a step prints comes from the calculator itself, so training
text and decoding-time results share one number format. Operands are copied from the problem (or from an
earlier step) exactly as written, which is what a small model can learn to do. ``apply_style`` applies a style
to one record, with the one rule for a record whose worked solution cannot be built (synth and rewrite both).
"""

from __future__ import annotations

from dataclasses import dataclass

from mathlora.arith.calculator import CalculatorError, annotate
from mathlora.arith.decomposed import decompose
from mathlora.arith.answers import (DEFAULT_ATOL, DEFAULT_RTOL, answers_match, extract_gold_answer,
                                       requires_lowest_terms)
from mathlora.arith.families import Plan, recognise

STYLES = ("answer", "steps", "calculator", "decomposed")
NOT_BUILT = ("refused", "mismatch")  # a recognised family whose worked solution could not be built


def render(plan: Plan, style: str) -> str:
    """The worked solution text of ``plan`` in ``style`` (``steps`` or ``calculator``)."""
    if style not in ("steps", "calculator"):
        raise ValueError(f"style must be 'steps' or 'calculator', got {style!r}")
    lines = []
    for step in plan.steps:
        if style == "calculator":
            lines.append(f"{step.label}{annotate(step.expr, step.value())}{step.unit}")
        else:
            lines.append(f"{step.label}{step.expr} = {step.value()}{step.unit}")
    lines.append(f"答案：{plan.final}{plan.unit}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Rewrite:
    status: str            # rewritten | mismatch | refused | unknown | kept (style "answer")
    family: str            # the recognised family, or "unknown"
    solution: str          # the worked solution when rewritten, else the original
    rebuilt_answer: str | None = None
    original_answer: str | None = None
    reason: str | None = None  # why the calculator refused (status "refused")
    fallback: bool = False     # style decomposed: too long to decompose, written in the steps style


def rewrite_solution(problem: str, solution: str, style: str, *, atol: float | None = None,
                     rtol: float | None = None) -> Rewrite:
    """Rebuild ``solution`` as a worked solution in ``style`` from the problem's own numbers.

    The original is kept when the family is unknown, when the calculator refuses a step (``refused``), or
    when the rebuilt final answer disagrees with the original's under the grader's rule (``atol``/``rtol``,
    default the grader's; fractions exactly, in lowest terms where the original says so).
    """
    if style not in STYLES:
        raise ValueError(f"solution style must be one of {', '.join(STYLES)}, got {style!r}")
    found = recognise(problem)
    family = found.family.name if found else "unknown"
    if style == "answer":
        return Rewrite("kept", family, solution)
    if found is None:
        return Rewrite("unknown", "unknown", solution)
    fallback = False
    try:
        if style == "decomposed":
            written = decompose(family, found.numbers)
            fallback = written is None
            text, final = written if written is not None else (render(found.plan(), "steps"), found.plan().final)
        else:
            plan = found.plan()
            text, final = render(plan, style), plan.final
    except CalculatorError as e:
        return Rewrite("refused", family, solution, reason=str(e))
    original = extract_gold_answer(solution)
    rebuilt = extract_gold_answer(f"答案：{final}")
    if not answers_match(rebuilt, original, atol=DEFAULT_ATOL if atol is None else atol,
                         rtol=DEFAULT_RTOL if rtol is None else rtol,
                         lowest_terms=requires_lowest_terms(solution)):
        return Rewrite("mismatch", family, solution, final, original.text if original else None)
    return Rewrite("rewritten", family, text, final, original.text, fallback=fallback)


def apply_style(record: dict, style: str, *, atol: float | None = None, rtol: float | None = None,
                keep_original: bool = True) -> tuple[dict, Rewrite]:
    """``record`` with its solution written in ``style``, and the :class:`Rewrite` saying what happened: the one
    path by which the synth stage (generated records) and the rewrite stage (any data) apply a solution style.

    The failure rule: a record whose worked solution cannot be built keeps its original solution (the record
    itself is returned) and the status says why: ``unknown`` (no rule for its family, as for the English
    problems), ``refused`` (the calculator refused a step; ``reason``) or ``mismatch`` (the rebuilt answer
    disagrees with the original under the grader's rule; a rule never changes an answer). Nothing raises: the
    caller counts the statuses in its stage's stats (``rewrite_report.json``; synth's ``unstyled`` count of
    ``NOT_BUILT``, which must be 0 for generated data and a test asserts so). Style ``answer`` keeps every
    record (``kept``). A rewritten record gets the worked solution and keeps its former one as
    ``original_solution`` unless ``keep_original`` is false (synth: a generated raw solution is not data).
    """
    solution = record["solution"]
    result = rewrite_solution(record["problem"], solution, style, atol=atol, rtol=rtol)
    if result.status != "rewritten":
        return record, result
    styled = {**record, "solution": result.solution}
    if keep_original:
        styled["original_solution"] = solution
    return styled, result
