"""Checkpoints: the LoRA adapter (peft format) plus the full training state, written atomically.

A checkpoint folder ``checkpoints/step-<N>/`` holds

* ``adapter_config.json`` + ``adapter_model.safetensors``: loadable by ``PeftModel.from_pretrained``;
* ``optimizer.safetensors``: every optimizer state tensor (key ``state/<param>/<name>``), no pickle;
* ``trainer_state.json``: step, epoch, learning rate, optimizer hyperparameters, data position, the
  random-number scheme, cumulative tokens and seconds, and the run fingerprint;
* ``merged/`` when ``train.merge_checkpoints``: the adapter merged into the base model;
* ``checksum.json``, written last: size and SHA-256 of every other file (``merged/`` aside).

The folder is built under a temporary name (``.step-<N>.*.tmp``) and renamed when complete, so a
folder named ``step-<N>`` is always complete; temporary leftovers of a killed run are ignored. A resume
verifies the checksum, that the files load and that the weights are finite (``checkpoint_problem``), and
falls back to the newest checkpoint that passes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from mathlora.modeling.adapters import adapter_problem, load_problem, non_finite, read_adapter_weights
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.atomic import atomic_path, json_text
from mathlora.run_dir.hashing import file_sha256
from mathlora.modeling.templates import DEFAULT_TEMPLATE
from mathlora.train.distributed import ProcessGroup, adapter_state, optimizer_state, reduce_device
from mathlora.train.job import TrainJob
from mathlora.modeling.adapters import name_base_model
from mathlora.export.model_card import write_card
from mathlora.train.data import read_token_stats
from mathlora.export.model_card import card_text, training_facts
from mathlora.modeling.templates import exported_tokenizer, save_tokenizer
from mathlora.train.merge import merge_adapter

CHECKPOINT_NAME = re.compile(r"^step-(\d+)$")
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
CHECKSUM_FILE = "checksum.json"


def checkpoint_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step}"


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, sorted by step."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = CHECKPOINT_NAME.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def resolve_save_steps(save_steps: int | list[int] | None, total: int) -> list[int]:
    """Steps that get a checkpoint: an interval or a list (clipped to the run), and always the last."""
    if save_steps is None:
        steps = set()
    elif isinstance(save_steps, int):
        steps = set(range(save_steps, total + 1, save_steps)) if save_steps > 0 else set()
    else:
        steps = {s for s in save_steps if 1 <= s <= total}
    steps.add(total)
    return sorted(steps)


def optimizer_tensors(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"keys": [], "scalars": {}, "param_groups": []}
    for key, slots in opt_state["state"].items():
        meta["keys"].append(key)
        for name, value in slots.items():
            tag = f"state/{key}/{name}"
            if isinstance(value, torch.Tensor):
                tensors[tag] = value.detach().to("cpu").contiguous().clone()
            else:
                meta["scalars"][tag] = value
    for group in opt_state["param_groups"]:
        meta["param_groups"].append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
    return tensors, meta


def optimizer_state_from(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    """Inverse of ``optimizer_tensors``."""
    state: dict[Any, dict] = {}
    for key in meta["keys"]:
        prefix = f"state/{key}/"
        slots = {t[len(prefix):]: v for t, v in tensors.items() if t.startswith(prefix)}
        slots.update({t[len(prefix):]: v for t, v in meta["scalars"].items() if t.startswith(prefix)})
        state[key] = slots
    groups = []
    for g in meta["param_groups"]:
        groups.append({k: (tuple(v) if k == "betas" else v) for k, v in g.items()})
    return {"state": state, "param_groups": groups}


def write_training_state(folder: Path, opt_state: dict, trainer_state: dict) -> None:
    from safetensors.torch import save_file

    tensors, meta = optimizer_tensors(opt_state)
    save_file(tensors, str(folder / OPTIMIZER_FILE))
    (folder / STATE_FILE).write_text(json_text({**trainer_state, "optimizer": meta}) + "\n",
                                     encoding="utf-8")


def checkpoint_fingerprint(folder: Path) -> str | None:
    """The run fingerprint a checkpoint was trained under (None when its state does not say)."""
    try:
        state = read_json_document(folder / STATE_FILE, "trainer state")
    except MathloraError:
        return None
    return state.get("fingerprint") if isinstance(state, dict) else None


def read_training_state(folder: Path) -> tuple[dict, dict]:
    """(optimizer state dict, trainer state) of a checkpoint folder."""
    from safetensors.torch import load_file

    state = read_json_document(folder / STATE_FILE, "trainer state")
    meta = state.pop("optimizer")
    return optimizer_state_from(load_file(str(folder / OPTIMIZER_FILE)), meta), state


def _checked_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE
                  and p.relative_to(folder).parts[0] != "merged")


def write_checksum(folder: Path) -> None:
    """Write ``checksum.json`` (size and SHA-256 of every file but ``merged/``); call it last."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": file_sha256(p, cache=False)}
             for p in _checked_files(folder)}
    (folder / CHECKSUM_FILE).write_text(json_text({"files": files}, indent=1) + "\n", encoding="utf-8")


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why a checkpoint cannot be resumed from (None when it can): a checksum mismatch, a file that does not
    load, or non-finite weights. Checkpoints written before checksums existed get the load checks only."""
    folder = Path(folder)
    manifest = folder / CHECKSUM_FILE
    if manifest.is_file():
        recorded, problem = load_problem(CHECKSUM_FILE, lambda: read_json_document(manifest, CHECKSUM_FILE))
        if problem:
            return problem
        files = recorded.get("files") if isinstance(recorded, dict) else None
        if not isinstance(files, dict) or not files:
            return f"{CHECKSUM_FILE} is damaged"
        for name, rec in files.items():
            p = folder / name
            if not p.is_file():
                return f"{name} is missing"
            if not isinstance(rec, dict) or p.stat().st_size != rec.get("size") or file_sha256(p, cache=False) != rec.get("sha256"):
                return f"{name} does not match its checksum"
    _, problem = load_problem(STATE_FILE, lambda: read_training_state(folder))
    if problem:
        return problem
    return adapter_problem(folder)


def newest_valid_checkpoint(root: str | Path, warn=None) -> Path | None:
    """The newest checkpoint that passes ``checkpoint_problem``; ``warn(message)`` hears about each skipped."""
    found = list_checkpoints(root)
    for i in range(len(found) - 1, -1, -1):
        _, path = found[i]
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if warn is not None:
            previous = found[i - 1][1].name if i else "the start (step 0)"
            warn(f"checkpoint {path} is damaged: {problem}; falling back to {previous}")
    return None


# -- saving and restoring (every process takes part: the state is gathered to full tensors) -------------------

def save_adapter(peft_model, weights: dict[str, torch.Tensor], folder: Path, *, base: str | None = None,
                 card: str | None = None) -> None:
    """The adapter files (peft format) in ``folder``; ``base``: the model spec ``adapter_config.json`` names
    (``adapters.base_model_name``: a Hub id or the path given, not this machine's cache); ``card``: the
    README.md written in place of peft's empty one."""

    if base is not None:
        name_base_model(peft_model, base)
    # peft's "auto" looks the base up (on the Hub, for a Hub id) to see whether the vocabulary was resized;
    # mathlora never resizes it, so only an adapter on the embeddings themselves saves them (no lookup either way)
    targets = set().union(*(set(c.target_modules or ()) for c in getattr(peft_model, "peft_config", {}).values()
                            if not isinstance(c.target_modules, str)))
    embeddings = "auto" if targets & {"embed_tokens", "lm_head", "wte", "embed_out"} else False
    peft_model.save_pretrained(str(folder), state_dict=weights, safe_serialization=True,
                               save_embedding_layers=embeddings)
    if card is not None:
        write_card(folder, card)


def run_template(job: TrainJob) -> str:
    """The prompt template the tokens were made with (``tokens/stats.json``; ``alpaca`` when not recorded)."""

    if job.tokens_dir is None:
        return DEFAULT_TEMPLATE
    return str(read_token_stats(job.tokens_dir).get("template") or DEFAULT_TEMPLATE)


def check_finite_weights(weights: dict[str, torch.Tensor], group: ProcessGroup, step: int) -> None:
    """Stop (on every process) when the adapter weights hold NaN or Infinity: they are never saved."""
    bad = non_finite(weights)
    flag = group.all_reduce_sum(torch.tensor(float(bad is not None), dtype=torch.float64,
                                             device=reduce_device(group)))
    if float(flag.item()) > 0:
        raise MathloraError(f"training stopped at step {step}: the adapter weights are not finite "
                            f"(NaN/Infinity{' in ' + bad if bad else ''}); lower train.lr or check the data")


def save_checkpoint(job: TrainJob, peft_model, wrapped, optimizer, state: dict[str, Any], root: Path,
                    group: ProcessGroup) -> Path:
    """Write ``root/step-<N>`` atomically (rank 0); every process takes part in gathering the state."""
    weights = adapter_state(peft_model)
    check_finite_weights(weights, group, state["step"])
    opt_state = optimizer_state(optimizer, wrapped)
    target = checkpoint_dir(root, state["step"])
    if group.is_main:
        template = run_template(job)
        card = card_text(training_facts(job, template=template, steps=state["step"]), "checkpoint", step=state["step"])
        with atomic_path(target, directory=True) as tmp:
            save_adapter(peft_model, weights, tmp, base=job.model, card=card)
            write_training_state(tmp, opt_state, state)
            if job.train.merge_checkpoints:
                merge_adapter(job.runtime, job.model, tmp, tmp / "merged", template=template)
            write_checksum(tmp)  # last: a checkpoint whose checksum verifies is complete and intact
    group.barrier()
    return target


def save_final_adapter(peft_model, folder: Path, group: ProcessGroup, step: int, job: TrainJob | None = None,
                       ratio_line: str | None = None) -> None:
    """The finished run's adapter (peft format), atomically, after the finiteness check. With the ``job``: the
    base named portably, the tokenizer with the training prompt as its chat template
    (``templates.exported_tokenizer``) and the model card (no scores yet; the ``cards`` stage adds them)."""
    weights = adapter_state(peft_model)
    check_finite_weights(weights, group, step)
    if group.is_main:
        card = tokenizer = None
        if job is not None:
            template = run_template(job)
            tokenizer = exported_tokenizer(job.model, template)
            card = card_text(training_facts(job, template=template, steps=step, ratio_line=ratio_line), "adapter")
        with atomic_path(folder, directory=True) as tmp:
            save_adapter(peft_model, weights, tmp, base=job.model if job is not None else None, card=card)
            if tokenizer is not None:
                save_tokenizer(tokenizer, tmp)


def restore_checkpoint(folder: Path, fingerprint: str, peft_model) -> tuple[dict, dict]:
    """Load a checkpoint's adapter weights into ``peft_model``; returns (trainer state, optimizer state)."""
    from peft import set_peft_model_state_dict

    opt_state, state = read_training_state(folder)
    if state.get("fingerprint") != fingerprint:
        raise MathloraError(f"checkpoint {folder} was trained with other settings or data; choose another "
                            f"output folder or pass --no-resume to start over")
    set_peft_model_state_dict(peft_model, read_adapter_weights(folder))
    return state, opt_state
