"""Fixtures for training tests: tokenize-stage style parquet files built with the tiny byte tokenizer."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import single_torch_thread

from mathlora.app.config import load_config


def arithmetic_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a, b = rng.randint(0, 999), rng.randint(0, 99999 if rng.random() < 0.3 else 99)
        pairs.append((f"Q: {a} + {b} = ?\nA: ", f"{a} + {b} = {a + b}"))
    return pairs


def write_tokens(folder: Path, pairs: list[tuple[str, str]], model: str = "tiny-random-llama",
                 seq_length: int = 256) -> Path:
    """Write ``folder/tokens.parquet`` and ``stats.json`` like the tokenize stage: prompt masked, response + EOS
    learnable; the stats name the model and the sequence length (the trainer reads both from there)."""
    from mathlora.modeling.models import load_tokenizer

    tok = load_tokenizer(model)
    ids, inputs, labels, lengths = [], [], [], []
    for i, (prompt, response) in enumerate(pairs):
        p = tok.encode(prompt, add_special_tokens=False)
        r = tok.encode(response, add_special_tokens=False) + [tok.eos_token_id]
        ids.append(f"r{i:04d}")
        inputs.append(p + r)
        labels.append([-100] * len(p) + r)
        lengths.append(len(p) + len(r))
    table = pa.table({"id": pa.array(ids, pa.string()),
                      "input_ids": pa.array(inputs, pa.list_(pa.int32())),
                      "labels": pa.array(labels, pa.list_(pa.int32())),
                      "length": pa.array(lengths, pa.int32())})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "tokens.parquet")
    (folder / "stats.json").write_text(json.dumps({"model": model, "seq_length": seq_length}) + "\n")
    return folder


@pytest.fixture
def tokens_dir(tmp_path) -> Path:
    return write_tokens(tmp_path / "tokens", arithmetic_pairs(24, seed=1))


def train(cfg, tokens_dir, output_dir, **kwargs) -> dict:
    """The train stage called as ``mathlora run`` calls it, from a root config (tests build root configs)."""
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.trainer import train as train_stage

    return train_stage(cfg.train, Runtime.resolve(cfg.runtime), tokens_dir, output_dir, lora=cfg.lora, seed=cfg.seed,
                       **kwargs)


def torchrun_train(cfg, tokens_dir, output_dir, *, timeout: float) -> subprocess.CompletedProcess:
    """``mathlora train`` under torchrun with 2 processes on ``cfg`` (written to a YAML beside the output);
    asserts it succeeded, showing both ends of stderr: the ranks' own messages first, torchrun's summary last."""
    import yaml

    config_file = Path(output_dir).with_name(Path(output_dir).name + ".yaml")
    config_file.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    # PYTHONFAULTHANDLER: a process killed by a signal (SIGABRT from C++) prints every thread's Python stack
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONFAULTHANDLER": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "mathlora", "train", "--config", str(config_file), "--tokens", str(tokens_dir),
           "--output", str(output_dir), "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[:4000] + "\n[...]\n" + done.stderr[-1500:]
    return done


def tiny_config(**train):
    overrides = {"model": "tiny-random-llama", "seed": 7, "train.global_batch_size": 8,
                 "train.micro_batch_size": 2, "train.lr": 1e-2, "train.warmup_ratio": 0.1,
                 "train.epochs": 2, "train.gradient_checkpointing": False}
    overrides.update({f"train.{k}": v for k, v in train.items()})
    return load_config(None, overrides)


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)
