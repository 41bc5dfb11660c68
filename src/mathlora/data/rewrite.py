"""Rewrite stage: the competition's answer-only solutions become rule-based worked solutions.

Each record's problem is matched against the contest families' wordings (:mod:`mathlora.arith.families`); a
recognised problem gets its solution rebuilt from its own numbers (:mod:`mathlora.arith.worked`) in the chosen style (``steps``: each computation with its result; ``calculator``: each computation as
``<<expr=value>>``), ending in ``答案：<final>``. A record keeps its original solution when its family is
unknown (the English MATH-style problems), when the calculator refuses a step, or when the rebuilt final
answer disagrees with the original (the grader's tolerances, fractions exactly): a rule that misread a problem
never changes its answer. The original solution stays in the record as ``original_solution``. That rule is
:func:`mathlora.arith.worked.apply_style`'s, the synth stage's too.

``rewrite_report.json`` counts, per family, recognised / rewritten / mismatched / refused and the unknown
records, with a few mismatch and refusal examples.
"""

from __future__ import annotations

import os
from collections import defaultdict

from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.run_dir import write_json_atomic
from mathlora.arith.worked import NOT_BUILT, STYLES, apply_style

MISMATCH_EXAMPLES = 5


def rewrite_file(input_path: str | os.PathLike, output_path: str | os.PathLike,
                 report_path: str | os.PathLike | None = None, *, style: str, atol: float | None = None,
                 rtol: float | None = None) -> dict:
    """Rewrite every record's solution in ``style``; writes the records and the report, returns the counts.

    ``atol``/``rtol``: the tolerance of the check that a rebuilt answer agrees (None: the grader's defaults)."""
    if style not in STYLES:
        raise MathloraError(f"solution style {style!r}: allowed {', '.join(STYLES)}")
    per_family: dict[str, dict[str, int]] = defaultdict(
        lambda: {"recognised": 0, "rewritten": 0, "mismatch": 0, "refused": 0,
                 **({"fallback": 0} if style == "decomposed" else {})})
    totals = {"records": 0, "rewritten": 0, "mismatch": 0, "refused": 0, "unknown": 0, "kept": 0}
    examples: list[dict] = []

    def records():
        for rec in read_jsonl(input_path):
            problem, solution = rec.get("problem"), rec.get("solution")
            if not isinstance(problem, str) or not isinstance(solution, str):
                raise MathloraError(f"{input_path}: record {rec.get('id', '?')} has no problem/solution text; "
                                    "rewrite reads the output of ingest (or label/sample/normalize)")
            totals["records"] += 1
            styled, result = apply_style(rec, style, atol=atol, rtol=rtol)
            totals[result.status] += 1
            if result.family != "unknown":
                per_family[result.family]["recognised"] += 1
                if result.status in ("rewritten", *NOT_BUILT):
                    per_family[result.family][result.status] += 1
                if result.fallback:  # decomposed: too long to decompose, written in the steps style
                    per_family[result.family]["fallback"] += 1
            if result.status in NOT_BUILT and len(examples) < MISMATCH_EXAMPLES:
                examples.append({"id": rec.get("id"), "family": result.family, "status": result.status,
                                 "problem": problem, "solution": solution, "rebuilt_answer": result.rebuilt_answer,
                                 "original_answer": result.original_answer, "reason": result.reason})
            yield styled

    write_jsonl(output_path, records())
    report = {"style": style, "atol": atol, "rtol": rtol, **totals, "per_family": dict(sorted(per_family.items())),
              "mismatch_examples": examples}
    if report_path is not None:
        write_json_atomic(report_path, report)
    return report
