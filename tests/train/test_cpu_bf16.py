"""Training in bf16 on a CPU (what ``runtime.precision: auto`` picks on a CPU with native bf16 kernels): the
base model computes in bf16, the LoRA weights and AdamW's state stay fp32 (as on CUDA), and the loss curve
stays on the fp32 goldens within bf16's rounding."""

import pytest
import torch
from safetensors.torch import load_file

from mathlora.modeling.runtime import Runtime
from mathlora.train import trainer
from mathlora.train.job import TrainJob
from mathlora.train.lora import attention_for
from .conftest import tiny_config
from .test_trainer import GOLDEN_LOSSES, metrics


def test_bf16_base_with_fp32_lora_and_optimizer_on_cpu(tmp_path, tokens_dir, monkeypatch):
    seen = {}
    step = trainer.train_step

    def watched(state, n):
        result = step(state, n)
        seen["lora"] = {p.dtype for p in state.params}
        seen["adam"] = {v.dtype for s in state.optimizer.state.values() for v in s.values()
                        if torch.is_tensor(v) and v.numel() > 1}
        seen["base"] = {p.dtype for p in state.peft_model.parameters() if not p.requires_grad}
        return result

    monkeypatch.setattr(trainer, "train_step", watched)
    cfg = tiny_config(save_steps=6)
    out = tmp_path / "run"
    summary = trainer.train(cfg.train, Runtime("cpu", "bf16"), tokens_dir, out, lora=cfg.lora, seed=cfg.seed,
                            progress=False)
    assert summary["dtype"] == "bfloat16" and summary["speed"]["attention"] == "eager"
    assert seen == {"lora": {torch.float32}, "adam": {torch.float32}, "base": {torch.bfloat16}}
    assert {t.dtype for t in load_file(str(out / "adapter" / "adapter_model.safetensors")).values()} == \
        {torch.float32}
    # measured: within 3e-4 of the fp32 goldens on the tiny model
    assert [r["loss"] for r in metrics(out)] == pytest.approx(GOLDEN_LOSSES, abs=2e-3)


def test_eager_attention_only_for_bf16_on_a_cpu_unless_configured():
    cfg = tiny_config()

    def job(runtime, **train):
        return TrainJob(cfg.train.model_copy(update=train), cfg.lora, 0, "tiny-random-llama", 256, runtime)

    assert attention_for(job(Runtime("cpu", "bf16"))) == "eager"
    assert attention_for(job(Runtime("cpu", "fp32"))) is None
    assert attention_for(job(Runtime("cuda", "bf16"))) is None
    assert attention_for(job(Runtime("cpu", "bf16"), attn_implementation="sdpa")) == "sdpa"
