"""FSDP2 (fully_shard) on two CPU processes (gloo) trains the same adapter as one process, and its
checkpoints (full tensors, the same format as DDP's) resume in one process."""

import json
import shutil

import pytest
from safetensors.torch import load_file

from .conftest import tiny_config, torchrun_train, train

pytest.importorskip("torch.distributed.fsdp", reason="needs torch with FSDP2")


def test_two_fsdp_processes_equal_one_process_and_resume_in_one(tmp_path, tokens_dir):
    from torch.distributed import fsdp

    if not hasattr(fsdp, "fully_shard"):
        pytest.skip("torch without FSDP2 (fully_shard)")
    cfg = tiny_config(max_steps=3, save_steps=2, micro_batch_size=1, distributed="fsdp")
    done = torchrun_train(cfg, tokens_dir, tmp_path / "fsdp", timeout=300)
    assert done.stdout.count("trained 3 steps") == 1

    single = train(cfg, tokens_dir, tmp_path / "one", progress=False)
    sharded = json.loads((tmp_path / "fsdp" / "summary.json").read_text())
    assert sharded["speed"]["distributed"] == "fsdp2"
    assert sharded["world_size"] == 2 and sharded["learnable_tokens"] == single["learnable_tokens"]
    assert sharded["final_loss"] == pytest.approx(single["final_loss"], abs=1e-5)
    a = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "fsdp" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5

    # resume the FSDP run's step-2 checkpoint in one process: the same final adapter
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "fsdp", resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-3")
    for name in ("summary.json", "adapter"):
        p = resumed / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    again = train(cfg, tokens_dir, resumed, progress=False)
    assert again["final_loss"] == pytest.approx(single["final_loss"], abs=1e-5)
    c = load_file(str(resumed / "adapter" / "adapter_model.safetensors"))
    assert max(float((a[k] - c[k]).abs().max()) for k in a) < 1e-5
