"""Training speed levers, each optional: recompute plan, Liger kernels, torch.compile, fused AdamW.

* ``resolve_plan``: ``train.gradient_checkpointing`` ``true``/``false`` keep their meaning (every layer /
  none); ``auto`` asks ``mathlora.train.memory.plan`` for the cheapest setting that fits the device
  (``train.memory_fraction`` of its memory), ``selective`` recomputes only elementwise ops (the norms and
  the SwiGLU activation: no matmul is redone). ``train.micro_batch_size: auto`` takes the plan's micro-batch
  (the whole step when it fits).
* ``apply_recompute``: whole-layer recompute of the first ``k`` decoder layers (transformers' own
  checkpointing, switched off on the others) and/or selective recompute in the remaining layers.
* ``apply_liger``: Liger Kernel's RMSNorm, SwiGLU and RoPE patched into the model instance, and its fused
  linear cross-entropy for the loss; only when ``liger-kernel`` is installed (``pip install 'mathlora[liger]'``)
  and the device is CUDA, with one log line saying so.
* ``compile_layers``: ``torch.compile`` of each decoder layer (``train.compile``); ``reduce-overhead`` adds
  CUDA graphs, for which the trainer pads every micro-batch to a fixed shape.
* ``make_optimizer``: AdamW, ``fused=True`` on CUDA (one kernel for every LoRA tensor).
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from typing import Callable

import torch

from mathlora.modeling.compat import enable_activation_checkpointing
from mathlora.run_dir.tokens import IGNORE
from mathlora.train.memory import ModelShape, Plan, plan
from mathlora.modeling.models import count_parameters
from mathlora.train.memory import estimate_bytes


def log(message: str) -> None:
    print(f"train: {message}", file=sys.stderr, flush=True)


def trim_host_heap(device: str) -> bool:
    """On a CPU, give the C heap's free pages back to the OS (glibc's ``malloc_trim``); False elsewhere or without
    glibc. Tensors of ever-new sizes (packed rows) leave free holes that glibc keeps: a bf16 tiny-model run's RSS
    crept ~1 MB a step (947 -> 1132 MB over 200 steps) and stayed at 565 MB when trimmed at each step; a call
    took ~20 ms there."""
    if device != "cpu":
        return False
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def decoder_layers(model) -> list[torch.nn.Module]:
    """The decoder layers of a (peft-wrapped) causal LM, in order."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(getattr(inner, "model", inner), "layers", None)
    if layers is None:
        layers = [m for m in inner.modules() if type(m).__name__.endswith("DecoderLayer")]
    return list(layers)


# -- recompute ----------------------------------------------------------------------------------------------

def _checkpointed(fn: Callable) -> Callable:
    from torch.utils.checkpoint import checkpoint

    def run(*args, **kwargs):
        if torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False, **kwargs)
        return fn(*args, **kwargs)

    return run


