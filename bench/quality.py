"""Quality: the solution styles at equal training compute, base vs fine-tuned, with and without the calculator.

    python bench/quality.py                                  # answer, steps, calculator, decomposed
    python bench/quality.py --styles calculator              # one style
    python bench/quality.py --output runs/q2 train.lr=5e-4   # any config override, applied to every style
    python bench/quality.py --styles decomposed --output runs/q_all lora.target_modules=all-linear

Each style runs `mathlora run` (the embedded demo config, the bench budget below and your overrides) into
its own run folder under --output: the same generated records, the same sample, the same number of
optimizer steps (`train.max_steps`) and the same held-out set, so only the training solutions differ. A
`decomposed` solution is longer (median about 150 SmolLM2 tokens against 45), so that style gets
`tokenize.seq_length=512` and `eval.max_new_tokens=400` (STYLE_BUDGET): the same records and optimizer steps,
about twice the tokens.
Every run decodes with the calculator on; a model that never opens `<<` makes no call, so its score with
the calculator is its score without it (the pipeline then reuses that decoding). Prints per style and
family: base and fine-tuned accuracy without / with the calculator, retention F1/EM, and one JSON line.
Targets (issue 9): calculator style >= 60% with the calculator, every family except english_math >= 40%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

BUDGET = ["synth.count=2400", "synth.test_count=300", "synth.squad_paragraphs=40", "sample.total=960",
          "train.max_steps=60", "eval.calculator=true"]
STYLES = ("answer", "steps", "calculator", "decomposed")
STYLE_BUDGET = {"decomposed": ["tokenize.seq_length=512", "eval.max_new_tokens=400"]}


def run_style(style: str, output: Path, overrides: list[str]) -> dict:
    from mathlora.app.config import load_config
    from mathlora.app.pipeline import Pipeline

    cfg = load_config(None, [*BUDGET, *STYLE_BUDGET.get(style, []), f"solution_style={style}",
                             f"run_dir={output / style}", *overrides])
    start = time.perf_counter()
    Pipeline(cfg, progress=False).run()
    root = Path(cfg.run_dir)

    def load(name):
        return json.loads((root / name).read_text(encoding="utf-8"))

    result = {"style": style, "seconds": round(time.perf_counter() - start, 1),
              "retention": load("eval/tuned/squad.json").get("retention", {})}
    for which in ("base", "tuned"):
        for tag, key in (("_nocalc", "plain"), ("", "calculator")):
            report = load(f"eval/{which}/math{tag}.json")
            result[f"{which}_{key}"] = {"accuracy": report["accuracy"], "count": report["count"],
                                        "per_type": {t: v["accuracy"] for t, v in report["per_type"].items()}}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="runs/quality")
    ap.add_argument("--styles", default=",".join(STYLES), help="comma-separated styles (default: all four)")
    ap.add_argument("overrides", nargs="*", help="config overrides, applied after the bench budget")
    args = ap.parse_args()
    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise SystemExit(f"error: unknown style(s) {', '.join(unknown)} (allowed: {', '.join(STYLES)})")
    results = [run_style(style, Path(args.output), args.overrides) for style in styles]

    def pct(x):
        return f"{100 * x:5.1f}%" if x is not None else "   n/a"

    for r in results:
        ret = r["retention"]
        print(f"\n== {r['style']} ({r['seconds']} s)  retention F1 {ret.get('base_f1')} -> {ret.get('f1')}, "
              f"EM {ret.get('base_em')} -> {ret.get('em')}: {'PASSED' if ret.get('passed') else 'FAILED'}")
        print(f"{'type':<18} {'base':>7} {'base+calc':>9} {'tuned':>7} {'tuned+calc':>10}")
        columns = [r["base_plain"], r["base_calculator"], r["tuned_plain"], r["tuned_calculator"]]
        print(f"{'ALL':<18} " + " ".join(f"{pct(c['accuracy']):>{w}}" for c, w in zip(columns, (7, 9, 7, 10)))
              + f"   ({r['tuned_calculator']['count']} problems)")
        for t in sorted(r["tuned_calculator"]["per_type"]):
            print(f"{t:<18} " + " ".join(f"{pct(c['per_type'].get(t)):>{w}}" for c, w in zip(columns, (7, 9, 7, 10))))
    print(json.dumps({"bench": "quality", "budget": BUDGET, "overrides": args.overrides, "results": results,
                      "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}))


if __name__ == "__main__":
    main()
