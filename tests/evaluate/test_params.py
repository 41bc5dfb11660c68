"""`eval params` counts on the meta device: no weights are read, a foreign adapter is still refused."""

import json
import shutil

import pytest

from mathlora.modeling import models
from mathlora.errors import MathloraError
from mathlora.evaluate.params import parameter_report
from mathlora.modeling.runtime import Runtime


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    path = tmp_path_factory.mktemp("adapter")
    get_peft_model(models.load_model("tiny-random-llama", Runtime.resolve()),
                   LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])).save_pretrained(path)
    return path


def test_counts_without_loading_weights(adapter, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("parameter_report loaded weights")

    import safetensors.torch
    from transformers import PreTrainedModel

    for owner, name in [(models, "load_model"), (models, "_build_on_cpu"), (safetensors.torch, "load_file"),
                        (safetensors.torch, "load"), (PreTrainedModel, "from_pretrained")]:
        monkeypatch.setattr(owner, name, no_loading)
    r = parameter_report("tiny-random-llama", str(adapter))
    assert r["trainable"] == 3584 and r["line"].startswith(f"3584/{r['base']}=")
    assert r["total"] == r["base"] + 3584 and r["ratio"] == 3584 / r["base"] and r["ratio_peft"] == 3584 / r["total"]


def test_the_ratio_line_names_the_contests_count_first_and_peft_beside_it():
    from mathlora.modeling.models import param_ratio_line

    # Llama3-8B with r=8 on q and v: the contest's 3,407,872 / 8,030,261,248; peft divides by base + adapter
    assert param_ratio_line(3_407_872, 8_033_669_120) == (
        "3407872/8030261248=0.000424 (contest: trainable/base); "
        "3407872/8033669120=0.000424 (peft: trainable/(base+adapter))")


def test_an_adapter_of_another_model_is_refused(adapter, tmp_path):
    with pytest.raises(MathloraError, match="has shape"):
        parameter_report("tiny-random-llama:hidden=32,heads=2,kv_heads=1", str(adapter))

    foreign = tmp_path / "foreign"
    shutil.copytree(adapter, foreign)
    config = json.loads((foreign / "adapter_config.json").read_text())
    (foreign / "adapter_config.json").write_text(json.dumps({**config, "target_modules": ["nope_proj"]}))
    with pytest.raises(MathloraError, match="could not load adapter"):
        parameter_report("tiny-random-llama", str(foreign))
