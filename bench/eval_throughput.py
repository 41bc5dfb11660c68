"""Benchmark: ``predict`` batched (grouped by prompt length) vs one prompt at a time, and vs transformers' batched
``generate``, in one run.

Runs ``mathlora.evaluate.predict.predict_file`` twice on competition-style problems with the same model,
template and ``max_new_tokens``: once on all problems with ``--batch-size`` (default 16), once on the first
``--single-count`` (default 32) problems with batch size 1. Then plain transformers ``model.generate`` on the
same model (same runtime, same dtype) and the same prompts: batches of ``--batch-size`` in input order, left
padding, greedy, the same ``max_new_tokens``, stopping a row at EOS or at the template's stop strings
(``generate``'s own ``stop_strings``; its completions are cut before them, as ``predict`` cuts). Its generated
tokens are counted up to each row's end (EOS or the padding ``generate`` adds after a finished row). Prints one
JSON line with generated tokens/s and problems/s of each, the speedups, how many completions are identical, and
the machine.

    .venv/bin/python bench/eval_throughput.py            # SmolLM2-135M on CPU, ~5 minutes on 2 cores
    .venv/bin/python bench/eval_throughput.py --model tiny-random-llama --count 64 --single-count 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
from pathlib import Path


def fallback_problems(count: int, seed: int) -> list[dict]:
    """Competition-style arithmetic problems, used when the synth module is not available."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        a, b = round(rng.uniform(-9999, 9999), 2), round(rng.uniform(-9999, 9999), 2)
        op = rng.choice(["+", "-", "*"])
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        out.append({"problem": f"计算 {a} {op} {b} 等于多少？", "solution": f"{a} {op} {b} = {value}",
                    "type": "arithmetic"})
    return out


def competition_problems(count: int, seed: int) -> list[dict]:
    try:
        from mathlora.synth.competition import generate
    except ImportError:
        records = fallback_problems(count, seed)
    else:
        records = generate(count, seed=seed)
    return [{"id": f"p{i:04d}", **r} for i, r in enumerate(records)]


def machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_generate(args, runtime, prompts: list[str], stops) -> dict:
    """transformers' batched ``generate``: batches in input order, left padding, greedy; EOS or a stop string
    ends a row (the batch runs until its last row ends)."""
    import time

    import torch

    from mathlora.evaluate.generation import cut_at_stop, eos_ids
    from mathlora.modeling.models import load_model, load_tokenizer

    tok = load_tokenizer(args.model)
    model = load_model(args.model, runtime).eval()
    eos = eos_ids(model, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    tok.padding_side = "left"
    completions, generated = [], 0

    def batches():
        for i in range(0, len(prompts), args.batch_size):
            yield tok(prompts[i:i + args.batch_size], return_tensors="pt", padding=True).to(runtime.device)

    with torch.no_grad():  # warm-up, as for predict
        warm = tok(prompts[:2], return_tensors="pt", padding=True).to(runtime.device)
        model.generate(**warm, max_new_tokens=4, do_sample=False, eos_token_id=eos, pad_token_id=pad)
        start = time.perf_counter()
        for enc in batches():
            out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, eos_token_id=eos,
                                 pad_token_id=pad, stop_strings=list(stops), tokenizer=tok)
            for row in out[:, enc["input_ids"].shape[1]:].tolist():
                ends = [i for i, t in enumerate(row) if t in eos or t == pad]
                row = row[:ends[0] + 1] if ends else row
                generated += len(row)
                completions.append(cut_at_stop(tok.decode(row, skip_special_tokens=True), stops)[0])
        seconds = time.perf_counter() - start
    return {"count": len(prompts), "generated_tokens": generated, "seconds": round(seconds, 3),
            "tokens_per_s": round(generated / seconds, 2), "problems_per_s": round(len(prompts) / seconds, 3),
            "batch_size": args.batch_size, "dtype": str(runtime.dtype).removeprefix("torch."),
            "completions": completions}


def run(args) -> dict:
    from mathlora.evaluate.config import EvalConfig
    from mathlora.evaluate.predict import predict_file
    from mathlora.modeling.models import load_tokenizer
    from mathlora.run_dir.records import read_jsonl, write_jsonl
    from mathlora.modeling.runtime import Runtime, RuntimeConfig

    problems = competition_problems(args.count, args.seed)
    load_tokenizer(args.model)  # converts a GGUF once, outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_jsonl(tmp / "all.jsonl", problems)
        write_jsonl(tmp / "subset.jsonl", problems[:args.single_count])
        common = {"max_new_tokens": args.max_new_tokens, "max_length": args.max_length, "calculator": False}
        # Warm-up: first calls pay for kernel selection and allocator growth.
        write_jsonl(tmp / "warm.jsonl", problems[:2])
        runtime = Runtime.resolve(RuntimeConfig(precision=args.precision))
        predict_file(EvalConfig(batch_size=2, max_new_tokens=4), runtime, args.model, None, tmp / "warm.jsonl",
                     tmp / "warm.out", template=args.template, progress=False)
        batched = predict_file(EvalConfig(batch_size=args.batch_size, **common), runtime, args.model, None,
                               tmp / "all.jsonl", tmp / "batched.jsonl", template=args.template,
                               progress=not args.quiet)
        single = predict_file(EvalConfig(batch_size=1, **common), runtime, args.model, None, tmp / "subset.jsonl",
                              tmp / "single.jsonl", template=args.template, progress=not args.quiet)
        b_lines = {x["id"]: x["completion"] for x in read_jsonl(tmp / "batched.jsonl")}
        identical = sum(b_lines[x["id"]] == x["completion"] for x in read_jsonl(tmp / "single.jsonl"))
        from mathlora.evaluate.predict import stop_strings
        from mathlora.modeling.templates import render_prompt

        hf = run_generate(args, runtime, [render_prompt(args.template, p["problem"]) for p in problems],
                          stop_strings(EvalConfig(), args.template))
        same_as_generate = sum(b_lines[p["id"]].strip() == c.strip() for p, c in zip(problems, hf.pop("completions")))
    batched["problems_per_s"] = round(batched["count"] / batched["seconds"], 3)
    keep = ("count", "generated_tokens", "seconds", "tokens_per_s", "stopped", "batch_size", "device", "dtype")
    return {
        "bench": "eval_throughput", "model": args.model, "template": args.template,
        "max_new_tokens": args.max_new_tokens,
        "batched": {k: batched[k] for k in (*keep, "problems_per_s")},
        "one_at_a_time": {k: single[k] for k in keep}, "hf_generate_batched": hf,
        "speedup_tokens_per_s": round(batched["tokens_per_s"] / single["tokens_per_s"], 2),
        "speedup_vs_generate_tokens_per_s": round(batched["tokens_per_s"] / hf["tokens_per_s"], 2),
        "speedup_vs_generate_wall": round(hf["seconds"] / batched["seconds"], 2),
        "identical_completions_on_subset": f"{identical}/{args.single_count}",
        "same_completions_as_generate": f"{same_as_generate}/{len(problems)}",
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--count", type=int, default=256, help="problems for the batched run")
    p.add_argument("--single-count", type=int, default=32, help="problems for the one-at-a-time run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--template", default="alpaca")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", default=None, help="also write the JSON result here")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.single_count > args.count:
        p.error("--single-count must not exceed --count")
    result = run(args)
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    if args.output:
        Path(args.output).write_text(line + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
