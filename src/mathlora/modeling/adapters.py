"""LoRA adapter folders (peft format): their files, the one check of a folder, and loading one onto a model.

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors``. Training writes them
(``train/adapter/``, each checkpoint), merge, predict, eval and export read them; every reader checks the
folder with ``require_adapter_dir`` and the weights with ``adapter_problem`` (unreadable or non-finite
weights are never merged or scored).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_json_document
from mathlora.modeling.compat import quiet_peft
from mathlora.modeling.models import PACKAGED, packaged_gguf, split_hub_id
from mathlora.run_dir.hashing import file_sha256

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)


def require_adapter_dir(adapter_dir: str | os.PathLike) -> Path:
    """``adapter_dir`` as a Path when it is a folder with both adapter files, else a one-line error."""
    d = Path(adapter_dir)
    if not d.exists():
        raise MathloraError(f"adapter folder not found: {d}")
    if not d.is_dir():
        raise MathloraError(f"adapter {d} is a file; expected a folder with {' and '.join(ADAPTER_FILES)}")
    missing = [f for f in ADAPTER_FILES if not (d / f).is_file()]
    if ADAPTER_CONFIG in missing:
        raise MathloraError(f"adapter folder {d} has no {ADAPTER_CONFIG}, so it is not a peft adapter "
                            f"(it lacks {' and '.join(missing)})")
    if missing:
        raise MathloraError(f"adapter folder {d} lacks {', '.join(missing)}")
    return d


def read_adapter_config(folder: str | os.PathLike) -> dict:
    config = read_json_document(Path(folder) / ADAPTER_CONFIG, "adapter config")
    if not isinstance(config, dict):
        raise MathloraError(f"{Path(folder) / ADAPTER_CONFIG} is not a JSON object")
    return config


def read_adapter_weights(folder: str | os.PathLike) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / ADAPTER_WEIGHTS))


def non_finite(tensors: dict) -> str | None:
    """The name of the first tensor holding NaN or Infinity (None when all are finite)."""
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def load_problem(what: str, load) -> tuple[Any, str | None]:
    """(``load()``, None), or (None, why ``what`` is unreadable) when loading raises."""
    try:
        return load(), None
    except Exception as e:  # safetensors / json raise several kinds on a damaged file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        return None, f"{what} is unreadable ({first})"


def checked_adapter_weights(folder: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(the adapter folder's weights, None), or (None, why they cannot be used: missing, unreadable or
    non-finite)."""
    path = Path(folder) / ADAPTER_WEIGHTS
    if not path.is_file():
        return None, f"{ADAPTER_WEIGHTS} is missing"
    weights, problem = load_problem(ADAPTER_WEIGHTS, lambda: read_adapter_weights(folder))
    if problem:
        return None, problem
    bad = non_finite(weights)
    return (None, f"holds non-finite weights (NaN/Infinity in {bad})") if bad else (weights, None)


def adapter_problem(folder: str | os.PathLike) -> str | None:
    """Why an adapter folder's weights cannot be used (missing, unreadable or non-finite), or None."""
    return checked_adapter_weights(folder)[1]


def attach_adapter(base, adapter: str | os.PathLike, *, model_name: str, trainable: bool = False):
    """Wrap ``base`` in a peft model with the adapter folder loaded (one-line error on a mismatch)."""
    from peft import PeftModel


    path = require_adapter_dir(adapter)
    try:
        with quiet_peft():  # transformers 5's FutureWarning about peft's is_gradient_checkpointing
            return PeftModel.from_pretrained(base, str(path), is_trainable=trainable)
    except Exception as e:  # shape mismatch, missing weights, bad JSON
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MathloraError(f"could not load adapter {path} onto {model_name}: {first}") from None


# -- what an exported adapter says about its base model ---------------------------------------------------------

# packaged model -> the Hub repo it was quantized from: NOT its weights (the packaged file is a Q4_1 GGUF; the
# adapter was trained on that, dequantized), so never named as the base, only as where it came from
ORIGINALS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
HUB_LICENSES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0"}
_HUB_CACHE = re.compile(r"(?:^|/)(models|datasets)--([^/]+?)--([^/]+)/snapshots/[^/]+")


def hub_id(spec: str, kind: str = "models") -> str | None:
    """The Hugging Face Hub repo a model spec (or, ``kind="datasets"``, a data path) stands for: a Hub id
    itself (``org/name[@revision]``: the repo), or the repo of a folder inside a Hugging Face cache
    (``.../models--org--name/snapshots/<rev>``); None for anything else (a local folder, a .gguf file, the
    packaged Q4_1 GGUF, whose weights are not its original repo's (``original_repo``), the tiny model)."""
    if kind == "models" and (named := _hub_model(spec)):
        return named[0]
    match = _HUB_CACHE.search(str(spec).replace("\\", "/"))
    if match and match.group(1) == kind:
        return f"{match.group(2)}/{match.group(3)}"
    return None


def _hub_model(spec: str) -> tuple[str, str | None] | None:
    """(repo id, revision) of a spec that is a Hub model id (``org/name[@revision]``, no such local path)."""

    return None if Path(spec).expanduser().exists() else split_hub_id(str(spec))


def base_model_name(spec: str) -> str:
    """What an exported adapter names as its base (``base_model_name_or_path``): the Hub id when the spec
    stands for one (``hub_id``), the packaged model's GGUF file name (``SmolLM2-135M-Instruct.Q4_1.gguf``: the
    weights it trained on, not its original Hub repo's), else the spec as the user gave it (a path,
    ``tiny-random-llama``), never the folder this machine converted a GGUF file into."""
    if spec in PACKAGED:
        return PACKAGED[spec][1]
    return hub_id(spec) or spec


def gguf_file(spec: str) -> Path | None:
    """The GGUF file a spec trains on (the packaged model's file, or a ``.gguf`` path); None for anything else
    or a packaged model whose package is not installed."""
    if spec in PACKAGED:
        try:
            return packaged_gguf(spec)
        except MathloraError:
            return None
    path = Path(str(spec)).expanduser()
    return path if path.suffix == ".gguf" and path.is_file() else None


def original_repo(spec: str) -> str | None:
    """The Hub repo a packaged model was quantized from (its license, the card's "not these weights" line)."""
    return ORIGINALS.get(spec)


def base_identity(spec: str) -> dict | None:
    """What a GGUF base is, for the cards and the report: ``{"file", "sha256", "quant", "original",
    "package"}`` (None for a base that is not a GGUF file)."""
    gguf = gguf_file(spec)
    if gguf is None:
        return None
    quant = next((q for q in gguf.stem.split(".")[1:] if q[:1] in "QFfq" and any(c.isdigit() for c in q)), None)
    return {"file": gguf.name, "sha256": file_sha256(gguf), "quant": quant, "original": original_repo(spec),
            "package": PACKAGED[spec][0].replace("_", "-") if spec in PACKAGED else None}


def name_base_model(peft_model, spec: str) -> None:
    """Make ``peft_model``'s adapter configs name the base by ``base_model_name(spec)`` (peft records the
    folder the base was loaded from: for a packaged or GGUF model, this machine's cache)."""
    named = _hub_model(spec)
    for config in getattr(peft_model, "peft_config", {}).values():
        config.base_model_name_or_path = base_model_name(spec)
        if named and named[1]:  # a pinned revision of a Hub model: peft's field for it
            config.revision = named[1]
