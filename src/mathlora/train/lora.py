"""LoRA through peft: rank, alpha, dropout and target modules from ``cfg.lora``; the model a training starts from."""

from __future__ import annotations

from mathlora.modeling.compat import quiet_peft
from mathlora.errors import MathloraError
from mathlora.modeling.adapters import checked_adapter_weights, read_adapter_config, require_adapter_dir
from mathlora.train.config import LoraConfig
from mathlora.train.job import TrainJob
from mathlora.modeling.compat import enable_activation_checkpointing, set_attn_implementation
from mathlora.modeling.models import load_model
from mathlora.train.attention import NAME as ROWS_ATTENTION
from mathlora.train.attention import register as register_rows_attention


def apply_lora(model, lora: LoraConfig):
    """Wrap ``model`` in a peft model with fresh LoRA weights (A from the torch RNG, B zero), or
    ``lora.init_from``'s."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    all_linear = list(lora.target_modules) == ["all-linear"]  # peft's: every linear layer but the output head
    missing = [t for t in lora.target_modules if t not in names and not all_linear]
    if missing:
        raise MathloraError(f"lora.target_modules: {', '.join(missing)} not in the model "
                            f"(linear layers include: {', '.join(sorted(n for n in names if n.endswith('proj')))})")
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules="all-linear" if all_linear else list(lora.target_modules),
                            bias="none", task_type="CAUSAL_LM")
    with quiet_peft():
        peft_model = get_peft_model(model, config)
    if lora.init_from:
        load_initial_adapter(peft_model, lora)
    return peft_model


def load_initial_adapter(peft_model, lora: LoraConfig) -> None:
    """``lora.init_from``'s weights into ``peft_model`` in place of the fresh ones (continued training). The
    adapter must be this config's: the same rank and alpha, a weight for every adapted layer and none more."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    folder = require_adapter_dir(lora.init_from)
    weights, problem = checked_adapter_weights(folder)
    if problem:
        raise MathloraError(f"lora.init_from: adapter {folder}: {problem}")
    saved = read_adapter_config(folder)
    if (saved.get("r"), saved.get("lora_alpha")) != (lora.r, lora.alpha):
        raise MathloraError(f"lora.init_from: adapter {folder} has r={saved.get('r')}, alpha={saved.get('lora_alpha')}; "
                            f"this config has r={lora.r}, alpha={lora.alpha:g}")
    expected = set(get_peft_model_state_dict(peft_model))
    if set(weights) != expected:
        odd = sorted(set(weights) ^ expected)[0]
        where = "the model has no" if odd in weights else "the adapter lacks"
        raise MathloraError(f"lora.init_from: adapter {folder} does not fit lora.target_modules "
                            f"({where} {odd})")
    try:
        set_peft_model_state_dict(peft_model, weights)
    except RuntimeError as e:  # a shape that differs: another model's adapter
        raise MathloraError(f"lora.init_from: adapter {folder} does not fit the model "
                            f"({str(e).strip().splitlines()[-1].strip()[:160]})") from None


def attention_for(job: TrainJob) -> str | None:
    """The attention kernel: ``train.attn_implementation``, else on a CPU with packing ``mathlora_rows``
    (``mathlora.train.attention``: no padding through the linear layers, eager attention within the packed rows),
    else ``eager`` for bf16 on a CPU, else the model's default (sdpa). On a CPU, bf16 matmuls (eager: two batched
    matmuls and an fp32 softmax over the packed rows' block-diagonal mask) beat torch's CPU flash-attention
    kernel, which dominates a bf16 step there: the demo's step (SmolLM2-135M, 16 records in 256-token rows, one
    thread) took 9.0-11.4 s against 12.3-12.5 s with sdpa (BENCHMARKS.md). A speed setting: the same numbers up
    to rounding, so not in the fingerprint."""
    if job.train.attn_implementation:
        return job.train.attn_implementation
    runtime = job.runtime  # the job's own runtime: FSDP builds on the CPU for a CUDA run
    if runtime.device != "cpu":
        return None
    if job.train.packing:
        return ROWS_ATTENTION
    return "eager" if runtime.precision == "bf16" else None


def build_model(job: TrainJob, runtime, *, before_lora=None, recompute: bool | None = None):
    """Base model (frozen) + fresh LoRA weights, built on the CPU from the seed (the same model on every
    machine), activation checkpointing as configured, then moved to ``runtime.device``.

    ``before_lora(model)`` runs on the base model before LoRA is attached (kernel patches);
    ``recompute=False`` leaves activation recompute to the caller (the memory plan).
    """
    import torch


    torch.manual_seed(job.seed)
    model = load_model(job.model, runtime.replace(device="cpu"))
    model.config.use_cache = False
    attention = attention_for(job)
    if attention == ROWS_ATTENTION:
        register_rows_attention()
    if attention:
        set_attn_implementation(model, attention)
    if before_lora is not None:
        before_lora(model)
    if (job.train.gradient_checkpointing is True) if recompute is None else recompute:
        enable_activation_checkpointing(model)
    torch.manual_seed(job.seed)
    return apply_lora(model, job.lora).to(runtime.device)
