"""Strict FLOP accounting for training: model FLOPs (MFU) and hardware FLOPs (HFU), kept apart.

``N`` counts the parameters that do matmul work: the weights of every ``nn.Linear`` (decoder layers, LM
head, LoRA A/B). Input embeddings (a lookup), norms and biases do no matmul and are left out. Attention's
score/value products (``QK^T``, ``AV``) are not parameter matmuls and are left out too (at seq 256 on a
Llama-3-8B shape they are under 0.5% of ``2N`` per token).

Per token, a matmul with ``P`` weights costs ``2P`` FLOPs forward, ``2P`` for the gradient of its input and
``2P`` for the gradient of its weight. So:

* full fine-tuning: ``6N`` model FLOPs per token;
* LoRA with a frozen base: ``4 N_frozen + 6 N_trainable`` (frozen weights get no weight gradient; the
  trainable LoRA weights are a rounding error, so this is ``4N`` for practical purposes).

The LM head is only *needed* where a token has a target: mathlora's loss projects only the learnable
positions (``head_tokens`` = learnable tokens), so model FLOPs count the head on those tokens only, and a
run that projects every position (the transformers baseline) does extra *hardware* work, not model work.
Activation recompute adds one forward (``2P``) for every recomputed weight: hardware FLOPs, not model
FLOPs. MFU = model FLOPs / (seconds x peak); HFU = hardware FLOPs / (seconds x peak).
"""

from __future__ import annotations

from dataclasses import dataclass

# Dense bf16 tensor-core peak (no sparsity) per device, in TFLOP/s; matched by substring of the CUDA name.
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "H800": 989.4, "GH200": 989.4, "A100": 312.0,
                    "A800": 312.0, "L40S": 362.1, "A10G": 70.0, "L4": 121.0}


@dataclass(frozen=True)
class MatmulParams:
    """Matmul weights of a causal LM by role (see the module docstring)."""
    body: int        # frozen weights in the decoder layers (attention + MLP projections)
    head: int        # LM head (counted even when tied to the input embedding: it still multiplies)
    trainable: int   # trainable matmul weights (LoRA A/B; for full fine-tuning: body + head)
    full_finetune: bool = False

    @property
    def total(self) -> int:
        """N: every matmul weight (LoRA included)."""
        return self.body + self.head + (0 if self.full_finetune else self.trainable)

    @property
    def layers(self) -> int:
        """Matmul weights inside the decoder layers (frozen body + LoRA), what whole-layer recompute redoes."""
        return self.body + (0 if self.full_finetune else self.trainable)


def model_flops_per_token(n: int, *, full_finetune: bool = False) -> int:
    """The rule of thumb: ``4N`` per token for LoRA on a frozen base, ``6N`` for full fine-tuning."""
    return (6 if full_finetune else 4) * n


def model_flops(p: MatmulParams, tokens: int, head_tokens: int | None = None) -> int:
    """FLOPs the training step needs: forward + input gradients everywhere, weight gradients of trainable
    weights. ``tokens``: every real (non-padding) input token; ``head_tokens``: tokens whose LM-head output is
    used by the loss (default: all)."""
    head_tokens = tokens if head_tokens is None else head_tokens
    if p.full_finetune:
        return 6 * p.body * tokens + 6 * p.head * head_tokens
    return 4 * p.body * tokens + 6 * p.trainable * tokens + 4 * p.head * head_tokens


def hardware_flops(p: MatmulParams, tokens: int, head_tokens: int | None = None, *,
                   recomputed_fraction: float = 0.0, computed_tokens: int | None = None,
                   computed_head_tokens: int | None = None) -> int:
    """FLOPs the step executes: ``model_flops`` on what is actually computed (padding, every head position
    when the implementation projects them all), plus one extra forward of the recomputed decoder-layer
    weights (``recomputed_fraction`` of them: 1.0 for whole-layer recompute of every layer, k/L for k of L
    layers, 0 for none or for elementwise-only recompute)."""
    tokens_run = tokens if computed_tokens is None else computed_tokens
    head_run = computed_head_tokens if computed_head_tokens is not None else (
        tokens_run if head_tokens is None else head_tokens)
    base = model_flops(p, tokens_run, head_run)
    return base + round(2 * p.layers * tokens_run * recomputed_fraction)


