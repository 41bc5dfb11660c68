"""The label judges are chosen through one registry (``mathlora.label.judges``), never by comparing names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from mathlora.errors import MathloraError
from mathlora.label.config import LabelConfig
from mathlora.label.judges import JUDGES, judge_of
from mathlora.label.run import judge_fingerprint, judge_source

SRC = Path(__file__).resolve().parents[2] / "src" / "mathlora"


def test_one_judge_per_config_value_and_nothing_else_compares_the_name():
    assert set(JUDGES) == set(get_args(LabelConfig.model_fields["judge"].annotation))
    compared = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py") if p.name != "judges.py"
                for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                if re.search(r"\bjudge\s*(==|!=|\bin\b)\s*[\"'(\[{]", line)]
    assert compared == []


def test_sources_and_fingerprints_are_the_ones_recorded_before():
    assert judge_source(LabelConfig(), "m") == "heuristic:v2"
    assert judge_source(LabelConfig(judge="local"), "base") == "local:base"
    assert judge_source(LabelConfig(judge="openai", model="gpt"), "base") == "openai:gpt"
    with pytest.raises(MathloraError, match="needs a model name"):
        judge_source(LabelConfig(judge="openai"), "base")
    assert judge_fingerprint("heuristic:v2", "") == "heuristic:v2"
    assert not judge_of(LabelConfig()).uses_prompt and judge_of(LabelConfig(judge="local")).needs_runtime
    assert judge_of(LabelConfig()).settings(LabelConfig(), "m", None) == {"source": "heuristic:v2"}
    assert judge_of(LabelConfig(judge="openai", model="x")).settings(LabelConfig(), "m", None) == {}
