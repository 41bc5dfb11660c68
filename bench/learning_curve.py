"""Learning curve: a run's training checkpoints scored like its tuned model, per family (issue 27).

    python bench/learning_curve.py --run runs/demo_notool --steps 20,40     # the run's own eval settings

`eval.checkpoints: true` scores every checkpoint inside `mathlora run`; this scores only the steps named, into
RUN/eval/curve/step-N/ (the same files as eval/tuned/), after a run or during one (a checkpoint scored before is
read back). Prints accuracy per family per step (without the calculator, and with it when the run's
`eval.calculator` is on) beside the run's tuned model (its last step, once the run has finished), for a
decomposed run the share of step lines that the tests' checker finds right, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", required=True, help="comma-separated checkpoint steps (train/checkpoints/step-N)")
    args = ap.parse_args()
    from mathlora.app.config import load_config
    from mathlora.evaluate.math_eval import checkpoint_model, evaluate_math
    from mathlora.modeling.runtime import Runtime

    run = Path(args.run)
    cfg = load_config(run / "config.yaml", [])
    runtime = Runtime.resolve(cfg.runtime)
    rows = []
    for step in [int(s) for s in args.steps.split(",") if s.strip()]:
        folder = run / "train" / "checkpoints" / f"step-{step}"
        out = run / "eval" / "curve" / f"step-{step}"
        start = time.perf_counter()
        scored = out / "math.json"
        if not scored.is_file() or scored.stat().st_mtime < folder.stat().st_mtime:  # scored once per checkpoint
            model, adapter = checkpoint_model(cfg.model, folder)
            evaluate_math(cfg.eval, runtime, model, adapter, run / "test_records.jsonl", out,
                          baseline_dir=run / "eval" / "base", template=cfg.template,
                          solution_style=cfg.solution_style, progress=False)
        graded = json.loads((out / "math.json").read_text(encoding="utf-8"))
        rows.append({"step": step, "seconds": round(time.perf_counter() - start, 1), "accuracy": graded["accuracy"],
                     "per_type": {t: v["accuracy"] for t, v in graded["per_type"].items()},
                     "steps_right": steps_right(out / "math_predictions.jsonl")})
    if (run / "eval" / "tuned" / "math.json").is_file():  # a finished run: its tuned model too
        tuned = json.loads((run / "eval" / "tuned" / "math.json").read_text(encoding="utf-8"))
        summary = json.loads((run / "train" / "summary.json").read_text(encoding="utf-8"))
        last = summary.get("global_step") or summary.get("steps") or "last"
        rows.append({"step": last, "accuracy": tuned["accuracy"],
                     "per_type": {t: v["accuracy"] for t, v in tuned["per_type"].items()},
                     "steps_right": steps_right(run / "eval" / "tuned" / "math_predictions.jsonl")})
    print_table(rows, [f"step {r['step']}" for r in rows], lambda r, f: f"{100 * r['per_type'].get(f, 0):.1f}%",
                steps=cfg.solution_style == "decomposed")
    print(json.dumps({"bench": "learning_curve", "run": str(run), "calculator": bool(cfg.eval.calculator),
                      "rows": rows}))


def print_table(rows: list[dict], heads: list[str], cell, *, steps: bool) -> None:
    """One column a scored model (``rows``: accuracy, per_type, steps_right), one line a family (``cell(row,
    family)``), the overall accuracy first and, with ``steps``, the share of right step lines last."""
    print(f"{'family':<18} " + " ".join(f"{h:>10}" for h in heads))
    print(f"{'ALL':<18} " + " ".join(f"{100 * r['accuracy']:>9.1f}%" for r in rows))
    for f in sorted(rows[-1]["per_type"]):
        print(f"{f:<18} " + " ".join(f"{cell(r, f):>10}" for r in rows))
    if steps:
        print(f"{'steps right':<18} " + " ".join(f"{100 * r['steps_right'][0] / max(r['steps_right'][1], 1):>9.1f}%"
                                                for r in rows))


def steps_right(predictions: Path) -> tuple[int, int]:
    """(step lines the checker finds right, step lines) over the completions of the Chinese problems (see
    bench/step_methods.py); English problems have no steps to check."""
    from step_methods import checked_steps

    from mathlora.arith.families import recognise

    good = total = 0
    for line in predictions.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        problem = row["prompt"].split("### Instruction:\n")[1].split("\n\n### Response:")[0]
        if recognise(problem) is not None:
            g, t = checked_steps(problem, row.get("completion", ""))
            good, total = good + g, total + t
    return good, total


if __name__ == "__main__":
    main()