def peak_tflops(device_name: str | None) -> float | None:
    """Dense bf16 peak of a known CUDA device name, else None (MFU is then left out, never guessed)."""
    if not device_name:
        return None
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_BF16_TFLOPS[key]
    return None


def utilization(flops: float, seconds: float, peak: float | None) -> float | None:
    """Achieved / peak, or None when the peak is unknown or no time passed."""
    if not peak or seconds <= 0:
        return None
    return flops / seconds / (peak * 1e12)


def count_matmul_params(model, *, full_finetune: bool = False) -> MatmulParams:
    """MatmulParams of a (peft-wrapped) causal LM, from its ``nn.Linear`` modules and output embedding."""
    import torch

    head_module = None
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(inner, "get_output_embeddings"):
        head_module = inner.get_output_embeddings()
    head = head_module.weight.numel() if head_module is not None else 0
    body = trainable = 0
    seen: set[int] = set()
    for module in model.modules():
        if module is head_module or not isinstance(module, torch.nn.Linear):
            continue
        w = module.weight
        if id(w) in seen:
            continue
        seen.add(id(w))
        if w.requires_grad and not full_finetune:
            trainable += w.numel()
        else:
            body += w.numel()
    if full_finetune:
        trainable = body + head
    return MatmulParams(body=body, head=head, trainable=trainable, full_finetune=full_finetune)


def llama_matmul_params(*, layers: int, hidden: int, heads: int, kv_heads: int, inter: int, vocab: int,
                        lora_r: int = 0, lora_targets: tuple[str, ...] = ("q_proj", "v_proj")) -> MatmulParams:
    """MatmulParams of a Llama-shaped model from its shape alone (no model needed)."""
    head_dim = hidden // heads
    q = o = hidden * heads * head_dim
    k = v = hidden * kv_heads * head_dim
    per_layer = q + k + v + o + 3 * hidden * inter
    shapes = {"q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv_heads * head_dim),
              "v_proj": (hidden, kv_heads * head_dim), "o_proj": (heads * head_dim, hidden),
              "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}
    lora = sum(lora_r * (shapes[t][0] + shapes[t][1]) for t in lora_targets) if lora_r else 0
    return MatmulParams(body=layers * per_layer, head=hidden * vocab, trainable=layers * lora)


def step_report(p: MatmulParams, *, tokens: int, learnable_tokens: int, seconds: float, device_name: str | None,
                recomputed_fraction: float = 0.0, computed_tokens: int | None = None,
                computed_head_tokens: int | None = None) -> dict:
    """Figures for a summary or a bench row: TFLOP/s and MFU/HFU (None when the device's peak is unknown)."""
    mf = model_flops(p, tokens, learnable_tokens)
    hf = hardware_flops(p, tokens, learnable_tokens, recomputed_fraction=recomputed_fraction,
                        computed_tokens=computed_tokens,
                        computed_head_tokens=learnable_tokens if computed_head_tokens is None else computed_head_tokens)
    peak = peak_tflops(device_name)
    mfu, hfu = utilization(mf, seconds, peak), utilization(hf, seconds, peak)
    return {"matmul_params": p.total, "model_flops": mf, "hardware_flops": hf,
            "model_tflops_per_s": round(mf / seconds / 1e12, 3) if seconds > 0 else None,
            "hardware_tflops_per_s": round(hf / seconds / 1e12, 3) if seconds > 0 else None,
            "peak_tflops": peak, "mfu": round(mfu, 4) if mfu is not None else None,
            "hfu": round(hfu, 4) if hfu is not None else None}
