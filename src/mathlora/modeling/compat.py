"""Every transformers / peft version workaround in one place.

The tested range is pinned in ``pyproject.toml`` (transformers >= 4.56, where ``from_pretrained`` takes
``dtype=``; peft >= 0.17). Each helper below names the versions it bridges, so a workaround can be deleted
when the floor moves past it. Nothing here imports torch, transformers or peft at module level.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings
from typing import Any, Iterator


def cache_argument(model) -> str:
    """The forward() keyword for the KV cache: ``cache`` in newer transformers 5.x, ``past_key_values`` before."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(inner).forward).parameters else "past_key_values"


def output_cache(output) -> Any:
    """The KV cache a forward pass returned (``cache`` or, before the rename, ``past_key_values``)."""
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


def enable_activation_checkpointing(model) -> None:
    """Recompute activations in backward (non-reentrant). transformers 5.x renamed
    ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable``."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()


def set_attn_implementation(model, name: str) -> None:
    """Switch the attention kernel (sdpa, eager, flash_attention_2, ...): ``set_attn_implementation`` since
    transformers 4.56 or so; before, the private config field."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:
        model.config._attn_implementation = name


def from_pretrained(cls, path: str, *, dtype, **kwargs):
    """``cls.from_pretrained(path)`` in ``dtype``: the keyword is ``dtype`` since transformers 4.56
    (``torch_dtype`` before, deprecated after)."""
    import transformers

    key = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
    return cls.from_pretrained(path, **{key: dtype}, **kwargs)


def drop_gguf_quantizer(model) -> None:
    """A model dequantized from GGUF keeps a quantizer marker that makes ``save_pretrained`` refuse; the
    weights are plain tensors already. The attribute names moved between transformers 4.x and 5.x."""
    for attr in ("hf_quantizer", "is_quantized"):
        if hasattr(model, attr):
            try:
                delattr(model, attr)
            except AttributeError:
                setattr(model, attr, None if attr == "hf_quantizer" else False)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """peft (up to 0.21 at least) still asks transformers 5.x for ``is_gradient_checkpointing``, which warns."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _version(text: str) -> tuple[int, ...]:
    """``"4.56.2"`` -> (4, 56, 2); ``"5.0.0rc1"`` -> (5, 0, 0): leading digits of each part."""
    parts = []
    for piece in text.split(".")[:3]:
        m = re.match(r"\d+", piece)
        if m is None:
            break
        parts.append(int(m.group()))
    return tuple(parts)
