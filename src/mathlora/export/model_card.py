"""The model card (``README.md``) published beside each adapter: Hugging Face front matter, the recipe, the
run's scores (``RunScores``) and how to load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mathlora import __version__
from mathlora.errors import MathloraError
from mathlora.export.recipe import RunRecipe
from mathlora.records import read_json_document
from mathlora.report.scores import RunScores, retention_word

HF_BASE_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def _read_json(path: Path) -> dict | None:
    try:
        data = read_json_document(path, path.name)
    except (OSError, MathloraError):
        return None
    return data if isinstance(data, dict) else None


def model_card(root: Path, cfg: RunRecipe, adapter: Path, step: int | None) -> str:
    """A Hugging Face-style README.md for an adapter folder: front matter, recipe, the run's scores."""
    import yaml

    summary = _read_json(root / "train" / "summary.json") or {}
    base_id = HF_BASE_IDS.get(cfg.model, cfg.model)
    front: dict[str, Any] = {"base_model": base_id, "library_name": "peft",
                             "tags": ["lora", "math", "mathlora"], "pipeline_tag": "text-generation"}
    scores = RunScores.read(root, strict=False).card()
    if scores.get("math_tuned") is not None:
        front["model-index"] = [{"name": f"{root.name}", "results": [{
            "task": {"type": "text-generation"},
            "dataset": {"name": "held-out math test set", "type": "math"},
            "metrics": [{"type": "accuracy", "value": scores["math_tuned"], "name": "math accuracy"}]}]}]
    lc, tc = cfg.lora, cfg.train
    which = f"checkpoint at step {step}" if step is not None else "final adapter"
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
             f"# {root.name}: LoRA adapter ({which})", "",
             f"A LoRA adapter for `{cfg.model}` fine-tuned for math by mathlora {__version__} "
             f"(difficulty-stratified data, prompt masked out of the loss).", "",
             "## Recipe", "", "| setting | value |", "|---|---|"]
    recipe = [
        ("LoRA r / alpha / dropout", f"{lc.r} / {lc.alpha:g} / {lc.dropout:g}"),
        ("target modules", ", ".join(lc.target_modules)),
        ("epochs", f"{tc.epochs:g}" + (f" (max_steps {tc.max_steps})" if tc.max_steps else "")),
        ("global batch size", tc.global_batch_size),
        ("optimizer", f"AdamW betas ({tc.betas[0]:g}, {tc.betas[1]:g}), eps {tc.eps:g}, "
                      f"weight decay {tc.weight_decay:g}"),
        ("learning rate", f"cosine {tc.lr:g} -> {tc.lr_end:g}, warmup ratio {tc.warmup_ratio:g}"),
        ("gradient clipping", tc.max_grad_norm if tc.max_grad_norm is not None else "none"),
        ("precision", cfg.runtime.precision),
        ("sequence length", cfg.tokenize.seq_length),
        ("prompt template", cfg.template),
        ("seed", cfg.seed),
    ]
    if summary.get("steps"):
        recipe.append(("steps trained (run)", summary["steps"]))
    if summary.get("ratio_line"):
        recipe.append(("trainable / total parameters", summary["ratio_line"]))
    lines += [f"| {k} | {v} |" for k, v in recipe]
    lines += ["", "## Scores", ""]
    if scores:
        if step is not None:
            lines += ["Scores of the run's final adapter (checkpoints are not scored separately).", ""]
        lines += ["| metric | base | fine-tuned |", "|---|---|---|"]
        if "math_base" in scores or "math_tuned" in scores:
            lines.append(f"| math accuracy | {_pct(scores.get('math_base'))} | {_pct(scores.get('math_tuned'))} |")
        for key in ("f1", "em"):
            if f"squad_{key}_base" in scores or f"squad_{key}_tuned" in scores:
                lines.append(f"| SQuAD {key.upper()} | {_num(scores.get(f'squad_{key}_base'))} | "
                             f"{_num(scores.get(f'squad_{key}_tuned'))} |")
        if "retention_passed" in scores:
            lines += ["", f"Retention (fine-tuned >= {scores.get('keep', 0.9):.0%} of base on SQuAD F1 and EM): "
                          f"{retention_word({'passed': scores['retention_passed']})}."]
    else:
        lines.append("No evaluation results in the run folder.")
    lines += ["", "## Use", "", "```python", "from peft import PeftModel",
              "from transformers import AutoModelForCausalLM", "",
              f"base = AutoModelForCausalLM.from_pretrained({base_id!r})",
              "model = PeftModel.from_pretrained(base, 'path/to/this/folder')", "```", ""]
    return "\n".join(lines)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


# -- the remote side --------------------------------------------------------------------------------------------
