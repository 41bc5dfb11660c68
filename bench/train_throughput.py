"""LoRA training throughput on CPU: ``mathlora train`` vs a plain transformers Trainer + peft baseline.

Both run side by side in one invocation, each in its own subprocess (so peak memory is its own), on the
same 256 competition-style records (alpaca prompt, SmolLM2 tokenizer, prompt masked), the same LoRA
(r8, alpha 16, q/v), the same global batch (32 = 8 x 4 accumulation), the same precision (``--precision``:
fp32, or bf16 on both sides: mathlora's bf16 runtime, a bf16 base with fp32 LoRA weights and optimizer; the
Trainer's own ``bf16=True``, CPU autocast over the fp32 model, and with ``--baselines flat_bf16weights`` the
Trainer on the base model loaded in bf16 as mathlora loads it), no activation checkpointing, and the same
number of optimizer steps.

Baselines, each in its own subprocess too:

* ``baseline_trainer_pad256``: what copying the competition config gives: every record padded to seq_length
  256, the HF Trainer's loss over all positions' logits;
* ``baseline_trainer_flat``: the fairer padding-free Trainer: ``DataCollatorWithFlattening`` concatenates
  each micro-batch's records into one row with restarting position ids (no padding at all), loss still over
  every position's logits.

mathlora packs records into 256-token rows (no cross-record attention) and projects only learnable positions
through the LM head; on a CPU its packed rows go through the linear layers unpadded and attend in eager matmuls
(``mathlora.train.attention``); the Trainer keeps its default attention (sdpa).

Figure of merit: learnable (response + EOS) tokens per second of optimizer-step time, over every step but
the first (warm-up), for both; model loading and setup are excluded.

    python bench/train_throughput.py               # 3 steps each (about 7 minutes on 2 cores)
    python bench/train_throughput.py --steps 2
    python bench/train_throughput.py --precision bf16 --baselines flat   # bf16 on both sides, flat baseline only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"
SEQ = 256
GLOBAL_BATCH, MICRO_BATCH = 32, 8


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def competition_records(count: int) -> list[dict]:
    try:
        from mathlora.synth.competition import generate
    except ImportError:
        import random

        rng = random.Random(0)
        out = []
        for _ in range(count):
            a, b = round(rng.uniform(-9999, 9999), 2), round(rng.uniform(-9999, 9999), 2)
            out.append({"problem": f"计算 {a} + {b} 等于多少？", "solution": f"{a} + {b} = {round(a + b, 2)}"})
        return out
    return generate(count, seed=0)


def write_token_file(folder: Path, model: str, count: int) -> dict:
    """Tokenize like the tokenize stage: alpaca prompt masked, solution + EOS learnable, cut at 256."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mathlora.modeling.models import load_tokenizer
    from mathlora.modeling.templates import render_prompt

    tok = load_tokenizer(model)
    inputs, labels = [], []
    for rec in competition_records(count):
        p = tok.encode(render_prompt("alpaca", rec["problem"]), add_special_tokens=False)
        r = tok.encode(rec["solution"], add_special_tokens=False) + [tok.eos_token_id]
        ids, lab = (p + r)[:SEQ], ([-100] * len(p) + r)[:SEQ]
        inputs.append(ids)
        labels.append(lab)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(inputs))],
                             "input_ids": pa.array(inputs, pa.list_(pa.int32())),
                             "labels": pa.array(labels, pa.list_(pa.int32())),
                             "length": pa.array([len(x) for x in inputs], pa.int32())}),
                   folder / "tokens.parquet")
    (folder / "stats.json").write_text(json.dumps({"model": model, "seq_length": SEQ}) + "\n")
    lengths = [len(x) for x in inputs]
    return {"records": len(inputs), "mean_length": sum(lengths) / len(lengths), "max_length": max(lengths),
            "mean_learnable": sum(sum(t != -100 for t in y[1:]) for y in labels) / len(labels)}


