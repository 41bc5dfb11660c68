"""The version workarounds in mathlora.modeling.compat, on the installed transformers/peft."""

import torch

from mathlora.modeling import compat
from mathlora.modeling.models import load_model
from mathlora.modeling.runtime import Runtime


def test_version_parsing():
    assert compat._version("4.56.2") == (4, 56, 2)
    assert compat._version("5.0.0rc1") == (5, 0, 0)
    assert compat._version("5.24.0.dev0") == (5, 24, 0)


def test_cache_keyword_is_a_forward_parameter_and_returns_a_cache():
    model = load_model("tiny-random-llama", Runtime.resolve()).eval()
    name = compat.cache_argument(model)
    assert name in ("cache", "past_key_values")
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True)
    assert compat.output_cache(out) is not None


def test_from_pretrained_takes_the_dtype(tmp_path):
    from transformers import AutoModelForCausalLM

    load_model("tiny-random-llama", Runtime.resolve()).save_pretrained(tmp_path)
    model = compat.from_pretrained(AutoModelForCausalLM, str(tmp_path), dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16


def test_activation_checkpointing_can_be_enabled():
    model = load_model("tiny-random-llama", Runtime.resolve())
    compat.enable_activation_checkpointing(model)
    flag = getattr(model, "is_activation_checkpointing", None)
    if flag is None:
        flag = model.is_gradient_checkpointing
    assert flag
