"""Parameter names between Hugging Face Llama and MindFormers' llama, LoRA included. Pure Python, no MindSpore.

MindFormers (``mindformers/models/llama/convert_weight.py`` / ``convert_reversed.py``) names a Llama's tensors::

    HF (transformers LlamaForCausalLM)                 MindFormers LlamaForCausalLM
    model.embed_tokens.weight                          model.tok_embeddings.embedding_weight
    model.layers.N.self_attn.{q,k,v,o}_proj.weight     model.layers.N.attention.{wq,wk,wv,wo}.weight
    model.layers.N.mlp.gate_proj.weight                model.layers.N.feed_forward.w1.weight
    model.layers.N.mlp.down_proj.weight                model.layers.N.feed_forward.w2.weight
    model.layers.N.mlp.up_proj.weight                  model.layers.N.feed_forward.w3.weight
    model.layers.N.input_layernorm.weight              model.layers.N.attention_norm.weight
    model.layers.N.post_attention_layernorm.weight     model.layers.N.ffn_norm.weight
    model.norm.weight                                  model.norm_out.weight
    lm_head.weight                                     lm_head.weight

Tensors keep their layout (``[out, in]`` for linear weights; no q/k permutation for HF-format weights). With
tied embeddings MindFormers' ``lm_head.weight`` *is* ``model.tok_embeddings.embedding_weight`` and a checkpoint
holds it once, as HF safetensors do.

LoRA (MindFormers ``pet_config`` with ``pet_type: lora``; mindpet's ``LoRADense`` replaces the matched layers)::

    base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   model.layers.N.attention.wq.mindpet_delta_lora_a
    base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight   model.layers.N.attention.wq.mindpet_delta_lora_b

with the same shapes (A ``[r, in]``, B ``[out, r]``) and the same scaling ``alpha / r``. The target modules
of the recipe translate to MindFormers' regex: ``q_proj -> .*wq`` ... joined with ``|``.
"""

from __future__ import annotations

import re

from mathlora.errors import MathloraError

# HF module name -> (MindFormers block, MindFormers module name)
PROJ = {
    "q_proj": ("attention", "wq"), "k_proj": ("attention", "wk"), "v_proj": ("attention", "wv"),
    "o_proj": ("attention", "wo"),
    "gate_proj": ("feed_forward", "w1"), "down_proj": ("feed_forward", "w2"), "up_proj": ("feed_forward", "w3"),
}
HF_BLOCK = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
            "gate_proj": "mlp", "down_proj": "mlp", "up_proj": "mlp"}
NORMS = {"input_layernorm": "attention_norm", "post_attention_layernorm": "ffn_norm"}
MS_PROJ = {ms: hf for hf, (_, ms) in PROJ.items()}
MS_NORMS = {ms: hf for hf, ms in NORMS.items()}

HF_EMBED, MS_EMBED = "model.embed_tokens.weight", "model.tok_embeddings.embedding_weight"
HF_NORM, MS_NORM = "model.norm.weight", "model.norm_out.weight"
LM_HEAD = "lm_head.weight"
LORA_A, LORA_B = "mindpet_delta_lora_a", "mindpet_delta_lora_b"
PEFT_PREFIX = "base_model.model."

_HF_LAYER = re.compile(r"^model\.layers\.(\d+)\.(?:(self_attn|mlp)\.(\w+_proj)|(\w+_layernorm))\.(weight|bias)$")
_MS_LAYER = re.compile(r"^model\.layers\.(\d+)\.(?:(attention|feed_forward)\.(w[qkvo123])|(attention_norm|ffn_norm))"
                       r"\.(weight|bias)$")
_HF_LORA = re.compile(r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)"
                      r"\.lora_([AB])(?:\.[\w-]+)?\.weight$")
_MS_LORA = re.compile(r"^model\.layers\.(\d+)\.(attention|feed_forward)\.(w[qkvo123])\.mindpet_delta_lora_([ab])$")


