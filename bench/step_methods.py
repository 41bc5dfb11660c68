"""Ways of writing the tool-free style's steps, trained side by side at equal compute (issue 27).

    python bench/step_methods.py --op addition --output runs/addm         # place against column, + and -
    python bench/step_methods.py --op addition --steps 120 train.lr=1e-3

A choice the `decomposed` style leaves open, a module setting of `mathlora.arith.decomposed`:

* `--op addition` (`ADDITION`): `+`/`-` split by place value (``4204.22+2000=6204.22``, one line a part) or in
  columns with carries and borrows (``c:9+3+1=13,3.20``); trained on the `+`/`-` problems.

Two more were tried this way and dropped (BENCHMARKS.md; the code is in git history): long division carrying its
quotient and rest (commit a23a238) and the small families' products one digit at a time (commit a62259c).

Each method trains on the same generated problems (the tool-free demo's config, `synth.types` the op's
families, one epoch of `--steps` x 16 records), the same optimizer steps, and is scored without a tool on the
same held-out problems. Besides the answer accuracy it prints the share of the completions' step lines that
the tests' independent checker (`tests/arith/test_decomposed.py`, which recomputes every step) finds right:
the number to watch when the answers are still wrong. The base model is not scored (it scores 0 on these).
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

CHECKER = str(Path(__file__).resolve().parents[1] / "tests" / "arith")  # the tests' checker, imported from there
if CHECKER not in sys.path:
    sys.path.insert(0, CHECKER)

OPS = {"addition": ("ADDITION", ("place", "column"), ("addition", "subtraction"))}


def checked_steps(problem: str, completion: str) -> tuple[int, int]:
    """(step lines the checker finds right, step lines) of one completion; a completion the checker cannot
    read has every line wrong."""
    from test_decomposed import check_solution

    body = [line for line in completion.splitlines() if line.strip()]
    if not body or not body[-1].startswith("答案："):
        body.append("答案：?")
    steps = len(body) - 1
    try:
        wrong = len(check_solution(problem, "\n".join(body)))
    except Exception:  # noqa: BLE001 - any text a model wrote: unreadable is wrong
        wrong = steps
    return steps - min(wrong, steps), steps


def run_method(op: str, method: str, output: Path, steps: int, overrides: list[str]) -> dict:
    from mathlora.app.config import load_config
    from mathlora.app.pipeline import Pipeline, StopAfter
    from mathlora.arith import decomposed
    from mathlora.evaluate.math_eval import evaluate_math
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.trainer import train

    setting, _, families = OPS[op]
    cfg = load_config("demo_notool", [
        f"synth.types=[{','.join(families)}]", f"synth.count={steps * 16 + 400}", "synth.test_count=48",
        f"sample.total={steps * 16}", "train.epochs=1", f"train.max_steps={steps}", f"train.save_steps=[{steps}]",
        f"run_dir={output / method}", *overrides])
    setattr(decomposed, setting, method)
    start = time.perf_counter()
    try:
        Pipeline(cfg, progress=False, stop_after="tokenize").run()
    except StopAfter:
        pass
    root = Path(cfg.run_dir)
    runtime = Runtime.resolve(cfg.runtime)
    summary = train(cfg.train, runtime, root / "tokens", root / "train", lora=cfg.lora, seed=cfg.seed, resume=True,
                    progress=False)
    trained = time.perf_counter() - start
    evaluate_math(cfg.eval, runtime, cfg.model, root / "train" / "adapter", root / "test_records.jsonl",
                  root / "eval" / "tuned", template=cfg.template, solution_style=cfg.solution_style, progress=False)
    math = json.loads((root / "eval" / "tuned" / "math.json").read_text(encoding="utf-8"))
    good = total = 0
    for line in (root / "eval" / "tuned" / "math_predictions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        problem = row["prompt"].split("### Instruction:\n")[1].split("\n\n### Response:")[0]
        g, t = checked_steps(problem, row.get("completion", ""))
        good, total = good + g, total + t
    return {"op": op, "method": method, "steps": steps, "accuracy": math["accuracy"],
            "per_type": {t: v["accuracy"] for t, v in math["per_type"].items()},
            "right_steps": good, "step_lines": total, "final_loss": summary.get("final_loss"),
            "train_seconds": round(trained, 1), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", choices=sorted(OPS), default="addition")
    ap.add_argument("--output", default=None, help="default runs/<op>_methods")
    ap.add_argument("--steps", type=int, default=80, help="optimizer steps of 16 records (default 80)")
    ap.add_argument("--methods", default=None, help="comma-separated (default: both of the op's)")
    ap.add_argument("overrides", nargs="*", help="config overrides for every method, e.g. train.lr=1e-3")
    args = ap.parse_args()
    _, methods, families = OPS[args.op]
    output = Path(args.output or f"runs/{args.op}_methods")
    rows = [run_method(args.op, m, output, args.steps, args.overrides)
            for m in (args.methods.split(",") if args.methods else methods)]
    print(f"{'method':<8} {'accuracy':>9} " + " ".join(f"{f[:8]:>8}" for f in families)
          + f" {'right steps':>14} {'loss':>7} {'s':>6}")
    for r in rows:
        share = f"{r['right_steps']}/{r['step_lines']}"
        print(f"{r['method']:<8} {100 * r['accuracy']:>8.1f}% "
              + " ".join(f"{100 * r['per_type'].get(f, 0):>7.1f}%" for f in families)
              + f" {share:>14} {r['final_loss'] or 0:>7.4f} {r['seconds']:>6.0f}")
    print(json.dumps({"bench": "step_methods", "op": args.op, "rows": rows}))


if __name__ == "__main__":
    main()