def _selective(layer: torch.nn.Module) -> bool:
    """Recompute the layer's RMSNorms and ``act(gate) * up`` in backward instead of keeping their activations."""
    touched = False
    for name in ("input_layernorm", "post_attention_layernorm"):
        norm = getattr(layer, name, None)
        if norm is not None and not getattr(norm, "_mathlora_selective", False):
            norm.forward = _checkpointed(norm.forward)
            norm._mathlora_selective = True
            touched = True
    mlp = getattr(layer, "mlp", None)
    if mlp is not None and all(hasattr(mlp, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")) \
            and not getattr(mlp, "_mathlora_selective", False):
        act = mlp.act_fn
        gated = _checkpointed(lambda g, u: act(g) * u)

        def forward(x, _mlp=mlp):
            return _mlp.down_proj(gated(_mlp.gate_proj(x), _mlp.up_proj(x)))

        mlp.forward = forward
        mlp._mathlora_selective = True
        touched = True
    return touched


def apply_recompute(model, *, layers: int, selective: bool) -> None:
    """Whole-layer recompute of the first ``layers`` decoder layers; selective recompute in the others."""
    stack = decoder_layers(model)
    if layers > 0:
        enable_activation_checkpointing(model)
        for i, layer in enumerate(stack):
            if hasattr(layer, "gradient_checkpointing"):
                layer.gradient_checkpointing = i < layers
        on = sum(bool(getattr(x, "gradient_checkpointing", False)) for x in stack)
        if stack and on != min(layers, len(stack)) and layers < len(stack):
            log(f"this model's layers do not expose per-layer checkpointing; every layer is recomputed")
    if selective:
        done = sum(_selective(layer) for layer in stack[layers:])
        if done == 0 and len(stack) > layers:
            log("selective recompute: no RMSNorm/SwiGLU found in the decoder layers; nothing recomputed")


def model_shape(model, *, dtype) -> ModelShape | None:
    """The memory model's view of a (peft-wrapped) causal LM; None when its config is not Llama-like."""

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    trainable, total = count_parameters(model)
    try:
        return ModelShape.from_hf_config(inner.config, params=total - trainable, trainable=trainable,
                                         bytes_per_param=torch.tensor([], dtype=dtype).element_size())
    except AttributeError:
        return None


def resolve_plan(setting, micro_setting, *, shape: ModelShape | None, n_layers: int, device: str,
                 memory_fraction: float, max_rows: int, row_tokens: int, step_tokens: int, head_fraction: float, liger: bool) -> Plan:
    """The recompute and micro-batch setting to train with (see the module docstring)."""
    budget = device_budget(device, memory_fraction) if shape is not None else None
    if setting == "auto":
        if budget is None:  # CPU (host memory) or an unknown shape: keep every activation
            m = max_rows if micro_setting == "auto" else int(micro_setting)
            return Plan(selective=False, recompute_layers=0, micro_batch_size=m, estimate_bytes=0, budget_bytes=0)
        p = plan(shape, budget_bytes=budget, max_rows=max_rows, row_tokens=row_tokens, step_tokens=step_tokens,
                 head_fraction=head_fraction, liger=liger)
        if micro_setting != "auto":
            p = Plan(p.selective, p.recompute_layers, int(micro_setting), p.estimate_bytes, p.budget_bytes, p.fits)
        return p
    layers = n_layers if setting is True else 0
    selective = setting == "selective"
    m = int(micro_setting) if micro_setting != "auto" else max_rows
    if micro_setting == "auto" and budget is not None and shape is not None:
        while m > 1 and estimate_bytes(shape, tokens=min(m * row_tokens, step_tokens + row_tokens),
                                       head_tokens=int(min(m * row_tokens, step_tokens + row_tokens) * head_fraction),
                                       recompute_layers=layers, selective=selective, liger=liger) > budget:
            m = (m + 1) // 2
    return Plan(selective=selective, recompute_layers=layers, micro_batch_size=m, estimate_bytes=0,
                budget_bytes=budget or 0)


def device_budget(device: str, fraction: float) -> int | None:
    if not device.startswith("cuda"):
        return None
    index = torch.device(device).index
    _free, total = torch.cuda.mem_get_info(index if index is not None else torch.cuda.current_device())
    return int(total * fraction)


# -- Liger Kernel ---------------------------------------------------------------------------------------------

def liger_available() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def want_liger(setting: str, device: str) -> bool:
    """``auto``: when installed and on CUDA; ``true``: the same, but say why not when it cannot."""
    if setting is False or setting == "false":
        return False
    ok = device.startswith("cuda") and liger_available()
    if not ok and setting is True:
        log("train.liger=true but " + ("liger-kernel is not installed (pip install 'mathlora[liger]')"
                                       if not liger_available() else "the device is not CUDA") + "; not used")
    return ok


def apply_liger(model) -> Callable | None:
    """Patch Liger's RMSNorm, SwiGLU and RoPE into ``model`` (before peft); return the fused linear CE loss
    ``fn(weight, hidden, targets) -> summed loss`` for ``LearnableTokenLoss``, or None when not applicable."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance

    model_type = getattr(model.config, "model_type", None)
    _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)
    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE, reduction="sum")

    def fused(weight, hidden, targets):
        return loss(weight, hidden, targets)

    log(f"Liger Kernel on ({model_type}): RMSNorm, SwiGLU, RoPE, fused linear cross-entropy")
    return fused


# -- torch.compile --------------------------------------------------------------------------------------------

def compile_layers(model, mode: str, *, backend: str = "inductor") -> int:
    """``torch.compile`` every decoder layer in place; returns how many. ``mode``: default, reduce-overhead
    (CUDA graphs: needs fixed shapes), max-autotune."""
    stack = decoder_layers(model)
    options = {} if mode == "default" else {"mode": mode}
    for layer in stack:
        layer.compile(backend=backend, dynamic=False, **options)
    log(f"torch.compile ({mode}, {backend}) on {len(stack)} decoder layers")
    return len(stack)


# -- optimizer ------------------------------------------------------------------------------------------------

def make_optimizer(params, *, lr: float, betas, eps: float, weight_decay: float, device: str):
    """AdamW; the fused CUDA implementation when every parameter is on a CUDA device."""
    params = list(params)
    fused = device.startswith("cuda") and all(p.is_cuda and p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             **({"fused": True} if fused else {}))


def plan_for_records(train, peft_model, records, *, world: int, device: str, dtype, pack_length: int,
                     liger: bool) -> tuple[Plan, int]:
    """``resolve_plan`` for these records (the longest rows of one process's share of a step), with the
    recompute applied to the model; returns (plan, row tokens: the padded row width)."""
    local_records = -(-train.global_batch_size // world)
    longest = max(len(r) for r in records)
    row_tokens = max(pack_length, longest) if train.packing else longest
    biggest = sorted((len(r) for r in records), reverse=True)[:local_records]
    n_layers = len(decoder_layers(peft_model))
    chosen = resolve_plan(
        train.gradient_checkpointing, train.micro_batch_size, shape=model_shape(peft_model, dtype=dtype),
        n_layers=n_layers, device=device, memory_fraction=train.memory_fraction, max_rows=local_records,
        row_tokens=row_tokens, step_tokens=sum(biggest), head_fraction=max(r.learnable_tokens / len(r) for r in records),
        liger=liger)
    apply_recompute(peft_model.get_base_model(), layers=chosen.recompute_layers, selective=chosen.selective)
    return chosen, row_tokens
