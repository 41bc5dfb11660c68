"""The evaluation backends are chosen through one registry (``mathlora.evaluate.backend``), never by comparing
names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from mathlora.evaluate.backend import BACKENDS, backend_of, hold_model
from mathlora.evaluate.config import EvalConfig

SRC = Path(__file__).resolve().parents[2] / "src" / "mathlora"


def test_one_backend_per_config_value_and_nothing_else_compares_the_name():
    assert set(BACKENDS) == set(get_args(EvalConfig.model_fields["backend"].annotation))
    compared = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py") if p.name != "backend.py"
                for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                if re.search(r"\.backend\s*(==|!=)|==\s*[\"']openai[\"']", line)]
    assert compared == []


def test_what_each_backend_says():
    local, remote = EvalConfig(), EvalConfig(backend="openai", model="served")
    assert backend_of(local).holds_model and not backend_of(remote).holds_model
    assert hold_model(remote, None, "m", None) is None and hold_model(local, None, "m", None) is not None
    assert not backend_of(local).own_model(local) and backend_of(remote).own_model(remote)
    assert backend_of(local).where(local) == "local"
    assert backend_of(remote).where(remote).startswith("openai ")
