"""``lora.init_from``: a training that starts from an adapter's weights instead of fresh ones (continued training)."""

import shutil

import pytest
from safetensors.torch import load_file, save_file

from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime
from mathlora.report.usage import recipe_rows
from mathlora.train.fingerprint import training_fingerprint
from .conftest import tiny_config, train
from .test_trainer import GOLDEN_LOSSES, adapter, finished_run, max_abs_diff, metrics  # noqa: F401 - the fixture


def continued(start, **train_settings):
    cfg = tiny_config(**train_settings)
    cfg.lora.init_from = str(start)
    return cfg


def test_a_training_starts_from_the_adapter_it_is_given(finished_run, tokens_dir, tmp_path):
    out, _ = finished_run
    # one step at a learning rate too small to move a weight: the adapter comes back as it went in
    summary = train(continued(out / "adapter", max_steps=1, lr=1e-12), tokens_dir, tmp_path / "more", progress=False)
    assert summary["steps"] == 1
    assert max_abs_diff(adapter(tmp_path / "more" / "adapter"), adapter(out / "adapter")) < 1e-9
    # and the model it trained is the tuned one: its first loss is the trained run's level, not a fresh start's
    first = metrics(tmp_path / "more")[0]["loss"]
    assert first < GOLDEN_LOSSES[-1] + 0.05 and first < GOLDEN_LOSSES[0] - 0.2
    fresh = train(tiny_config(max_steps=1, lr=1e-12), tokens_dir, tmp_path / "fresh", progress=False)
    assert metrics(tmp_path / "fresh")[0]["loss"] == pytest.approx(GOLDEN_LOSSES[0], abs=1e-4)
    assert fresh["steps"] == 1


def test_the_starting_weights_enter_the_fingerprint_by_hash(finished_run, tokens_dir, tmp_path):
    out, _ = finished_run

    def fp(cfg):
        return training_fingerprint(cfg.train, Runtime(), tokens_dir, lora=cfg.lora, seed=cfg.seed)

    first = fp(continued(out / "adapter"))
    assert first != fp(tiny_config())
    moved = tmp_path / "moved"
    shutil.copytree(out / "adapter", moved)
    assert fp(continued(moved)) == first  # the weights count, not where they lie
    save_file(adapter(out / "checkpoints" / "step-2"), str(moved / "adapter_model.safetensors"))
    assert fp(continued(moved)) != first


def test_an_adapter_that_does_not_fit_is_a_one_line_error(finished_run, tokens_dir, tmp_path):
    out, _ = finished_run

    def start(cfg):
        with pytest.raises(MathloraError) as e:
            train(cfg, tokens_dir, tmp_path / "more", progress=False)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "adapter folder not found" in start(continued(tmp_path / "nope"))
    cfg = continued(out / "adapter")
    cfg.lora.r = 4
    assert "has r=8, alpha=16.0; this config has r=4, alpha=16" in start(cfg)
    cfg = continued(out / "adapter")
    cfg.lora.target_modules = ["all-linear"]
    assert "does not fit lora.target_modules (the adapter lacks" in start(cfg)
    before = adapter(out / "adapter")
    with pytest.raises(MathloraError, match="lies in the training's output folder"):
        train(continued(out / "adapter", lr=0.5), tokens_dir, out, progress=False)  # would clear its own start
    assert max_abs_diff(adapter(out / "adapter"), before) == 0
    broken = tmp_path / "broken"
    shutil.copytree(out / "adapter", broken)
    weights = load_file(str(broken / "adapter_model.safetensors"))
    weights[next(iter(weights))][0, 0] = float("nan")
    save_file(weights, str(broken / "adapter_model.safetensors"))
    assert "lora.init_from: adapter" in start(continued(broken))


def test_the_model_card_says_where_the_weights_started(tmp_path):
    def rows(cfg):
        return recipe_rows(cfg.lora, cfg.train, seq_length=256, precision="fp32", template="alpaca", seed=7)

    assert rows(continued(tmp_path / "a"))["LoRA weights start from"] == str(tmp_path / "a")
    assert "LoRA weights start from" not in rows(tiny_config())
