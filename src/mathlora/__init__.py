"""mathlora: difficulty-stratified LoRA fine-tuning for math, with retention checks."""

__version__ = "0.1.0"
