"""``mathlora train`` and ``mathlora merge``.

Several processes (data parallel)::
    torchrun --nproc-per-node 4 -m mathlora train --config llama3_8b_lora
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mathlora.app.cliargs import (add_config_args, add_output, add_run, add_runtime_args, config_from_args, int_or_auto,
                              flag, option, runtime_from, show_progress, stage_command)
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.guards import lock_for_output
from mathlora.train.merge import merge_adapter


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train LoRA on the tokenized records (checkpoints, resume, merge)",
                              description="Train a LoRA adapter on the model whose tokenizer made the tokens "
                                          "(tokens/stats.json). Under torchrun, runs data-parallel.")
    add_config_args(p)
    add_run(p, help="run folder whose tokens/ to read and train/ to write (default: the config's run_dir)")
    p.add_argument("--tokens", default=None, help="tokenize stage output folder (default: <run>/tokens)")
    add_output(p, "training output folder (default: <run>/train)", required=False, overwrite_help=None)
    flag(p, "--resume", default=True, help="continue from the newest complete checkpoint (default: on)")
    add_runtime_args(p)
    option(p, "--epochs", field="train.epochs", type=float, help="epochs")
    option(p, "--max-steps", field="train.max_steps", type=int, help="stop after this many optimizer steps")
    option(p, "--lr", field="train.lr", type=float, help="peak learning rate")
    option(p, "--global-batch-size", field="train.global_batch_size", type=int, help="records per step")
    option(p, "--micro-batch-size", field="train.micro_batch_size", type=int_or_auto,
           help="rows per forward pass, or auto (the memory plan's)")
    option(p, "--init-from", field="lora.init_from",
           help="adapter folder whose LoRA weights the training starts from (continued training)")
    p.set_defaults(func=run_train)

    m = subparsers.add_parser("merge", help="merge a LoRA adapter into its base model (HF folder)",
                              description="Merge an adapter into the base model and save a plain "
                                          "transformers folder (safetensors + tokenizer).")
    m.add_argument("--model", "-m", required=True,
                   help="base model spec (HF folder, .gguf, smollm2-135m-instruct, ...)")
    m.add_argument("--adapter", required=True, help="adapter folder (adapter_config.json + adapter_model.safetensors)")
    add_output(m, "output folder", overwrite_help="replace an existing output folder even if it is not an "
                                                   "earlier merge")
    m.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None,
                   help="dtype of the merged weights (default: the base model's stored dtype)")
    add_runtime_args(m)  # where the merge runs; --precision pins its arithmetic (default: fp32)
    add_config_args(m)
    m.set_defaults(func=run_merge)


def run_train(args: argparse.Namespace) -> int:
    from mathlora.train.trainer import train

    cfg = config_from_args(args)
    layout = RunLayout(cfg.run_dir)
    tokens = Path(args.tokens) if args.tokens else layout.tokens
    output = Path(args.output) if args.output else layout.train

    # one writer per run folder; under torchrun rank 0 holds the lock for all processes
    with lock_for_output(output / "x" if os.environ.get("RANK", "0") == "0" else None):
        summary = train(cfg.train, runtime_from(cfg), tokens, output, lora=cfg.lora, seed=cfg.seed,
                        resume=args.resume, progress=show_progress(args))
    if os.environ.get("RANK", "0") == "0":
        print(f"trained {summary['steps']} steps ({summary['epochs']} epochs) in {summary['seconds']:.1f} s: "
              f"{summary['tokens_per_s']:.1f} learnable tokens/s, final loss {summary['final_loss']:.4f}; "
              f"LoRA params {summary['ratio_line']}; adapter {summary['adapter']}; "
              f"{len(summary['checkpoints'])} checkpoint(s)")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    return stage_command(args, lambda cfg: {"merged": merge_adapter(runtime_from(cfg), args.model, args.adapter,
                                                                    args.output, dtype=args.dtype,
                                                                    overwrite=args.overwrite)},
                         title="merge", show=lambda r, cfg: print(f"merged {args.adapter} into {args.model}: "
                                                                  f"{r['merged']}"))
