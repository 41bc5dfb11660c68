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


@pytest.mark.parametrize("override, field", [
    ("train.betas=[2,2]", "betas"), ("train.betas=[0.9,1.0]", "betas"), ("train.betas=[-0.1,0.9]", "betas"),
    ("lora.target_modules=[]", "target_modules"), ("lora.target_modules=['']", "target_modules"),
    (f"seed={2**63}", "seed"), ("seed=-1", "seed"), (f"sample.seed={2**32}", "seed"),
    ("sample.ratios=1:1e308,2:1e308", "ratios"),
])
def test_values_torch_and_peft_would_reject_are_refused_at_load(override, field):
    from mathlora.config import load_config
    from mathlora.errors import MathloraError

    with pytest.raises(MathloraError, match=field):
        load_config(None, [override])
    assert load_config(None, ["train.betas=[0.9,0.999]", "seed=4294967295", "sample.ratios=1:1e9,2:1"])
