"""Parameter ratio of a LoRA adapter: trainable (LoRA) over total (base + LoRA), like peft's
``print_trainable_parameters``, in the recipe's ``trainable/total=ratio`` line."""

from __future__ import annotations

from mathlora.evaluate.generation import attach_adapter, require_adapter_dir


def parameter_report(model: str, adapter: str) -> dict:
    """Load ``model`` on CPU in fp32 with ``adapter`` attached for training and count its parameters."""
    import torch

    from mathlora.models import count_parameters, load_model, param_ratio_line

    require_adapter_dir(adapter)
    base = load_model(model, dtype=torch.float32, device="cpu")
    peft_model = attach_adapter(base, adapter, model_name=model, trainable=True)
    trainable, total = count_parameters(peft_model)
    return {"model": model, "adapter": str(adapter), "trainable": trainable, "total": total,
            "ratio": trainable / total if total else 0.0, "line": param_ratio_line(trainable, total)}
