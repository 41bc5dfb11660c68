"""train.checkpoint: a damaged checkpoint is skipped, non-finite weights are never saved or used."""

from __future__ import annotations

import shutil

import pytest
from tests.cli_helpers import assert_one_error, cli, records, write_lines, write_tokens
from tests.conftest import single_torch_thread

from mathlora.errors import MathloraError


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def _train(tmp_path, out, **train):
    from mathlora.app.config import load_config
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.trainer import train as run_train

    overrides = {"model": "tiny-random-llama", "seed": 3, "train.global_batch_size": 8, "train.micro_batch_size": 8,
                 "train.lr": 1e-2, "train.warmup_ratio": 0.0, "train.max_steps": 4, "train.save_steps": 2,
                 "train.gradient_checkpointing": False, **{f"train.{k}": v for k, v in train.items()}}
    tokens = tmp_path / "tokens"
    if not tokens.exists():
        write_tokens(tokens)
    cfg = load_config(None, overrides)
    return run_train(cfg.train, Runtime.resolve(), tokens, out, lora=cfg.lora,
                     seed=cfg.seed, progress=False)


def test_damaged_checkpoints_are_skipped_and_non_finite_weights_never_used(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "train"
    _train(tmp_path, out)
    reference = (out / "adapter/adapter_model.safetensors").read_bytes()
    step4 = out / "checkpoints/step-4"

    # overwritten bytes (same size, NaN patterns) in the newest checkpoint: resume falls back to step 2
    weights = step4 / "adapter_model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-64:] = b"\xff" * 64
    weights.write_bytes(bytes(raw))
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    capsys.readouterr()
    _train(tmp_path, out)
    err = capsys.readouterr().err
    assert "step-4 is damaged" in err and "falling back to step-2" in err
    assert (out / "adapter/adapter_model.safetensors").read_bytes() == reference
    assert (step4 / "checksum.json").is_file()  # the checkpoint was written again, checksum last

    # a truncated checkpoint: the same fallback, no traceback
    optimizer = step4 / "optimizer.safetensors"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    _train(tmp_path, out)
    assert "falling back to step-2" in capsys.readouterr().err
    assert (out / "adapter/adapter_model.safetensors").read_bytes() == reference

    # a NaN adapter is never merged nor scored
    nan = tmp_path / "nan_adapter"
    shutil.copytree(out / "adapter", nan)
    tensors = load_file(str(nan / "adapter_model.safetensors"))
    save_file({k: v * float("nan") for k, v in tensors.items()}, str(nan / "adapter_model.safetensors"))
    rc, _, err = cli(capsys, "merge", "--model", "tiny-random-llama", "--adapter", nan, "--output", tmp_path / "m")
    assert_one_error(rc, err, "non-finite")
    assert not (tmp_path / "m").exists()
    test = write_lines(tmp_path / "test.jsonl", records(2))
    rc, _, err = cli(capsys, "predict", "--model", "tiny-random-llama", "--adapter", nan, "--input", test,
                     "--output", tmp_path / "p.jsonl", "--no-progress")
    assert_one_error(rc, err, "non-finite")

    # a diverging run stops with a clear error instead of saving NaN weights
    with pytest.raises(MathloraError, match="not finite"):
        _train(tmp_path, tmp_path / "diverged", lr=3e37, max_grad_norm=None, max_steps=6)
    assert not (tmp_path / "diverged/adapter").exists()
