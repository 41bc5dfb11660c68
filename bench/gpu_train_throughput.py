"""GPU LoRA training throughput and MFU on a random Llama-3-8B-shaped model (bf16, LoRA r8 on q/v).

Runs mathlora's own training step (the model builder's LoRA + activation checkpointing, the
learnable-token loss, AdamW on the LoRA weights) on full rows of random tokens: seq 256, batch 32, every
token learnable. Reports tokens/s, peak GPU memory and MFU.

MFU = achieved FLOPs / peak FLOPs, with FLOPs per token = 6N with activation recompute (forward, recompute,
backward through activations; frozen weights get no weight gradient) or 4N without; N = parameters that
do matmul work (everything except the input embedding table). Peak: H100/H200 bf16 dense 989 TFLOPs.

    python bench/gpu_train_throughput.py                      # needs a CUDA GPU (H100: ~16 GB weights)
    python bench/gpu_train_throughput.py --no-recompute
    python bench/gpu_train_throughput.py --shape small        # CPU smoke check of the same code path
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0}
SHAPES = {"llama3-8b": "tiny-random-llama:shape=llama3-8b", "small": "tiny-random-llama"}


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    return None


def build(spec: str, device: str, dtype, recompute: bool, lora_r: int):
    """The random model built straight on the device in ``dtype`` (no fp32 copy on the host), plus LoRA."""
    import torch
    from transformers import LlamaForCausalLM

    from mathlora.models import tiny_config
    from mathlora.train.config import LoraConfig
    from mathlora.train.lora import apply_lora

    config, seed = tiny_config(spec)
    config.use_cache = False
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    if recompute:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False}) \
            if hasattr(model, "activation_checkpointing_enable") else \
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return apply_lora(model, LoraConfig(r=lora_r, alpha=2 * lora_r, target_modules=["q_proj", "v_proj"]))


def matmul_params(model) -> int:
    embed = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=list(SHAPES), default="llama3-8b")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--micro-batch", type=int, default=None, help="rows per forward (default: the batch)")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--no-recompute", action="store_true", help="disable activation checkpointing")
    ap.add_argument("--lora-r", type=int, default=8)
    args = ap.parse_args()

    import torch

    from mathlora.train.loss import LearnableTokenLoss

    cuda = torch.cuda.is_available()
    if not cuda and args.shape != "small":
        print(f"error: --shape {args.shape} needs a CUDA GPU (none found); use --shape small for a CPU smoke "
              f"check", file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    recompute = not args.no_recompute
    if not cuda:
        args.batch, args.seq, args.steps, args.warmup = min(args.batch, 4), min(args.seq, 64), min(args.steps, 2), 1
    micro = args.micro_batch or args.batch

    t0 = time.perf_counter()
    model = build(SHAPES[args.shape], device, dtype, recompute, args.lora_r)
    build_s = time.perf_counter() - t0
    loss_fn = LearnableTokenLoss(model).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.95), eps=1e-8)
    n_matmul = matmul_params(model)
    vocab = model.config.vocab_size
    g = torch.Generator(device=device).manual_seed(0)
    ids = torch.randint(0, vocab, (args.batch, args.seq), device=device, generator=g)
    positions = torch.arange(args.seq, device=device).expand(args.batch, -1)
    targets = torch.roll(ids, -1, dims=1)
    n_tokens = args.batch * args.seq

    def step():
        for i in range(0, args.batch, micro):
            s = slice(i, i + micro)
            loss_sum, _ = loss_fn(ids[s], positions[s], targets[s])
            (loss_sum / n_tokens).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - t0
    tokens_per_s = n_tokens * args.steps / seconds
    flops_per_token = (6 if recompute else 4) * n_matmul
    name = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    peak = peak_tflops(name) if cuda else None
    achieved_tflops = tokens_per_s * flops_per_token / 1e12
    print(json.dumps({
        "bench": "gpu_train_throughput", "shape": args.shape, "device": name, "dtype": str(dtype)[6:],
        "batch": args.batch, "micro_batch": micro, "seq": args.seq, "steps": args.steps, "recompute": recompute,
        "lora_r": args.lora_r, "matmul_params": n_matmul,
        "trainable_params": sum(p.numel() for p in params), "build_seconds": round(build_s, 1),
        "step_seconds": round(seconds / args.steps, 4), "tokens_per_s": round(tokens_per_s, 1),
        "achieved_tflops": round(achieved_tflops, 2),
        "mfu": round(achieved_tflops / peak, 4) if peak else None,
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
