"""The grpo section: validated like the other sections; what cannot change the result is marked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mathlora.grpo.config import GrpoConfig
from mathlora.run_dir.same_result import result_settings


def test_defaults_are_off_and_valid():
    cfg = GrpoConfig()
    assert cfg.enabled is False and cfg.num_generations >= 2 and cfg.loss_type == "dapo"


@pytest.mark.parametrize("bad", [{"num_generations": 1}, {"steps": 0}, {"loss_type": "ppo"}, {"beta": -1},
                                 {"lr": 0}, {"correct_reward": -1}, {"max_completion_length": 0},
                                 {"correct_reward": 0, "format_reward": 0}, {"temperature": 0},
                                 {"unknown": 1}, {"report_to": ["tensorboard", "csv"]}, {"generation": "sglang"}])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValidationError):
        GrpoConfig(**bad)


def test_report_to_takes_a_list_or_none():
    assert GrpoConfig(report_to="none").report_to == []
    assert GrpoConfig(report_to="tensorboard,mlflow").report_to == ["tensorboard", "mlflow"]


def test_only_result_settings_reach_the_fingerprint():
    settings = result_settings(GrpoConfig())
    for marked in ("enabled", "save_steps", "log_every", "report_to"):
        assert marked not in settings
    for kept in ("steps", "num_generations", "lr", "beta", "loss_type", "correct_reward", "format_reward"):
        assert kept in settings
