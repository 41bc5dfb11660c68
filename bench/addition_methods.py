"""Addition methods for the tool-free style: place-value split (Goat) against columns with carries (issue 27).

    python bench/addition_methods.py --output runs/addm                  # 80 steps each, + and - only
    python bench/addition_methods.py --output runs/addm --steps 120 train.lr=1e-3

The issue leaves the `decomposed` style's `+`/`-` steps open: split the second operand by place value
(``4204.22+2000=6204.22``, one line a part) or write columns with carries and borrows
(``c:9+3+1=13,3.20``, one line a digit; see `mathlora.arith.digits.columns`). This trains both on the same
generated `+`/`-` problems (the tool-free demo's config: `synth.types=[addition,subtraction]`, one epoch of
`--steps` x 16 records), the same optimizer steps, and scores each tuned adapter without a tool on the same
held-out `+`/`-` problems. Besides the answer accuracy it prints the share of step lines whose arithmetic
holds (``x op y = z``, recomputed exactly), the number to watch when the answers are still wrong. The base
model is not scored (it scores 0 on these). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from fractions import Fraction
from pathlib import Path

METHODS = ("place", "column")
STEP = re.compile(r"^(?:[a-z]:)?([\d.+\-]+)=([\d.]+)(?:,[\d.]+)?$")


def step_lines(text: str) -> tuple[int, int]:
    """(step lines whose arithmetic holds, step lines) of a completion: lines ``x+y=z`` / ``x-y-1=z``,
    with or without a column label and the result so far."""
    good = total = 0
    for line in text.splitlines():
        m = STEP.match(line.strip())
        if not m or not re.search(r"\d[+-]", m[1]):
            continue
        total += 1
        terms = re.findall(r"[+-]?[\d.]+", m[1])
        try:
            good += sum(Fraction(t) for t in terms) == Fraction(m[2])
        except (ValueError, ZeroDivisionError):
            pass
    return good, total


def run_method(method: str, output: Path, steps: int, overrides: list[str]) -> dict:
    from mathlora.app.config import load_config
    from mathlora.app.pipeline import Pipeline, StopAfter
    from mathlora.arith import decomposed
    from mathlora.evaluate.math_eval import evaluate_math
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.trainer import train

    cfg = load_config("demo_notool", [
        "synth.types=[addition,subtraction]", f"synth.count={steps * 16 + 400}", "synth.test_count=48",
        f"sample.total={steps * 16}", "train.epochs=1", f"train.max_steps={steps}", f"train.save_steps=[{steps}]",
        f"run_dir={output / method}", *overrides])
    decomposed.ADDITION = method
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
        g, t = step_lines(json.loads(line).get("completion", ""))
        good, total = good + g, total + t
    return {"method": method, "steps": steps, "accuracy": math["accuracy"],
            "per_type": {t: v["accuracy"] for t, v in math["per_type"].items()},
            "right_steps": good, "step_lines": total, "final_loss": summary.get("final_loss"),
            "train_seconds": round(trained, 1), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="runs/addition_methods")
    ap.add_argument("--steps", type=int, default=80, help="optimizer steps of 16 records (default 80)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("overrides", nargs="*", help="config overrides for every method, e.g. train.lr=1e-3")
    args = ap.parse_args()
    rows = [run_method(m, Path(args.output), args.steps, args.overrides) for m in args.methods.split(",")]
    print(f"{'method':<8} {'accuracy':>9} {'addition':>9} {'subtr.':>7} {'right steps':>14} {'loss':>7} {'s':>6}")
    for r in rows:
        share = f"{r['right_steps']}/{r['step_lines']}"
        print(f"{r['method']:<8} {100 * r['accuracy']:>8.1f}% {100 * r['per_type'].get('addition', 0):>8.1f}% "
              f"{100 * r['per_type'].get('subtraction', 0):>6.1f}% {share:>14} {r['final_loss'] or 0:>7.4f} "
              f"{r['seconds']:>6.0f}")
    print(json.dumps({"bench": "addition_methods", "rows": rows}))


if __name__ == "__main__":
    main()
