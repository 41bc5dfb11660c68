"""A run's models on the contest's real problems: base, tuned and chosen checkpoints, per family (issue 27).

    python bench/contest_eval.py --run runs/demo_notool [--steps 100,200] [--per-family 12]

The held-out set of `mathlora run` is generated in the contest's formats; this scores the same models on real
lines that nobody here wrote: a stratified draw of `../shared/data/contest_sample.jsonl` (`--sample`; read where
it lies, never copied into the repository), `--per-family` lines of each family (all of a smaller one; seed
0), with the run's own eval settings (calculator on or off, stops, token budget, grading). The real sample has
no fraction or mass lines, which the generated set has. Writes RUN/eval/contest/ (`subset.jsonl`, then one
folder per model with the files of eval/tuned/); a model scored before on the same subset is read back.
Prints per family the right answers of each model, for a decomposed run the share of the completions' step
lines that the tests' checker finds right, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "contest_sample.jsonl"


def draw(sample: Path, per_family: int, seed: int = 0) -> list[dict]:
    """``per_family`` lines of each family of the sample (fewer where it has fewer), as test records."""
    from mathlora.arith.families import family_of

    by_family: dict[str, list[dict]] = defaultdict(list)
    for i, line in enumerate(sample.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        rec = json.loads(line)
        chinese = re.search(r"[\u4e00-\u9fff]", rec["problem"]) is not None
        family = family_of(rec["problem"]) or ("unrecognised" if chinese else "english_math")
        by_family[family].append({"id": f"contest{i:05d}", "problem": rec["problem"], "solution": rec["solution"],
                                  "type": family})
    rng = random.Random(seed)
    return [r for f in sorted(by_family) for r in rng.sample(by_family[f], min(per_family, len(by_family[f])))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", default="", help="comma-separated checkpoint steps (train/checkpoints/step-N)")
    ap.add_argument("--per-family", type=int, default=12)
    ap.add_argument("--sample", default=str(DEFAULT))
    args = ap.parse_args()
    sample = Path(args.sample)
    if not sample.is_file():
        sys.exit(f"error: the real sample is not at {sample} (give --sample)")
    from learning_curve import print_table, steps_right

    from mathlora.app.config import load_config
    from mathlora.evaluate.math_eval import checkpoint_model, evaluate_math
    from mathlora.modeling.runtime import Runtime

    run = Path(args.run)
    cfg = load_config(run / "config.yaml", [])
    runtime = Runtime.resolve(cfg.runtime)
    root = run / "eval" / "contest"
    root.mkdir(parents=True, exist_ok=True)
    subset = root / "subset.jsonl"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in draw(sample, args.per_family))
    if not subset.is_file() or subset.read_text(encoding="utf-8") != text:
        subset.write_text(text, encoding="utf-8")  # a new draw: every model is scored again
    models = [("base", cfg.model, None), ("tuned", cfg.model, run / "train" / "adapter")]
    for step in [int(s) for s in args.steps.split(",") if s.strip()]:
        models.insert(-1, (f"step-{step}", *checkpoint_model(cfg.model, run / "train" / "checkpoints" / f"step-{step}")))
    rows = []
    for name, model, adapter in models:
        out = root / name
        scored = out / "math.json"
        start = time.perf_counter()
        newest = max([subset.stat().st_mtime] + ([Path(adapter).stat().st_mtime] if adapter else []))
        if not scored.is_file() or scored.stat().st_mtime < newest:
            evaluate_math(cfg.eval, runtime, model, adapter, subset, out,
                          baseline_dir=root / "base" if name != "base" else None, template=cfg.template,
                          solution_style=cfg.solution_style, progress=False)
        graded = json.loads(scored.read_text(encoding="utf-8"))
        rows.append({"model": name, "seconds": round(time.perf_counter() - start, 1), "correct": graded["correct"],
                     "count": graded["count"], "accuracy": graded["accuracy"],
                     "per_type": {t: [v["correct"], v["count"]] for t, v in graded["per_type"].items()},
                     "steps_right": steps_right(out / "math_predictions.jsonl")})
    print_table(rows, [r["model"] for r in rows], lambda r, f: "%d/%d" % tuple(r["per_type"].get(f, [0, 0])),
                steps=cfg.solution_style == "decomposed")
    print(json.dumps({"bench": "contest_eval", "run": str(run), "sample": str(sample), "calculator":
                      bool(cfg.eval.calculator), "rows": rows}))


if __name__ == "__main__":
    main()
