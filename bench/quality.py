"""Quality: the demo recipe with a larger budget; base vs fine-tuned held-out accuracy and retention.

    python bench/quality.py                          # up to ~60 minutes on a 2-core CPU
    python bench/quality.py --output runs/q2 train.lr=1e-4 train.epochs=3   # any config override

Runs `mathlora run` (the embedded demo config plus the overrides below and yours) into its own run folder,
then prints accuracy before/after overall and per problem type, retention F1/EM with the 90% verdict, and
one JSON line. Target: at least +15 accuracy points with retention F1 and EM at least 90% of the base.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

BUDGET = ["synth.count=3000", "synth.test_count=300", "synth.squad_paragraphs=100",
          "sample.total=1600", "train.epochs=2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="runs/quality")
    ap.add_argument("overrides", nargs="*", help="config overrides, applied after the bench budget")
    args = ap.parse_args()

    from mathlora.config import load_config
    from mathlora.pipeline import Pipeline

    overrides = dict(item.split("=", 1) for item in [*BUDGET, f"run_dir={args.output}", *args.overrides])
    from mathlora.config import parse_override

    cfg = load_config(None, {k: parse_override(f"{k}={v}")[1] for k, v in overrides.items()})
    start = time.perf_counter()
    Pipeline(cfg).run()
    seconds = time.perf_counter() - start
    root = Path(cfg.run_dir)

    def load(name):
        return json.loads((root / name).read_text(encoding="utf-8"))

    base, tuned = load("eval/base/math.json"), load("eval/tuned/math.json")
    squad = load("eval/tuned/squad.json")
    ret = squad.get("retention", {})
    print(f"{'type':<18} {'n':>4} {'base':>7} {'tuned':>7}")
    for t in sorted(tuned["per_type"]):
        b, a = base["per_type"].get(t, {}), tuned["per_type"][t]
        print(f"{t:<18} {a['count']:>4} {100 * b.get('accuracy', 0):>6.1f}% {100 * a['accuracy']:>6.1f}%")
    gain = 100 * (tuned["accuracy"] - base["accuracy"])
    print(f"{'ALL':<18} {tuned['count']:>4} {100 * base['accuracy']:>6.1f}% {100 * tuned['accuracy']:>6.1f}%"
          f"  ({gain:+.1f} points)")
    print(f"retention: F1 {ret.get('base_f1')} -> {ret.get('f1')}, EM {ret.get('base_em')} -> {ret.get('em')}, "
          f"{'PASSED' if ret.get('passed') else 'FAILED'}")
    print(json.dumps({"bench": "quality", "overrides": overrides, "seconds": round(seconds, 1),
                      "base_accuracy": base["accuracy"], "tuned_accuracy": tuned["accuracy"],
                      "gain_points": round(gain, 2), "retention": ret,
                      "per_type": {t: {"base": base["per_type"].get(t, {}).get("accuracy"),
                                       "tuned": v["accuracy"]} for t, v in tuned["per_type"].items()},
                      "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}))


if __name__ == "__main__":
    main()
