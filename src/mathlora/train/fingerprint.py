"""What makes two trainings the same run, for the trainer (resume, a finished run) and ``mathlora run`` (keep
or start over ``train/``) alike: model, seed, LoRA, the ``train`` settings that can change the result
(``mathlora.same_result``), the sequence length, the precision (not the device), and the tokens' hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mathlora.run_dir.hashing import file_sha256
from mathlora.runtime import Runtime
from mathlora.same_result import result_settings
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.train.job import TrainJob, tokens_file


def run_fingerprint(job: TrainJob, tokens: Path) -> str:
    settings = {"model": job.model, "seed": job.seed, "lora": job.lora.model_dump(mode="json"),
                "train": result_settings(job.train), "seq_length": job.seq_length, **job.runtime.fingerprint(),
                "tokens": file_sha256(tokens)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def training_fingerprint(train: TrainConfig, runtime: Runtime, tokens_dir: str | os.PathLike, *, lora: LoraConfig,
                         seed: int) -> str:
    """``run_fingerprint`` of the run ``train(train, runtime, tokens_dir, ...)`` would make."""
    return run_fingerprint(TrainJob.from_tokens(train, lora, seed, runtime, tokens_dir), tokens_file(tokens_dir))
