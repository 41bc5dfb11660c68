"""Two CPU processes (torchrun, gloo) train the same adapter as one process with the same global batch."""

import json

import pytest
from safetensors.torch import load_file

from .conftest import tiny_config, torchrun_train, train


def test_two_gloo_processes_equal_one_process(tmp_path, tokens_dir):
    cfg = tiny_config(max_steps=3, save_steps=2, micro_batch_size=1)
    done = torchrun_train(cfg, tokens_dir, tmp_path / "ddp", timeout=240)
    assert done.stdout.count("trained 3 steps") == 1  # only rank 0 reports

    single = train(cfg, tokens_dir, tmp_path / "one", progress=False)
    ddp = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp["world_size"] == 2 and ddp["learnable_tokens"] == single["learnable_tokens"]
    assert ddp["final_loss"] == pytest.approx(single["final_loss"], abs=1e-5)
    a = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    # the checkpoint written by rank 0 is complete and no temp folder is left behind
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == ["step-2", "step-3"]
