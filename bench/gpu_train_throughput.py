"""8B LoRA training throughput and strict MFU: the real ``mathlora.train`` vs transformers Trainer + peft.

Model: a random Llama-3-8B-shaped model built directly on the GPU in bf16 (``tiny-random-llama:shape=llama3-8b``),
LoRA r8/alpha16 on q,v, global batch 32 records. Two data sets, both sides on the same tokens:

* ``full``: 32 x 256 random tokens per step, every token learnable (the issue's shape);
* ``realistic``: competition-style records from ``mathlora.synth`` through the convert and tokenize stages
  (about 94 tokens, 30% learnable with SmolLM2's tokenizer; see ``gpu_common.realistic``).

Rows (each in its own subprocess, so an out-of-memory row is reported and the rest still run):

* ``mathlora-*``: ``mathlora.train`` itself (the function the CLI calls, through ``gpu_common.call_train``)
  with its speed levers: ``auto`` = the memory plan picks recompute and micro-batch, Liger when installed,
  fused AdamW, no per-micro-batch host sync; the ``noliger`` / ``recompute-m32`` / ``norecompute-m8`` /
  ``compile`` rows take one lever at a time;
* ``hf-*``: transformers ``Trainer`` + peft, padding-free ``DataCollatorWithFlattening``, fused AdamW, with
  or without whole-layer recompute, micro-batch 32 or 8 records.

MFU = model FLOPs / (time x dense bf16 peak): 4N per token for LoRA on a frozen base, LM head only where a
token is learnable (``mathlora.train.flops``); HFU adds recompute and the baseline's LM head on every position.

    python bench/gpu_train_throughput.py --output figures.json             # CUDA GPU, about 4 minutes on an H100
    python bench/gpu_train_throughput.py --rows all                        # every row
    python bench/gpu_train_throughput.py --smoke                           # CPU: tiny model, every row, seconds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_common as gc  # noqa: E402
from mathlora.modeling.runtime import cuda_available  # noqa: E402

AUTO = {"gradient_checkpointing": "auto", "micro_batch_size": "auto"}
ROWS = {
    "full": {
        "mathlora-auto": ("mathlora", {"train": AUTO}),
        "mathlora-auto-noliger": ("mathlora", {"train": {**AUTO, "liger": False}}),
        "mathlora-recompute-m32": ("mathlora", {"train": {"gradient_checkpointing": True, "micro_batch_size": 32,
                                                          "liger": False}}),
        "mathlora-norecompute-m8": ("mathlora", {"train": {"gradient_checkpointing": False, "micro_batch_size": 8,
                                                           "liger": False}}),
        "mathlora-auto-compile": ("mathlora", {"train": {**AUTO, "compile": "default"}}),
        "hf-recompute-m32": ("transformers", {"recompute": True, "micro_batch": 32}),
        "hf-norecompute-m8": ("transformers", {"recompute": False, "micro_batch": 8}),
    },
    "realistic": {
        "mathlora-auto": ("mathlora", {"train": AUTO}),
        "mathlora-auto-noliger": ("mathlora", {"train": {**AUTO, "liger": False}}),
        "hf-norecompute-m32": ("transformers", {"recompute": False, "micro_batch": 32}),
        "hf-recompute-m32": ("transformers", {"recompute": True, "micro_batch": 32}),
    },
}
CORE = ["full/mathlora-auto", "full/mathlora-auto-noliger", "full/mathlora-recompute-m32", "full/hf-recompute-m32",
        "full/hf-norecompute-m8", "realistic/mathlora-auto", "realistic/hf-norecompute-m32"]


def pick_rows(spec: str) -> list[str]:
    every = [f"{d}/{n}" for d, rows in ROWS.items() for n in rows]
    if spec == "all":
        return every
    if spec == "core":
        return CORE
    chosen = [x.strip() for x in spec.split(",") if x.strip()]
    unknown = [x for x in chosen if x not in every]
    if unknown:
        raise SystemExit(f"unknown row(s) {unknown}; known: {', '.join(every)}")
    return chosen


def best(rows: dict, side: str) -> dict | None:
    ok = [r for r in rows.values() if r.get("side") == side and "tokens_per_s" in r]
    return max(ok, key=lambda r: r["tokens_per_s"]) if ok else None


def summarize(results: dict) -> dict:
    out = {}
    for data, rows in results.items():
        ours, theirs = best(rows, "mathlora"), best(rows, "transformers")
        out[data] = {"best_mathlora": ours and ours["name"], "best_transformers": theirs and theirs["name"],
                     "speedup_tokens_per_s": gc.ratio(ours, theirs),
                     "speedup_learnable_tokens_per_s": gc.ratio(ours, theirs, "learnable_tokens_per_s"),
                     "mathlora_mfu": ours and ours.get("mfu"), "transformers_mfu": theirs and theirs.get("mfu")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="core", help="core (default), all, or data/name,... (see ROWS)")
    ap.add_argument("--steps", type=int, default=6, help="timed optimizer steps (a multiple of --warmup)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps first")
    ap.add_argument("--model", default="tiny-random-llama:shape=llama3-8b")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--row-timeout", type=float, default=240.0, help="seconds per row before it is stopped")
    ap.add_argument("--smoke", action="store_true", help="CPU check of every row: tiny model, seq 64, 1+2 steps")
    ap.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        gc.child_main(args.child)
        return 0
    import torch

    if args.smoke:
        args.model, args.seq, args.warmup, args.steps = "tiny-random-llama", 64, 1, 2
        args.rows = "all" if args.rows == "core" else args.rows
    elif not cuda_available():
        print("error: needs a CUDA GPU (use --smoke for the CPU check)", file=sys.stderr)
        return 2
    if args.steps % args.warmup:
        ap.error("--steps must be a multiple of --warmup")
    chosen = pick_rows(args.rows)
    started = time.perf_counter()
    from mathlora.modeling.models import tiny_config, is_tiny

    vocab = tiny_config(args.model)[0].vocab_size if is_tiny(args.model) else 32000
    results: dict = {d: {} for d in ROWS}
    with tempfile.TemporaryDirectory(prefix="mathlora-gpu-bench-") as tmp:
        work = Path(tmp)
        n_records = gc.GLOBAL_BATCH * (args.warmup + args.steps)
        data = {}
        if any(c.startswith("full/") for c in chosen):
            data["full"] = gc.full_rows(work / "full", n_records, args.seq, vocab)
        if any(c.startswith("realistic/") for c in chosen):
            # the tiny smoke model has a 259-token vocabulary: its own byte tokenizer
            data["realistic"] = gc.realistic(work / "realistic", max(n_records, 1024), max(args.seq, 256),
                                             tokenizer="tiny-random-llama" if args.smoke else None)
        for key in chosen:
            name, (side, extra) = key.split("/")[1], ROWS[key.split("/")[0]][key.split("/")[1]]
            dataset = key.split("/")[0]
            seq = args.seq if dataset == "full" else max(args.seq, 256)
            row = {"name": name, "side": side, "model": args.model, "seq": seq, "warmup": args.warmup,
                   "steps": args.steps, "tokens": str(work / dataset), "work": str(work / "runs" / dataset), **extra}
            results[dataset][name] = gc.timed_row(__file__, key, row, args.row_timeout, (
                "tokens_per_s", "learnable_tokens_per_s", "step_seconds", "mfu", "hfu", "peak_memory_gib"))
    report = {"bench": "gpu_train_throughput", "model": args.model, "seq": args.seq, "global_batch": gc.GLOBAL_BATCH,
              "warmup_steps": args.warmup, "timed_steps": args.steps, "smoke": args.smoke,
              "device": gc.device_info()[1], "torch": torch.__version__, "data": data, "rows": results,
              "summary": summarize(results), "seconds": round(time.perf_counter() - started, 1)}
    import transformers
    import peft

    report.update(transformers=transformers.__version__, peft=peft.__version__)
    gc.emit(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
