"""fp32 against bf16 on this CPU, side by side in one run: a training step, ``predict`` tokens/s, and quality.

What ``runtime.precision: auto`` decides on a CPU (``mathlora.modeling.cpu_precision``: the bf16 flags and a
probe matmul) should follow these figures. Each measurement runs in its own subprocess, fp32 and bf16 one
after the other:

* train: the demo's training step (packaged SmolLM2-135M-Instruct, 16 records a step packed into 256-token
  rows, one micro-batch, LoRA r8 alpha 16 on q/v, lr 3e-3): ``--warmup`` untimed steps, then ``--steps``
  timed ones; seconds per step and learnable tokens/s. The data: a run's ``tokens/`` folder (``--tokens``, e.g.
  the demo's), else competition-style records tokenized like the tokenize stage;
* predict: ``predict_file`` on ``--count`` problems (a run's ``test_records.jsonl`` with ``--problems``, else
  competition-style ones), one batch of them, greedy, ``--max-new-tokens``; generated tokens/s, and how many
  completions are the same in both precisions;
* quality (``--quality RUN_FP32 RUN_BF16``, no model run): two finished demo runs, one per precision
  (``MATHLORA_PRECISION=fp32`` / ``bf16 mathlora run``): the final training loss, held-out accuracy with and
  without the calculator, side by side.

Prints the CPU's model name and bf16 flags, the load (``os.getloadavg``) before and after, and one JSON line.

    python bench/cpu_precision.py --steps 3 --count 48
    python bench/cpu_precision.py --tokens runs/demo/tokens --problems runs/demo/test_records.jsonl
    python bench/cpu_precision.py --quality runs/demo_fp32 runs/demo_bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"
PRECISIONS = ("fp32", "bf16")


def cpu_info() -> dict:
    import torch

    from mathlora.modeling import cpu_precision as cp

    flags = cp.cpu_bf16_flags()
    return {"cpu": cp.cpu_name(), "bf16_flags": flags, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "platform": platform.platform()}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def child_train(precision: str, tokens: Path, work: Path, model: str, warmup: int, steps: int) -> dict:
    from mathlora.app.config import load_config
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.trainer import train

    cfg = load_config(None, {"model": model, "seed": 0, "train.global_batch_size": 16, "train.micro_batch_size": 16,
                             "train.packing": True, "train.lr": 3e-3, "train.max_steps": warmup + steps,
                             "train.gradient_checkpointing": False, "lora.r": 8, "lora.alpha": 16,
                             "lora.target_modules": ["q_proj", "v_proj"]})
    out = work / f"train_{precision}"
    summary = train(cfg.train, Runtime("cpu", precision), tokens, out, lora=cfg.lora, seed=cfg.seed, resume=False,
                    progress=False)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][warmup:]
    seconds = sum(r["interval_seconds"] for r in rows)
    learnable = sum(r["learnable_tokens"] for r in rows)
    return {"timed_steps": len(rows), "seconds_per_step": round(seconds / len(rows), 3),
            "learnable_tokens_per_s": round(learnable / seconds, 1),
            "tokens_per_step": round(sum(r["interval_tokens"] for r in rows) / len(rows), 1),
            "losses": [round(r["loss"], 4) for r in rows], "dtype": summary["dtype"]}


def child_predict(precision: str, problems: Path, work: Path, model: str, max_new_tokens: int) -> dict:
    from mathlora.evaluate.config import EvalConfig
    from mathlora.evaluate.predict import predict_file
    from mathlora.modeling.runtime import Runtime
    from mathlora.run_dir.records import read_jsonl, write_jsonl

    runtime = Runtime("cpu", precision)
    rows = list(read_jsonl(problems))
    write_jsonl(work / f"warm_{precision}.jsonl", rows[:2])
    predict_file(EvalConfig(batch_size=2, max_new_tokens=4, calculator=False), runtime, model, None,
                 work / f"warm_{precision}.jsonl", work / f"warm_{precision}.out", template="alpaca", progress=False)
    out = work / f"predict_{precision}.jsonl"
    summary = predict_file(EvalConfig(batch_size=len(rows), max_new_tokens=max_new_tokens, calculator=False),
                           runtime, model, None, problems, out, template="alpaca", progress=False)
    return {"count": summary["count"], "generated_tokens": summary["generated_tokens"],
            "seconds": summary["seconds"], "tokens_per_s": summary["tokens_per_s"], "dtype": summary["dtype"],
            "completions": {x["id"]: x["completion"] for x in read_jsonl(out)}}


def spawn(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])}: failed (exit {done.returncode})")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def prepare(args, work: Path) -> tuple[Path, Path]:
    """The token folder and the problems file the children use."""
    sys.path.insert(0, str(Path(__file__).parent))
    from eval_throughput import competition_problems
    from train_throughput import write_token_file

    from mathlora.run_dir.records import read_jsonl, write_jsonl

    tokens = args.tokens
    if tokens is None:
        tokens = work / "tokens"
        write_token_file(tokens, args.model, 16 * (args.warmup + args.steps))
    rows = list(read_jsonl(args.problems))[:args.count] if args.problems else competition_problems(args.count, seed=1)
    rows = [{"id": r.get("id", f"p{i:04d}"), **{k: v for k, v in r.items() if k != "id"}} for i, r in enumerate(rows)]
    write_jsonl(work / "problems.jsonl", rows)
    return tokens, work / "problems.jsonl"


def side_by_side(args) -> dict:
    from mathlora.modeling.runtime import Runtime, RuntimeConfig

    result = {"bench": "cpu_precision", "model": args.model, **cpu_info(), "load_before": load()}
    auto = Runtime.resolve(RuntimeConfig(device="cpu", precision="auto"))
    result["auto"] = {"precision": auto.precision, "reason": auto.precision_reason}
    print(f"CPU: {result['cpu']}; bf16 flags: {result['bf16_flags']}; torch threads {result['torch_threads']}; "
          f"load {result['load_before']}; auto picks {auto.precision} ({auto.precision_reason})", flush=True)
    with tempfile.TemporaryDirectory(prefix="mathlora-cpu-precision-") as tmp:
        work = Path(tmp)
        tokens, problems = prepare(args, work)
        common = ["--model", args.model, "--work", str(work)]
        if "train" in args.parts:
            train = {p: spawn(["--child", "train", "--precision", p, "--tokens", str(tokens), "--warmup",
                               str(args.warmup), "--steps", str(args.steps), *common]) for p in PRECISIONS}
            result["train"] = {**train, "bf16_speedup": round(train["fp32"]["seconds_per_step"]
                                                              / train["bf16"]["seconds_per_step"], 2)}
            print(f"train step: fp32 {train['fp32']['seconds_per_step']} s, bf16 {train['bf16']['seconds_per_step']}"
                  f" s ({result['train']['bf16_speedup']}x)", flush=True)
        if "predict" in args.parts:
            pred = {p: spawn(["--child", "predict", "--precision", p, "--problems", str(problems),
                              "--max-new-tokens", str(args.max_new_tokens), *common]) for p in PRECISIONS}
            same = sum(pred["fp32"]["completions"][k] == v for k, v in pred["bf16"]["completions"].items())
            for p in PRECISIONS:
                pred[p].pop("completions")
            result["predict"] = {**pred, "bf16_speedup": round(pred["bf16"]["tokens_per_s"]
                                                                / pred["fp32"]["tokens_per_s"], 2),
                                 "same_completions": f"{same}/{pred['fp32']['count']}"}
            print(f"predict: fp32 {pred['fp32']['tokens_per_s']} tok/s, bf16 {pred['bf16']['tokens_per_s']} tok/s "
                  f"({result['predict']['bf16_speedup']}x), same completions {same}/{pred['fp32']['count']}",
                  flush=True)
    result["load_after"] = load()
    return result


def quality(run_fp32: Path, run_bf16: Path) -> dict:
    """Final training loss and held-out accuracy (with and without the calculator) of two finished runs."""
    from mathlora.report.scores import RunScores
    from mathlora.run_dir.layout import RunLayout

    out = {"bench": "cpu_precision_quality"}
    for name, run in (("fp32", run_fp32), ("bf16", run_bf16)):
        if not (run / "config.yaml").is_file():
            raise SystemExit(f"{run}: not a mathlora run folder (no config.yaml)")
        lay = RunLayout(run)
        summary = json.loads(lay.train_summary.read_text()) if lay.train_summary.is_file() else {}
        if "final_loss" not in summary and lay.train_metrics.is_file():
            rows = [json.loads(x) for x in lay.train_metrics.read_text().splitlines() if x.strip()]
            summary = {"final_loss": rows[-1]["loss"], "steps": rows[-1]["step"]} if rows else {}
        scores = RunScores.read(run, strict=False)
        out[name] = {"run": str(run), "final_loss": summary.get("final_loss"), "steps": summary.get("steps"),
                     "dtype": summary.get("dtype"), "train_seconds": summary.get("seconds"),
                     "accuracy_calculator": scores.accuracy("tuned"),
                     "accuracy_no_calculator": scores.accuracy("tuned", calculator=False)}
    for key in ("final_loss", "accuracy_calculator", "accuracy_no_calculator"):
        print(f"{key:>24}: fp32 {out['fp32'][key]}  bf16 {out['bf16'][key]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--parts", nargs="+", default=["train", "predict"], choices=["train", "predict"])
    ap.add_argument("--warmup", type=int, default=1, help="untimed training steps first")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps")
    ap.add_argument("--tokens", type=Path, help="a run's tokens/ folder (default: competition-style records)")
    ap.add_argument("--problems", type=Path, help="problems JSONL, e.g. a run's test_records.jsonl")
    ap.add_argument("--count", type=int, default=48, help="problems for predict (one batch)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--quality", nargs=2, type=Path, metavar=("RUN_FP32", "RUN_BF16"))
    ap.add_argument("--output", type=Path, help="also write the JSON line here")
    ap.add_argument("--child", choices=["train", "predict"], help=argparse.SUPPRESS)
    ap.add_argument("--precision", choices=PRECISIONS, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.child == "train":
        print("RESULT " + json.dumps(child_train(args.precision, args.tokens, args.work, args.model, args.warmup,
                                                 args.steps)), flush=True)
        return
    if args.child == "predict":
        print("RESULT " + json.dumps(child_predict(args.precision, args.problems, args.work, args.model,
                                                   args.max_new_tokens)), flush=True)
        return
    start = time.perf_counter()
    result = quality(*args.quality) if args.quality else side_by_side(args)
    result["seconds"] = round(time.perf_counter() - start, 1)
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    if args.output:
        args.output.write_text(line + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
