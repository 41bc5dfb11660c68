"""Merge a LoRA adapter into its base model: a plain transformers folder (safetensors + tokenizer).

``merge_adapter(runtime, "smollm2-135m-instruct", "runs/demo/train/adapter", "runs/demo/merged")`` writes a folder
that ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load without peft.
The output folder is written atomically, and only over an earlier merged folder (its marker) unless
``overwrite``: an existing folder of other files is refused, never deleted. An adapter whose weights do not
load or are not finite (NaN/Infinity) is refused.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mathlora.modeling.adapters import adapter_problem, require_adapter_dir
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.hashing import CARD
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.models import is_tiny, resolve_model_dir
from mathlora.modeling.adapters import read_adapter_config
from mathlora.export.model_card import CardFacts
from mathlora.modeling.compat import quiet_peft
from mathlora.export.model_card import card_text, write_card
from mathlora.modeling.models import load_model, load_tokenizer
from mathlora.modeling.templates import TEMPLATES, exported_tokenizer, save_tokenizer
from mathlora.run_dir.atomic import atomic_path
from mathlora.run_dir.guards import check_output_dir, write_artifact_marker

def stored_dtype(model: str):
    """The dtype a model is stored in (HF folder config), fp32 when unknown."""
    import torch


    if is_tiny(model):
        return torch.float32
    config = resolve_model_dir(model) / "config.json"
    try:
        data = read_json_document(config, "model config")
    except (OSError, MathloraError):
        data = None
    name = (data.get("dtype") or data.get("torch_dtype")) if isinstance(data, dict) else None
    return getattr(torch, name) if isinstance(name, str) and hasattr(torch, name) else torch.float32


def adapter_facts(model: str, adapter: Path):
    """The card facts of an adapter folder: its mathlora card's, else what ``adapter_config.json`` says."""

    facts = CardFacts.from_card(adapter / CARD)
    if facts is not None:
        return facts
    config = read_adapter_config(adapter)
    targets = config.get("target_modules")
    recipe = {"LoRA r / alpha / dropout": f"{config.get('r')} / {config.get('lora_alpha')} / "
                                          f"{config.get('lora_dropout', 0)}",
              "target modules": ", ".join(targets) if isinstance(targets, list) else str(targets)}
    return CardFacts(model, "unknown", recipe)


def merge_adapter(runtime: Runtime | None, model: str, adapter_dir, output_dir, *, dtype=None,
                  overwrite: bool = False, template: str | None = None) -> Path:
    """Load ``model`` (any mathlora model spec), apply the adapter, merge, save; returns ``output_dir``.

    The merge runs on ``runtime.device`` (default: ``Runtime.resolve()``). It computes ``W + scale * B @ A``
    in fp32 unless the runtime's precision was pinned (``runtime.precision`` / ``$MATHLORA_PRECISION``), so
    a small LoRA delta is not rounded away against bf16 weights, and saves the result in ``dtype`` (``fp32``,
    ``bf16``, ``fp16``; default: the dtype the base model is stored in). ``overwrite``: replace an existing
    output folder that is not an earlier merge.

    The saved tokenizer has the training prompt as its chat template (``templates.exported_tokenizer``), the
    ``template`` given or the one the adapter's card records (an adapter mathlora did not write, without
    either: the base tokenizer as it is), and the folder gets a model card (``README.md``) built from the
    adapter's.
    """
    import torch
    from peft import PeftModel


    runtime = runtime or Runtime.resolve()
    adapter = require_adapter_dir(adapter_dir)
    out = check_output_dir(output_dir, "merged", overwrite=overwrite)
    problem = adapter_problem(adapter)
    if problem:
        raise MathloraError(f"adapter {adapter} {problem}; refusing to merge it")
    work = runtime.replace(precision="fp32") if runtime.precision_auto else runtime
    if isinstance(dtype, str):
        dtype = Runtime(precision=dtype).dtype
    save_dtype = dtype or stored_dtype(model)
    base = load_model(model, work)
    try:
        with quiet_peft():
            peft_model = PeftModel.from_pretrained(base, str(adapter))
    except Exception as e:  # peft raises several kinds on a mismatched adapter
        raise MathloraError(f"adapter {adapter} does not fit model {model}: {e}") from None
    merged = peft_model.merge_and_unload().to(save_dtype)
    merged.config.use_cache = True
    facts = adapter_facts(model, adapter)
    template = template or (facts.template if facts.template in TEMPLATES else None)
    tokenizer = exported_tokenizer(model, template) if template else load_tokenizer(model)
    if template:
        facts = replace(facts, template=template)
    if tokenizer.pad_token_id is not None:  # the exported tokenizer's pad (not EOS where it has another)
        merged.config.pad_token_id = tokenizer.pad_token_id
        if getattr(merged, "generation_config", None) is not None:
            merged.generation_config.pad_token_id = tokenizer.pad_token_id
    with torch.no_grad(), atomic_path(out, directory=True) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, tmp)
        write_card(tmp, card_text(facts, "merged"))
        write_artifact_marker(tmp, "merged")
    return out
