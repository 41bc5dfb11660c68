"""Parameter ratio of a LoRA adapter, as the contest counts it (trainable LoRA parameters over the base
model's: 3,407,872 / 8,030,261,248 for Llama3-8B) and as peft's ``print_trainable_parameters`` does (over
base + LoRA: 8,033,669,120), both named in the recipe's ``trainable/total=ratio`` line.

Counted on the meta device: the model is built from its config (shapes only) and the adapter's config
attached, so no weight is read or allocated (an 8B model costs no 32 GB load). The adapter file's tensor
shapes are checked against the LoRA layers, so an adapter made for another model is still refused.
"""

from __future__ import annotations

from mathlora.errors import MathloraError
from mathlora.evaluate.generation import require_adapter_dir
from mathlora.modeling.compat import quiet_peft
from mathlora.modeling.models import count_parameters, meta_model, param_ratio_line


def parameter_report(model: str, adapter: str) -> dict:
    """Count the parameters of ``model`` with ``adapter`` attached for training, on the meta device."""
    from peft import PeftConfig, get_peft_model


    path = require_adapter_dir(adapter)
    base = meta_model(model)
    try:
        config = PeftConfig.from_pretrained(str(path))
        config.inference_mode = False
        with quiet_peft():
            peft_model = get_peft_model(base, config)
    except Exception as e:  # bad JSON, target modules missing from the model
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MathloraError(f"could not load adapter {path} onto {model}: {first}") from None
    check_adapter_shapes(peft_model, path, model)
    trainable, total = count_parameters(peft_model)
    base_count = total - trainable
    return {"model": model, "adapter": str(adapter), "trainable": trainable, "base": base_count, "total": total,
            "ratio": trainable / base_count if base_count else 0.0,
            "ratio_peft": trainable / total if total else 0.0, "line": param_ratio_line(trainable, total)}


def check_adapter_shapes(peft_model, path, model: str) -> None:
    """Every tensor of ``adapter_model.safetensors`` must match a trainable parameter's shape."""
    from safetensors import safe_open

    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise MathloraError(f"adapter folder {path} has no adapter_model.safetensors")
    expected = {_peft_key(n): tuple(p.shape) for n, p in peft_model.named_parameters() if p.requires_grad}
    try:
        with safe_open(str(weights), "pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:
        raise MathloraError(f"{weights} is not a readable safetensors file: {e}") from None
    for key, shape in stored.items():
        if key in expected and expected[key] != shape:
            raise MathloraError(f"could not load adapter {path} onto {model}: {key} has shape {list(shape)}, "
                                f"the model needs {list(expected[key])}")
    unknown = [k for k in stored if k not in expected]
    if unknown:
        raise MathloraError(f"could not load adapter {path} onto {model}: it holds {len(unknown)} tensor(s) "
                            f"the model has no place for (e.g. {unknown[0]})")


def _peft_key(name: str) -> str:
    """A peft parameter name as saved: ``...q_proj.lora_A.default.weight`` -> ``...q_proj.lora_A.weight``."""
    return name.replace(".default.", ".")
