"""config: YAML loading and overrides."""

from __future__ import annotations

import pytest
from tests.conftest import single_torch_thread


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def test_ratios_are_text_not_base_60(tmp_path):
    from mathlora.config import load_config

    assert load_config(None, ["sample.ratios=5:1"]).sample.ratios == "5:1"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sample: {total: 10, ratios: 5:1}\n")
    assert load_config(cfg).sample.ratios == "5:1"
