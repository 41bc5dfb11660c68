"""What makes two trainings the same run, for the trainer (resume, a finished run) and ``mathlora run`` (keep
or start over ``train/``) alike: model, seed, LoRA, the ``train`` settings that can change the result
(``mathlora.run_dir.same_result``), the sequence length, the precision (not the device), the tokens' hash and the
base model's identity (``mathlora.modeling.models.model_identity``: a model replaced at the same path is noticed),
and the weights of the adapter the training starts from (``lora.init_from``), by their hash."""

from __future__ import annotations

import os
from pathlib import Path

from mathlora.modeling.adapters import ADAPTER_WEIGHTS, require_adapter_dir
from mathlora.run_dir.hashing import file_sha256, settings_digest
from mathlora.modeling.runtime import Runtime
from mathlora.run_dir.same_result import result_settings
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.train.job import TrainJob, tokens_file
from mathlora.modeling.models import model_identity


def run_settings(job: TrainJob, tokens: Path) -> dict:
    """What ``run_fingerprint`` hashes, readable: the manifest keeps it to name what changed."""

    lora = job.lora.model_dump(mode="json")
    if job.lora.init_from:  # the weights it starts from, wherever they lie
        lora["init_from"] = file_sha256(require_adapter_dir(job.lora.init_from) / ADAPTER_WEIGHTS)
    return {"model": job.model, "model_identity": model_identity(job.model), "seed": job.seed,
            "lora": lora, "train": result_settings(job.train),
            "seq_length": job.seq_length, **job.runtime.fingerprint(), "tokens": file_sha256(tokens)}


def run_fingerprint(job: TrainJob, tokens: Path) -> str:
    return settings_digest(run_settings(job, tokens), 16)


def training_settings(train: TrainConfig, runtime: Runtime, tokens_dir: str | os.PathLike, *, lora: LoraConfig,
                      seed: int) -> dict:
    """``run_settings`` of the run ``train(train, runtime, tokens_dir, ...)`` would make."""
    return run_settings(TrainJob.from_tokens(train, lora, seed, runtime, tokens_dir), tokens_file(tokens_dir))


def changed_settings(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two ``run_settings`` (``train.lr``, ``tokens``)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_settings(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def training_fingerprint(train: TrainConfig, runtime: Runtime, tokens_dir: str | os.PathLike, *, lora: LoraConfig,
                         seed: int) -> str:
    """``run_fingerprint`` of the run ``train(train, runtime, tokens_dir, ...)`` would make."""
    return run_fingerprint(TrainJob.from_tokens(train, lora, seed, runtime, tokens_dir), tokens_file(tokens_dir))
