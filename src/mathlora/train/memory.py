"""Peak training memory of a Llama-shaped LoRA run, and the recompute / micro-batch plan that fits a budget.

Pure functions (no torch, no device): ``estimate_bytes`` models what autograd keeps per token and layer,
``plan`` picks the cheapest setting whose estimate fits. The model, per token and decoder layer, bf16 (``b``
bytes per element), hidden ``h``, MLP width ``i``, LoRA on a frozen base (a frozen ``nn.Linear`` saves no
input: its weight gets no gradient):

* each RMSNorm (transformers' eager one) keeps its input upcast to fp32: ``4h`` bytes, two per layer;
  Liger's RMSNorm (or ``selective`` recompute of the norms) keeps the input in bf16 only: ``b*h``;
* the first norm's output, the input of the LoRA A matrices: ``b*h``;
* attention (SDPA): q, k, v (repeated to every head) and the output: ``4*b*h``, plus fp32 log-sum-exp per head;
* the SwiGLU MLP: SiLU keeps ``gate``, the product keeps ``silu(gate)`` and ``up``: ``3*b*i``; Liger's
  SwiGLU (or ``selective`` recompute of ``silu(gate) * up``) keeps ``gate`` and ``up`` only: ``2*b*i``;
* a whole-layer-recomputed layer keeps only its input, ``b*h``; during its backward the layer's activations
  exist again (one layer at a time).

Head and loss: mathlora projects only learnable positions; per such token the logits peak at about ``12V``
bytes at the start of backward (fp32 log-softmax output, its gradient, the gradient of its input, the bf16
logits' gradient); Liger's fused linear cross-entropy never materialises the logits (it works in chunks of
``tokens / ceil(V / h)`` rows).

Peak = weights + LoRA weights, gradients and AdamW state (fp32, 16 bytes per trainable parameter) + saved
activations of every layer + the larger of (head/loss peak, one layer's recomputed activations) + a fixed
workspace allowance. Checked against the one figure measured so far: Llama-3-8B shape, whole-layer
recompute, 32 x 256 tokens, transformers' norms/MLP: 28.9 GiB peak (``torch.cuda.max_memory_allocated``);
this model gives 29.0 GiB (tests/train/test_memory.py). Nothing else is calibrated yet: the
no-recompute and Liger figures are the model's, to be checked on a GPU (bench/gpu_suite.sh records both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 2**30
WORKSPACE_BYTES = 256 * 2**20  # cuBLAS/SDPA workspaces and allocator slack not tied to activations


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    inter: int
    vocab: int
    params: int            # every parameter of the base model (embeddings included)
    trainable: int = 0     # LoRA parameters (fp32, with gradient and two AdamW moments)
    bytes_per_param: int = 2

    @classmethod
    def from_hf_config(cls, config, *, params: int, trainable: int, bytes_per_param: int = 2) -> "ModelShape":
        return cls(layers=config.num_hidden_layers, hidden=config.hidden_size, heads=config.num_attention_heads,
                   kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
                   inter=config.intermediate_size, vocab=config.vocab_size, params=params, trainable=trainable,
                   bytes_per_param=bytes_per_param)


@dataclass(frozen=True)
class Plan:
    """What to run: ``selective`` (elementwise recompute in every layer not fully recomputed),
    ``recompute_layers`` (whole-layer recompute of that many layers, from the first), rows per micro-batch."""
    selective: bool
    recompute_layers: int
    micro_batch_size: int
    estimate_bytes: int
    budget_bytes: int
    fits: bool = True

    @property
    def mode(self) -> str:
        if self.recompute_layers:
            return "full" if not self.selective else "partial"
        return "selective" if self.selective else "none"

    def describe(self, layers: int) -> str:
        what = {"none": "no activation recompute", "selective": "selective recompute (norms, SwiGLU activation)",
                "full": f"whole-layer recompute of all {self.recompute_layers} layers",
                "partial": f"whole-layer recompute of {self.recompute_layers}/{layers} layers, selective elsewhere"}
        return (f"{what[self.mode]}, micro-batch {self.micro_batch_size} rows; estimated peak "
                f"{self.estimate_bytes / GIB:.1f} GiB of {self.budget_bytes / GIB:.1f} GiB"
                + ("" if self.fits else " (does NOT fit: expect out-of-memory)"))


def layer_activation_bytes(s: ModelShape, *, liger: bool = False, selective: bool = False) -> int:
    """Bytes one decoder layer keeps per token for backward (no whole-layer recompute)."""
    b, h, i = s.bytes_per_param, s.hidden, s.inter
    light = liger or selective
    norms = 2 * (b * h if light else 4 * h)
    lora_input = b * h
    attention = 4 * b * h + 4 * s.heads
    mlp = (2 if light else 3) * b * i
    return norms + lora_input + attention + mlp


def head_peak_bytes(s: ModelShape, head_tokens: int, *, fused_ce: bool = False) -> int:
    if fused_ce:
        chunk = max(1, math.ceil(head_tokens / max(1, math.ceil(s.vocab / s.hidden))))
        return chunk * s.vocab * 6 + head_tokens * s.hidden * s.bytes_per_param * 2
    return 12 * s.vocab * head_tokens


def estimate_bytes(s: ModelShape, *, tokens: int, head_tokens: int | None = None, recompute_layers: int = 0,
                   selective: bool = False, liger: bool = False, fused_ce: bool | None = None) -> int:
    """Estimated peak bytes of one micro-batch of ``tokens`` (padding included), ``head_tokens`` of which go
    through the LM head (default: all). ``liger`` = Liger RMSNorm + SwiGLU (+ fused CE unless told)."""
    head_tokens = tokens if head_tokens is None else head_tokens
    fused_ce = liger if fused_ce is None else fused_ce
    k = max(0, min(recompute_layers, s.layers))
    weights = s.params * s.bytes_per_param + 16 * s.trainable
    per_layer = layer_activation_bytes(s, liger=liger, selective=selective)
    saved = tokens * ((s.layers - k) * per_layer + k * s.bytes_per_param * s.hidden)
    rope = tokens * 2 * (s.hidden // s.heads) * s.bytes_per_param
    transient = max(head_peak_bytes(s, head_tokens, fused_ce=fused_ce), tokens * per_layer if k else 0)
    return weights + saved + rope + transient + WORKSPACE_BYTES


def _halvings(n: int) -> list[int]:
    out, m = [], n
    while m >= 1:
        out.append(m)
        if m == 1:
            break
        m = (m + 1) // 2
    return out


def plan(s: ModelShape, *, budget_bytes: int, max_rows: int, row_tokens: int, step_tokens: int | None = None,
         head_fraction: float = 1.0, liger: bool = False, min_micro_tokens: int = 2048) -> Plan:
    """The cheapest setting whose estimate fits ``budget_bytes``, in this order of preference:

    1. no recompute, the whole step (``max_rows`` rows) in one micro-batch; 2. selective recompute (no
    matmul is redone), whole step; 3. no recompute, then selective, with the largest micro-batch of at least
    ``min_micro_tokens`` tokens (smaller ones leave a big GPU under-used); 4. whole-layer recompute of as few
    layers as fit, whole step; 5. every layer recomputed with the largest micro-batch that fits; 6. nothing
    fits: every layer, micro-batch 1, ``fits=False``.

    ``row_tokens``: tokens of a row (the pack length); ``step_tokens``: most real tokens a step can hold
    (caps the estimate when rows are short of full); ``head_fraction``: largest share of learnable tokens.
    """
    if max_rows < 1 or row_tokens < 1:
        raise ValueError("max_rows and row_tokens must be positive")

    def tokens_of(m: int) -> int:
        t = m * row_tokens
        return t if step_tokens is None else min(t, step_tokens + row_tokens)

    def est(m: int, *, k: int = 0, sel: bool = False) -> int:
        t = tokens_of(m)
        return estimate_bytes(s, tokens=t, head_tokens=math.ceil(t * head_fraction), recompute_layers=k,
                              selective=sel and not liger, liger=liger)

    def made(m: int, k: int, sel: bool, fits: bool = True) -> Plan:
        return Plan(selective=sel and not liger, recompute_layers=k, micro_batch_size=m,
                    estimate_bytes=est(m, k=k, sel=sel), budget_bytes=budget_bytes, fits=fits)

    full = max_rows
    for sel in ((False,) if liger else (False, True)):
        if est(full, sel=sel) <= budget_bytes:
            return made(full, 0, sel)
    for m in _halvings(full)[1:]:
        if tokens_of(m) < min_micro_tokens:
            break
        for sel in ((False,) if liger else (False, True)):
            if est(m, sel=sel) <= budget_bytes:
                return made(m, 0, sel)
    for k in range(1, s.layers):
        if est(full, k=k, sel=True) <= budget_bytes:
            return made(full, k, True)
    for m in _halvings(full):
        if est(m, k=s.layers) <= budget_bytes:
            return made(m, s.layers, False)
    return made(1, s.layers, False, fits=False)
