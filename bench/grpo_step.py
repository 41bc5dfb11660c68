"""Time per GRPO step (``mathlora.grpo``) and what dominates it: generation or the rest (reference and policy
log-probs, loss, backward, optimizer).

    python bench/grpo_step.py --model tiny-random-llama --steps 6 [--problems normalized.jsonl]
        [--adapter SFT_ADAPTER] [--prompts-per-step 2] [--num-generations 4] [--max-completion-length 128]
        [--json out.json]

Without ``--adapter`` a fresh LoRA adapter (B = 0: the base model's outputs) stands in for the SFT adapter;
without ``--problems`` synthetic arithmetic problems are used. The first step (warm-up) is left out of the
per-step figures when there are more than two. Prints one JSON object: seconds per step, generation seconds
per step and their share, tokens generated per second, the reward and accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def fresh_adapter(model: str, folder: Path) -> Path:
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.checkpoint import save_adapter
    from mathlora.train.config import LoraConfig, TrainConfig
    from mathlora.train.distributed import adapter_state
    from mathlora.train.job import TrainJob
    from mathlora.train.lora import build_model

    runtime = Runtime.resolve()
    peft_model = build_model(TrainJob(TrainConfig(gradient_checkpointing=False), LoraConfig(), 0, model, 512,
                                      runtime), runtime)
    save_adapter(peft_model, adapter_state(peft_model), folder, base=model)
    return folder


def synthetic_problems(path: Path, n: int = 64) -> Path:
    import random

    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        rows.append({"id": f"s{i}", "problem": f"计算 {a} + {b} 等于多少？", "solution": f"{a} + {b} = {a + b}"})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny-random-llama")
    p.add_argument("--adapter", type=Path)
    p.add_argument("--problems", type=Path)
    p.add_argument("--template", default="alpaca")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--max-completion-length", type=int, default=128)
    p.add_argument("--beta", type=float, default=0.04)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: a small model is latency-bound, and immune to a busy machine)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)

    from mathlora.grpo.config import GrpoConfig
    from mathlora.grpo.metrics import read_metrics
    from mathlora.grpo.trainer import grpo_train
    from mathlora.modeling.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        adapter = args.adapter or fresh_adapter(args.model, tmp / "sft")
        problems = args.problems or synthetic_problems(tmp / "problems.jsonl")
        cfg = GrpoConfig(enabled=True, steps=args.steps, prompts_per_step=args.prompts_per_step,
                         num_generations=args.num_generations, max_completion_length=args.max_completion_length,
                         beta=args.beta, save_steps=args.steps, report_to=[])
        started = time.perf_counter()
        summary = grpo_train(cfg, Runtime.resolve(), problems, adapter, tmp / "grpo", model=args.model,
                             template=args.template, seed=0, progress=False)
        wall = time.perf_counter() - started
        rows = read_metrics(tmp / "grpo" / "metrics.jsonl")
    timed = rows[1:] if len(rows) > 2 else rows
    step = sum(r["step_seconds"] for r in timed) / len(timed)
    gen = sum(r["generation_seconds"] for r in timed) / len(timed)
    tokens = sum(r["completion_length"] for r in timed) / len(timed) * args.prompts_per_step * args.num_generations
    out = {"model": args.model, "threads": args.threads, "steps": args.steps, "completions_per_step": args.prompts_per_step * args.num_generations,
           "max_completion_length": args.max_completion_length, "beta": args.beta,
           "seconds_per_step": round(step, 3), "generation_seconds_per_step": round(gen, 3),
           "generation_share": round(gen / step, 3) if step else None,
           "other_seconds_per_step": round(step - gen, 3),
           "generated_tokens_per_s": round(tokens / gen, 1) if gen else None,
           "first_step_seconds": rows[0]["step_seconds"] if rows else None, "wall_seconds": round(wall, 1),
           "reward_mean": round(sum(r["reward"] for r in rows) / len(rows), 4),
           "accuracy_mean": round(sum(r["accuracy"] for r in rows) / len(rows), 4),
           "completion_length_mean": round(sum(r["completion_length"] for r in rows) / len(rows), 1),
           "reward_events": summary["reward_events"]}
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
