"""One training run's inputs: the ``train`` and ``lora`` sections, the seed, the runtime, and what the tokens
artifact says about itself (``tokens/stats.json``: the model whose tokenizer made the tokens, the sequence
length)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mathlora.modeling.runtime import Runtime
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.train.data import TOKENS_FILE, read_token_stats


@dataclass(frozen=True)
class TrainJob:
    train: TrainConfig
    lora: LoraConfig
    seed: int
    model: str
    seq_length: int
    runtime: Runtime
    tokens_dir: Path | None = None

    @classmethod
    def from_tokens(cls, train: TrainConfig, lora: LoraConfig, seed: int, runtime: Runtime,
                    tokens_dir: str | os.PathLike) -> "TrainJob":
        stats = read_token_stats(tokens_dir)
        return cls(train, lora, seed, str(stats["model"]), int(stats["seq_length"]), runtime, Path(tokens_dir))


def tokens_file(tokens_dir: str | os.PathLike) -> Path:
    """``tokens.parquet`` of a tokens folder (or the file itself)."""
    tokens_dir = Path(tokens_dir)
    return tokens_dir / TOKENS_FILE if tokens_dir.is_dir() else tokens_dir
