"""Issue 32, one vocabulary: ``mathlora run --model X`` is the base model as everywhere; a served model's name is
``--served-model`` on every command that talks to a server (the old spellings warn); a message about a limit
names its setting."""

from __future__ import annotations

import pytest

from mathlora.app.cli import build_parser
from mathlora.app.cliargs import config_from_args
from mathlora.errors import MathloraError


def test_run_takes_model_as_a_flag(capsys):
    args = build_parser().parse_args(["run", "--model", "tiny-random-llama", "--run", "/tmp/x"])
    assert config_from_args(args).model == "tiny-random-llama"
    args = build_parser().parse_args(["run", "-m", "tiny-random-llama"])
    assert config_from_args(args).model == "tiny-random-llama"


def test_the_served_models_name_is_spelled_served_model_and_the_old_spelling_warns(capsys):
    parser = build_parser()
    assert parser.parse_args(["serve", "--upstream", "http://x/v1", "--served-model", "m"]).upstream_model == "m"
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["serve", "--upstream", "http://x/v1", "--upstream-model", "m"]).upstream_model == "m"
    assert "`mathlora serve --upstream-model` is deprecated, use `--served-model`" in capsys.readouterr().err
    args = parser.parse_args(["eval", "model", "-i", "t.jsonl", "-o", "out", "--served-model", "m"])
    assert config_from_args(args).eval.model == "m"


def test_a_sample_larger_than_the_data_names_sample_total():
    from mathlora.data.sampling import stratified_sample

    records = [{"problem": f"{i} + 1", "answer": str(i + 1), "difficulty": 1} for i in range(6)]
    with pytest.raises(MathloraError, match=r"sample\.total 800 is larger than the data: 6 records.*sample\.total=6"):
        stratified_sample(records, 800, {1: 1.0}, 0)