def run_ours(tokens: Path, work: Path, model: str, steps: int, precision: str = "fp32") -> dict:
    from mathlora.app.config import load_config
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.trainer import train

    cfg = load_config(None, {"model": model, "seed": 0, "train.global_batch_size": GLOBAL_BATCH,
                             "train.micro_batch_size": MICRO_BATCH, "train.max_steps": steps,
                             "train.gradient_checkpointing": False})
    summary = train(cfg.train, Runtime(device="cpu", precision=precision), tokens, work / "ours", lora=cfg.lora,
                    seed=cfg.seed, resume=False, progress=True)
    rows = [json.loads(x) for x in (work / "ours" / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:]  # the first step warms up allocators and kernels: untimed for both runs
    tokens_seen = sum(r["learnable_tokens"] for r in timed)
    seconds = sum(r["learnable_tokens"] / r["tokens_per_s"] for r in timed)
    return {"timed_steps": len(timed), "learnable_tokens": tokens_seen, "seconds": round(seconds, 3),
            "tokens_per_s": tokens_seen / seconds, "final_loss": summary["final_loss"],
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def run_baseline(tokens: Path, work: Path, model: str, steps: int, flat: bool = False, precision: str = "fp32",
                 bf16_weights: bool = False) -> dict:
    """transformers Trainer + peft, each record padded to 256 (the competition's fixed-length batches), or
    with ``flat`` the padding-free ``DataCollatorWithFlattening``. ``precision`` bf16: the Trainer's
    ``bf16=True`` (autocast), over the base model loaded in bf16 with ``bf16_weights``."""
    import pyarrow.parquet as pq
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from mathlora.modeling.models import load_model, load_tokenizer
    from mathlora.modeling.runtime import Runtime

    torch.manual_seed(0)
    tok = load_tokenizer(model)
    table = pq.read_table(tokens / "tokens.parquet").to_pylist()
    pad = tok.pad_token_id
    rows = [{"input_ids": r["input_ids"] + [pad] * (SEQ - len(r["input_ids"])),
             "attention_mask": [1] * len(r["input_ids"]) + [0] * (SEQ - len(r["input_ids"])),
             "labels": r["labels"] + [-100] * (SEQ - len(r["labels"]))} for r in table]
    counted = {"learnable_tokens": 0}
    if flat:
        from transformers import DataCollatorWithFlattening

        rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in table]
        flatten = DataCollatorWithFlattening(return_position_ids=True)

    def collate(batch):
        if flat:
            counted["learnable_tokens"] += sum(sum(1 for t in b["labels"][1:] if t != -100) for b in batch)
            return flatten(batch)
        out = {k: torch.tensor([b[k] for b in batch]) for k in batch[0]}
        counted["learnable_tokens"] += int((out["labels"][:, 1:] != -100).sum())
        return out

    class StepTimer(TrainerCallback):
        """Per-step seconds and learnable tokens (the collator runs within the step it feeds)."""

        def __init__(self):
            self.steps: list[tuple[float, int]] = []
            self.t0, self.tokens_before = 0.0, 0

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.steps.append((time.perf_counter() - self.t0, counted["learnable_tokens"] - self.tokens_before))
            self.tokens_before = counted["learnable_tokens"]

    base = load_model(model, Runtime(device="cpu", precision="bf16" if bf16_weights else "fp32"))
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(work / "baseline"), per_device_train_batch_size=MICRO_BATCH,
                             gradient_accumulation_steps=GLOBAL_BATCH // MICRO_BATCH, max_steps=steps,
                             learning_rate=1e-5, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8,
                             lr_scheduler_type="cosine", warmup_steps=0.03, logging_steps=1, save_strategy="no",
                             report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, bf16=precision == "bf16",
                             remove_unused_columns=False, disable_tqdm=False)
    timer = StepTimer()
    trainer = Trainer(model=peft_model, args=args, train_dataset=rows, data_collator=collate, callbacks=[timer])
    result = trainer.train()
    timed = timer.steps[1:]  # same rule as ours: the first step is untimed
    tokens_seen, seconds = sum(t for _, t in timed), sum(s for s, _ in timed)
    return {"timed_steps": len(timed), "learnable_tokens": tokens_seen, "seconds": round(seconds, 3),
            "tokens_per_s": tokens_seen / seconds, "final_loss": result.training_loss,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "lora_dtypes": {str(p.dtype) for p in peft_model.parameters() if p.requires_grad}}


def child(kind: str, tokens: Path, work: Path, model: str, steps: int, precision: str) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if kind == "ours":
        result = run_ours(tokens, work, model, steps, precision)
    else:
        result = run_baseline(tokens, work, model, steps, flat=kind != "baseline", precision=precision,
                              bf16_weights=kind == "flat_bf16weights")
    result["lora_dtypes"] = sorted(result.get("lora_dtypes", []))
    print("RESULT " + json.dumps(result), flush=True)


def run_child(kind: str, tokens: Path, work: Path, model: str, steps: int, precision: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--tokens", str(tokens), "--work", str(work),
           "--model", model, "--steps", str(steps), "--precision", precision]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed (exit {done.returncode})")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per run, >= 2 (the first is untimed)")
    ap.add_argument("--records", type=int, default=256)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="both sides (default fp32)")
    ap.add_argument("--baselines", nargs="+", default=["pad256", "flat"],
                    choices=["pad256", "flat", "flat_bf16weights"])
    ap.add_argument("--child", choices=["ours", "baseline", "flat", "flat_bf16weights"], help=argparse.SUPPRESS)
    ap.add_argument("--tokens", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first step is untimed)")
    if args.child:
        child(args.child, args.tokens, args.work, args.model, args.steps, args.precision)
        return
    with tempfile.TemporaryDirectory(prefix="mathlora-train-bench-") as tmp:
        work = Path(tmp)
        data = write_token_file(work / "tokens", args.model, args.records)
        ours = run_child("ours", work / "tokens", work, args.model, args.steps, args.precision)
        kinds = {"pad256": "baseline", "flat": "flat", "flat_bf16weights": "flat_bf16weights"}
        others = {name: run_child(kinds[name], work / "tokens", work, args.model, args.steps, args.precision)
                  for name in args.baselines}
    import torch

    result = {"bench": "train_throughput", "model": args.model, "device": "cpu", "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "precision": args.precision,
              "loadavg": [round(x, 2) for x in os.getloadavg()], "platform": platform.platform(),
              "steps": args.steps, "global_batch": GLOBAL_BATCH, "data": data, "mathlora": ours}
    for name, other in others.items():
        result[f"baseline_trainer_{name}"] = other
    if "pad256" in others:
        result["speedup"] = round(ours["tokens_per_s"] / others["pad256"]["tokens_per_s"], 2)
    for name in ("flat", "flat_bf16weights"):
        if name in others:
            result[f"speedup_vs_{name}"] = round(ours["tokens_per_s"] / others[name]["tokens_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