def hf_to_ms(name: str) -> str:
    """MindFormers name of a HF Llama parameter; MathloraError for a name outside the Llama family."""
    if name == HF_EMBED:
        return MS_EMBED
    if name == HF_NORM:
        return MS_NORM
    if name == LM_HEAD:
        return LM_HEAD
    m = _HF_LAYER.match(name)
    if m:
        layer, block, proj, norm, kind = m.groups()
        if proj is not None and proj in PROJ and HF_BLOCK[proj] == block:
            ms_block, ms_name = PROJ[proj]
            return f"model.layers.{layer}.{ms_block}.{ms_name}.{kind}"
        if norm is not None and norm in NORMS and kind == "weight":
            return f"model.layers.{layer}.{NORMS[norm]}.weight"
    raise MathloraError(f"parameter {name!r} has no MindFormers llama name (only Llama-family models convert)")


def ms_to_hf(name: str) -> str:
    """HF Llama name of a MindFormers llama parameter (inverse of ``hf_to_ms``)."""
    if name == MS_EMBED:
        return HF_EMBED
    if name == MS_NORM:
        return HF_NORM
    if name == LM_HEAD:
        return LM_HEAD
    m = _MS_LAYER.match(name)
    if m:
        layer, block, ms_name, norm, kind = m.groups()
        if ms_name is not None:
            hf = MS_PROJ[ms_name]
            if PROJ[hf][0] == block:
                return f"model.layers.{layer}.{HF_BLOCK[hf]}.{hf}.{kind}"
        elif kind == "weight":
            return f"model.layers.{layer}.{MS_NORMS[norm]}.weight"
    raise MathloraError(f"checkpoint parameter {name!r} is not a MindFormers llama weight")


def is_ms_lora(name: str) -> bool:
    return name.endswith((LORA_A, LORA_B))


def is_hf_lora(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def peft_to_ms(name: str) -> str:
    """MindFormers (mindpet) name of a peft LoRA tensor as saved in ``adapter_model.safetensors``."""
    m = _HF_LORA.match(name)
    if m:
        layer, block, proj, ab = m.groups()
        if proj in PROJ and HF_BLOCK[proj] == block:
            ms_block, ms_name = PROJ[proj]
            return f"model.layers.{layer}.{ms_block}.{ms_name}.mindpet_delta_lora_{ab.lower()}"
    raise MathloraError(f"adapter tensor {name!r} is not a LoRA weight of a Llama projection")


def ms_to_peft(name: str) -> str:
    """peft's saved name (``adapter_model.safetensors``) of a MindFormers LoRA tensor."""
    m = _MS_LORA.match(name)
    if m:
        layer, block, ms_name, ab = m.groups()
        hf = MS_PROJ[ms_name]
        if PROJ[hf][0] == block:
            return f"{PEFT_PREFIX}model.layers.{layer}.{HF_BLOCK[hf]}.{hf}.lora_{ab.upper()}.weight"
    raise MathloraError(f"checkpoint parameter {name!r} is not a MindFormers LoRA weight")


def lora_target(name: str) -> str:
    """The HF module name (``q_proj`` ...) a MindFormers LoRA tensor belongs to."""
    m = _MS_LORA.match(name)
    if not m:
        raise MathloraError(f"checkpoint parameter {name!r} is not a MindFormers LoRA weight")
    return MS_PROJ[m.group(3)]


def target_modules_regex(target_modules: list[str]) -> str:
    """``["q_proj", "v_proj"]`` -> ``".*wq|.*wv"`` (MindFormers ``pet_config.target_modules``); peft's
    ``all-linear`` (every linear layer but the LM head) names all seven projections."""
    if list(target_modules) == ["all-linear"]:
        target_modules = list(PROJ)
    unknown = [t for t in target_modules if t not in PROJ]
    if unknown:
        raise MathloraError(f"lora.target_modules {', '.join(unknown)} have no MindFormers llama equivalent "
                            f"(allowed: {', '.join(PROJ)})")
    if not target_modules:
        raise MathloraError("lora.target_modules is empty")
    return "|".join(f".*{PROJ[t][1]}" for t in target_modules)


def target_modules_from_regex(regex: str) -> list[str]:
    """Inverse of ``target_modules_regex`` for the ``.*wq|.*wv`` form."""
    out = []
    for part in regex.split("|"):
        name = part.strip().removeprefix(".*")
        if name not in MS_PROJ:
            raise MathloraError(f"pet_config.target_modules part {part!r} is not one of "
                                f"{', '.join('.*' + m for m in MS_PROJ)}")
        out.append(MS_PROJ[name])
    return out
