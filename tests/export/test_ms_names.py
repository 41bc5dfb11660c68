"""HF <-> MindFormers llama parameter names (pure Python; runs without MindSpore)."""

import pytest

from mathlora.errors import MathloraError
from mathlora.export import ms_names

PAIRS = [
    ("model.embed_tokens.weight", "model.tok_embeddings.embedding_weight"),
    ("model.norm.weight", "model.norm_out.weight"),
    ("lm_head.weight", "lm_head.weight"),
    ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.attention.wq.weight"),
    ("model.layers.3.self_attn.k_proj.weight", "model.layers.3.attention.wk.weight"),
    ("model.layers.12.self_attn.v_proj.weight", "model.layers.12.attention.wv.weight"),
    ("model.layers.31.self_attn.o_proj.weight", "model.layers.31.attention.wo.weight"),
    ("model.layers.7.mlp.gate_proj.weight", "model.layers.7.feed_forward.w1.weight"),
    ("model.layers.7.mlp.down_proj.weight", "model.layers.7.feed_forward.w2.weight"),
    ("model.layers.7.mlp.up_proj.weight", "model.layers.7.feed_forward.w3.weight"),
    ("model.layers.5.input_layernorm.weight", "model.layers.5.attention_norm.weight"),
    ("model.layers.5.post_attention_layernorm.weight", "model.layers.5.ffn_norm.weight"),
    ("model.layers.2.self_attn.q_proj.bias", "model.layers.2.attention.wq.bias"),
]


@pytest.mark.parametrize("hf,ms", PAIRS)
def test_base_names_both_ways(hf, ms):
    assert ms_names.hf_to_ms(hf) == ms
    assert ms_names.ms_to_hf(ms) == hf


def test_every_llama3_8b_name_maps_one_to_one():
    hf = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    for i in range(32):
        hf += [f"model.layers.{i}.self_attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        hf += [f"model.layers.{i}.mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")]
        hf += [f"model.layers.{i}.input_layernorm.weight", f"model.layers.{i}.post_attention_layernorm.weight"]
    ms = [ms_names.hf_to_ms(n) for n in hf]
    assert len(set(ms)) == len(hf) == 291
    assert [ms_names.ms_to_hf(n) for n in ms] == hf


@pytest.mark.parametrize("bad", ["model.layers.0.self_attn.rotary_emb.inv_freq", "transformer.h.0.attn.c_attn.weight",
                                 "model.layers.0.mlp.q_proj.weight", "model.layers.0.self_attn.gate_proj.weight",
                                 "model.layers.0.input_layernorm.bias", "model.embed_tokens.bias"])
def test_non_llama_names_are_refused(bad):
    with pytest.raises(MathloraError, match="no MindFormers llama name"):
        ms_names.hf_to_ms(bad)


@pytest.mark.parametrize("bad", ["model.layers.0.attention.w1.weight", "model.layers.0.feed_forward.wq.weight",
                                 "adam_m.model.layers.0.attention.wq.weight", "model.tok_embeddings.weight"])
def test_non_mindformers_names_are_refused(bad):
    with pytest.raises(MathloraError):
        ms_names.ms_to_hf(bad)


def test_lora_names_follow_mindpet():
    peft = "base_model.model.model.layers.4.self_attn.q_proj.lora_A.weight"
    assert ms_names.peft_to_ms(peft) == "model.layers.4.attention.wq.mindpet_delta_lora_a"
    assert ms_names.ms_to_peft("model.layers.4.attention.wq.mindpet_delta_lora_a") == peft
    b = "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"
    assert ms_names.peft_to_ms(b) == "model.layers.0.feed_forward.w2.mindpet_delta_lora_b"
    assert ms_names.ms_to_peft(ms_names.peft_to_ms(b)) == b
    # an in-memory peft name (with the adapter name) maps too
    assert ms_names.peft_to_ms("base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight") == \
        "model.layers.1.attention.wv.mindpet_delta_lora_b"
    assert ms_names.is_ms_lora("model.layers.1.attention.wv.mindpet_delta_lora_b")
    assert not ms_names.is_ms_lora("model.layers.1.attention.wv.weight")
    assert ms_names.lora_target("model.layers.1.feed_forward.w3.mindpet_delta_lora_a") == "up_proj"
    with pytest.raises(MathloraError):
        ms_names.peft_to_ms("base_model.model.model.layers.0.self_attn.q_proj.weight")


def test_target_modules_translate_to_mindformers_regex():
    assert ms_names.target_modules_regex(["q_proj", "v_proj"]) == ".*wq|.*wv"
    full = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]
    assert ms_names.target_modules_regex(full) == ".*wq|.*wk|.*wv|.*wo|.*w1|.*w2|.*w3"
    assert ms_names.target_modules_from_regex(".*wq|.*wk|.*wv|.*wo|.*w1|.*w2|.*w3") == full
    # peft's all-linear (the demo_notool recipe): every linear layer but the LM head, i.e. all seven
    assert ms_names.target_modules_regex(["all-linear"]) == ".*wq|.*wk|.*wv|.*wo|.*w1|.*w2|.*w3"
    with pytest.raises(MathloraError, match="no MindFormers llama equivalent"):
        ms_names.target_modules_regex(["q_proj", "lm_head"])
