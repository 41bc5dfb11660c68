"""``lora.target_modules: all-linear`` (peft's own spelling): every linear layer but the LM head."""

import pytest
from pydantic import ValidationError

from mathlora.app.config import load_config
from mathlora.modeling.models import load_model
from mathlora.modeling.runtime import Runtime
from mathlora.train.config import LoraConfig
from mathlora.train.lora import apply_lora


def test_all_linear_is_accepted_alone_and_validated():
    assert LoraConfig(target_modules="all-linear").target_modules == ["all-linear"]
    assert load_config(None, ["lora.target_modules=all-linear"]).lora.target_modules == ["all-linear"]
    with pytest.raises(ValidationError, match="all-linear stands alone"):
        LoraConfig(target_modules=["all-linear", "q_proj"])
    with pytest.raises(ValidationError):
        LoraConfig(target_modules="q_proj")  # any other single name is still a list


def test_all_linear_adapts_every_projection_and_not_the_head():
    model = apply_lora(load_model("tiny-random-llama", Runtime.resolve()), LoraConfig(target_modules="all-linear"))
    adapted = {name.split(".lora_A.")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if ".lora_A." in name}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    qv = apply_lora(load_model("tiny-random-llama", Runtime.resolve()), LoraConfig())
    assert {name.split(".lora_A.")[0].rsplit(".", 1)[-1] for name, _ in qv.named_parameters() if ".lora_A." in name} == {"q_proj", "v_proj"}
