"""Fixtures of the GRPO stage's tests: a tiny SFT adapter and a file of training problems with gold answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import single_torch_thread

pytest.fixture(autouse=True)(single_torch_thread)


def trl_or_skip():
    """``trl`` when installed at the tested version, else the test is skipped with one line."""
    from mathlora.grpo.trainer import MIN_TRL

    return pytest.importorskip("trl", minversion=MIN_TRL,
                               reason=f"trl>={MIN_TRL} not installed (pip install 'mathlora[grpo]')")


def write_problems(path: Path, n: int = 6) -> Path:
    """Problems whose answers are one digit, so a random model's completion is sometimes right (a reward with
    spread: GRPO's advantages are not all zero)."""
    rows = [{"id": f"p{i}", "problem": f"{i} + 1 = ?", "solution": f"{i} + 1 = {i + 1}", "type": "addsub"}
            for i in range(n)]
    rows.append({"id": "nogold", "problem": "Say hello.", "solution": "hello", "type": "other"})  # left out
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory) -> Path:
    from tests.cli_helpers import tiny_adapter

    return tiny_adapter(tmp_path_factory.mktemp("sft") / "adapter")


@pytest.fixture
def problems(tmp_path) -> Path:
    return write_problems(tmp_path / "normalized.jsonl")
