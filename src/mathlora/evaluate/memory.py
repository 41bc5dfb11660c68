"""``eval.batch_size: auto``: the largest generation batch whose KV cache and prefill fit the device.

Per sequence of up to ``max_length`` tokens (prompt + completion) the KV cache holds
``2 x layers x kv_heads x head_dim x bytes`` per token; the prefill of a batch briefly holds about
``(3 x MLP width + 4 x hidden)`` activations per prompt token. The budget is ``fraction`` of the device's
memory minus what is already allocated (the weights). Off CUDA the batch is ``cpu_batch`` (host memory is
not the limit there, compute is). The batch never exceeds the number of prompts.
"""

from __future__ import annotations


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * dtype_bytes


def sequence_bytes(config, max_length: int, dtype_bytes: int) -> int:
    """Peak bytes one sequence adds: its KV cache at full length, plus its share of the prefill."""
    prefill = max_length * (3 * getattr(config, "intermediate_size", 4 * config.hidden_size)
                            + 4 * config.hidden_size) * dtype_bytes
    logits = config.vocab_size * 4 * 2
    return kv_bytes_per_token(config, dtype_bytes) * max_length + prefill + logits


def auto_batch_size(config, *, max_length: int, dtype_bytes: int, budget_bytes: int | None, prompts: int,
                    cpu_batch: int = 16, cap: int = 4096) -> int:
    if budget_bytes is None:
        return max(1, min(cpu_batch, prompts))
    fit = budget_bytes // max(1, sequence_bytes(config, max_length, dtype_bytes))
    return int(max(1, min(fit, prompts, cap)))


def resolve_batch_size(setting, model, *, max_length: int, prompts: int, fraction: float = 0.85) -> int:
    """``eval.batch_size`` as a number: the setting itself, or the auto size for ``model``'s device."""
    if setting != "auto":
        return int(setting)
    import torch

    param = next(model.parameters())
    budget = None
    if param.is_cuda:
        _free, total = torch.cuda.mem_get_info(param.device)
        budget = int(total * fraction) - torch.cuda.memory_allocated(param.device)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return auto_batch_size(inner.config, max_length=max_length, dtype_bytes=param.element_size(),
                           budget_bytes=budget, prompts=prompts)
