"""The contest's real data through mathlora's data stages: recognition, rewrite, synth's answers, judge levels.

    python bench/contest_sample.py [--sample ../shared/data/contest_sample.jsonl] [--json out.json]

Reads the real sample where it lies (never copies it). Prints, per family: lines, recognised, rewritten in
the steps and calculator styles, mismatches, refusals, synth's raw answer equal byte for byte, raw answer
graded correct against itself, and the heuristic judge's level table (levels 0-5).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mathlora.evaluate.math_grading import grade_one
from mathlora.arith.families import family_of, recognise
from mathlora.label.heuristic import heuristic_difficulty
from mathlora.arith.worked import rewrite_solution

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "contest_sample.jsonl"


def measure(path: Path) -> dict:
    rows: dict[str, Counter] = defaultdict(Counter)
    levels: dict[str, Counter] = defaultdict(Counter)
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        problem, solution = rec["problem"], rec["solution"]
        chinese = re.search(r"[\u4e00-\u9fff]", problem) is not None
        family = family_of(problem) or ("unrecognised" if chinese else "english_math")
        row = rows[family]
        row["lines"] += 1
        levels[family][heuristic_difficulty(problem, solution)] += 1
        graded = grade_one("x", solution, solution, scope="final")
        row["self_graded_correct"] += graded.correct
        found = recognise(problem)
        if found is None:
            continue
        row["recognised"] += 1
        row["synth_answer_byte_equal"] += found.family.answer(*found.numbers) == solution
        for style in ("steps", "calculator"):
            result = rewrite_solution(problem, solution, style)
            row[f"{style}_{result.status}"] += 1
    return {"sample": str(path), "families": {f: dict(c) for f, c in sorted(rows.items())},
            "levels": {f: {str(k): c[k] for k in range(6)} for f, c in sorted(levels.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=DEFAULT)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if not args.sample.is_file():
        print(f"no contest sample at {args.sample}", file=sys.stderr)
        return 2
    result = measure(args.sample)
    cols = ["lines", "recognised", "steps_rewritten", "calculator_rewritten", "calculator_mismatch",
            "calculator_refused", "synth_answer_byte_equal", "self_graded_correct"]
    short = {"steps_rewritten": "steps ok", "calculator_rewritten": "calc ok", "calculator_mismatch": "mismatch",
             "calculator_refused": "refused", "synth_answer_byte_equal": "synth bytes", "self_graded_correct": "graded"}
    print(f"{'family':<18}" + "".join(f"{short.get(c, c):>12}" for c in cols))
    totals = Counter()
    for family, row in result["families"].items():
        totals.update(row)
        print(f"{family:<18}" + "".join(f"{row.get(c, 0):>12}" for c in cols))
    print(f"{'all':<18}" + "".join(f"{totals.get(c, 0):>12}" for c in cols))
    print(f"\nheuristic judge levels\n{'family':<18}" + "".join(f"{level:>6}" for level in range(6)))
    for family, row in result["levels"].items():
        print(f"{family:<18}" + "".join(f"{row[str(level)]:>6}" for level in range(6)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
