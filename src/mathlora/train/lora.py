"""LoRA through peft: rank, alpha, dropout and target modules from ``cfg.lora``."""

from __future__ import annotations

from mathlora.compat import quiet_peft
from mathlora.errors import MathloraError
from mathlora.train.config import LoraConfig


def apply_lora(model, lora: LoraConfig):
    """Wrap ``model`` in a peft model with fresh LoRA weights (A from the torch RNG, B zero)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in lora.target_modules if t not in names]
    if missing:
        raise MathloraError(f"lora.target_modules: {', '.join(missing)} not in the model "
                            f"(linear layers include: {', '.join(sorted(n for n in names if n.endswith('proj')))})")
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM")
    with quiet_peft():
        return get_peft_model(model, config)
