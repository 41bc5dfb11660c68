"""The GRPO stage end to end on the tiny random model: it trains and logs, resumes after an interruption to the
uninterrupted run's result, skips a finished rerun and refuses one of other settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.grpo.conftest import trl_or_skip

from mathlora.errors import MathloraError
from mathlora.grpo.config import GrpoConfig

MODEL = "tiny-random-llama"


def small(**over) -> GrpoConfig:
    return GrpoConfig(**{"enabled": True, "steps": 3, "prompts_per_step": 2, "num_generations": 2,
                         "max_completion_length": 8, "lr": 5e-2, "save_steps": 2, "report_to": [], **over})


def run(cfg: GrpoConfig, problems: Path, adapter: Path, out: Path, **kwargs) -> dict:
    from mathlora.grpo.trainer import grpo_train
    from mathlora.modeling.runtime import Runtime

    return grpo_train(cfg, Runtime.resolve(), problems, adapter, out, model=MODEL, template="plain", seed=0,
                      progress=False, **kwargs)


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def metric_rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]


def test_runs_end_to_end_and_logs_the_rewards(problems, sft_adapter, tmp_path):
    trl_or_skip()
    out = tmp_path / "grpo"
    summary = run(small(), problems, sft_adapter, out, merged_dir=tmp_path / "grpo_merged")
    assert summary["steps"] == 3 and summary["prompts"] == 6 and summary["prompts_without_gold"] == 1
    rows = metric_rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward", "reward_std", "accuracy", "format", "completion_length", "kl", "loss",
                "step_seconds", "generation_seconds"):
        assert all(key in r for r in rows), key
    assert 0 < summary["generation_share"] <= 1 and summary["seconds_per_step"] > 0
    assert summary["calculator"] is False and "calculator" in summary["calculator_note"]
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == MODEL
    assert not (out / "adapter" / "ref").exists()  # TRL's reference copy stays out of the adapter
    sft, grpo = adapter_weights(sft_adapter), adapter_weights(out / "adapter")
    assert sft.keys() == grpo.keys()
    assert any(not (sft[k] == grpo[k]).all() for k in sft), "GRPO never changed the adapter"
    assert (tmp_path / "grpo_merged" / "config.json").is_file()
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert json.loads((out / "summary.json").read_text())["fingerprint"] == summary["fingerprint"]
    import shutil

    shutil.rmtree(tmp_path / "grpo_merged")  # the merge alone lost: a rerun merges again, trains nothing
    again = run(small(), problems, sft_adapter, out, merged_dir=tmp_path / "grpo_merged")
    assert again["skipped"] is True and (tmp_path / "grpo_merged" / "config.json").is_file()


def test_a_finished_run_is_skipped_and_other_settings_are_refused(problems, sft_adapter, tmp_path):
    trl_or_skip()
    out = tmp_path / "grpo"
    first = run(small(steps=1, save_steps=1), problems, sft_adapter, out)
    stamp = (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    # a marked setting (logging, checkpoint cadence, trackers) is the same run
    again = run(small(steps=1, save_steps=5, log_every=3), problems, sft_adapter, out)
    assert again["skipped"] is True and again["fingerprint"] == first["fingerprint"]
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(MathloraError, match="other settings"):
        run(small(steps=1, save_steps=1, lr=1e-3), problems, sft_adapter, out)
    fresh = run(small(steps=1, save_steps=1, lr=1e-3), problems, sft_adapter, out, resume=False)
    assert fresh["fingerprint"] != first["fingerprint"] and not fresh.get("skipped")


class Interrupted(Exception):
    pass


def test_resume_after_an_interruption_matches_the_uninterrupted_run(problems, sft_adapter, tmp_path, monkeypatch):
    """Interrupted right after the step-4 checkpoint (as a kill would leave it; in the second pass over the six
    problems), then run again: the final adapter and the logged rewards, KL and entropy of step 5 are those of
    the run that was never interrupted."""
    trl_or_skip()
    from mathlora.grpo import trainer as stage

    cfg = small(steps=5, save_steps=2)
    whole = run(cfg, problems, sft_adapter, tmp_path / "whole")

    make = stage.metrics_callback

    def interrupting(*args, **kwargs):
        callback = make(*args, **kwargs)
        on_save = callback.on_save

        def save_then_die(a, state, control, **kw):
            on_save(a, state, control, **kw)
            if state.global_step == 4:
                raise Interrupted()

        callback.on_save = save_then_die
        return callback

    out = tmp_path / "cut"
    monkeypatch.setattr(stage, "metrics_callback", interrupting)
    with pytest.raises(Interrupted):
        run(cfg, problems, sft_adapter, out)
    monkeypatch.setattr(stage, "metrics_callback", make)
    assert not (out / "summary.json").exists() and (out / "checkpoints" / "checkpoint-4").is_dir()
    resumed = run(cfg, problems, sft_adapter, out)
    assert resumed["resumed_from"].endswith("checkpoint-4")
    assert resumed["fingerprint"] == whole["fingerprint"]
    a, b = adapter_weights(tmp_path / "whole" / "adapter"), adapter_weights(out / "adapter")
    for key in a:
        assert (a[key] - b[key]).abs().max().item() <= 1e-6, key
    rows_a, rows_b = metric_rows(tmp_path / "whole"), metric_rows(out)
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5]
    for ra, rb in zip(rows_a, rows_b):
        for key in ("reward", "accuracy", "completion_length", "loss", "kl", "entropy"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-6), (ra["step"], key)


def test_a_checkpoint_of_other_settings_is_not_resumed(problems, sft_adapter, tmp_path, capsys):
    trl_or_skip()
    out = tmp_path / "grpo"
    run(small(steps=2, save_steps=1), problems, sft_adapter, out)
    (out / "summary.json").unlink()
    mark = out / "checkpoints" / "checkpoint-2" / "mathlora.json"
    mark.write_text(json.dumps({"fingerprint": "0" * 16}))
    summary = run(small(steps=2, save_steps=1), problems, sft_adapter, out)
    assert summary["resumed_from"].endswith("checkpoint-1")
    assert "other settings; skipped" in capsys.readouterr().err


def test_without_trl_the_stage_says_how_to_install_it(problems, sft_adapter, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "trl", None)  # import trl raises ImportError
    with pytest.raises(MathloraError, match=r"mathlora\[grpo\]"):
        run(small(), problems, sft_adapter, tmp_path / "grpo")
