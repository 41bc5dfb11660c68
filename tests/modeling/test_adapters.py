"""Adapter folders: the one-line errors of a folder that is not an adapter, and how an exported adapter names
its base model (``mathlora.modeling.adapters``)."""

from __future__ import annotations

import pytest

from mathlora.errors import MathloraError
from mathlora.modeling.adapters import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_problem, base_model_name, hub_id,
                                        load_problem, read_adapter_config, require_adapter_dir)


def test_a_folder_that_is_not_an_adapter_is_one_line(tmp_path):
    with pytest.raises(MathloraError, match="not found"):
        require_adapter_dir(tmp_path / "none")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MathloraError, match="is a file"):
        require_adapter_dir(tmp_path / "file")
    with pytest.raises(MathloraError, match=f"no {ADAPTER_CONFIG}, so it is not a peft adapter"):
        require_adapter_dir(tmp_path)
    (tmp_path / ADAPTER_CONFIG).write_text("[1]")
    with pytest.raises(MathloraError, match=f"lacks {ADAPTER_WEIGHTS}"):
        require_adapter_dir(tmp_path)
    with pytest.raises(MathloraError, match="not a JSON object"):
        read_adapter_config(tmp_path)
    assert adapter_problem(tmp_path) == f"{ADAPTER_WEIGHTS} is missing"
    (tmp_path / ADAPTER_WEIGHTS).write_bytes(b"garbage")
    assert require_adapter_dir(tmp_path) == tmp_path
    assert adapter_problem(tmp_path).startswith(f"{ADAPTER_WEIGHTS} is unreadable")


def test_load_problem_names_what_failed():
    assert load_problem("x", lambda: 3) == (3, None)
    value, problem = load_problem("weights", lambda: 1 / 0)
    assert value is None and problem == "weights is unreadable (division by zero)"


def test_an_exported_adapter_names_its_base_by_hub_id_or_as_given(tmp_path):
    assert hub_id("org/name@main") == "org/name" and base_model_name("org/name") == "org/name"
    cached = tmp_path / "hub" / "models--org--model" / "snapshots" / "abc"
    cached.mkdir(parents=True)
    assert hub_id(str(cached)) == "org/model"
    assert hub_id(str(cached), kind="datasets") is None
    assert base_model_name(str(tmp_path)) == str(tmp_path)  # a local folder: the spec as given
