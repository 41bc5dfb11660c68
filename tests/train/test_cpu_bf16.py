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
    assert summary["dtype"] == "bfloat16" and summary["speed"]["attention"] == "mathlora_rows"
    assert seen == {"lora": {torch.float32}, "adam": {torch.float32}, "base": {torch.bfloat16}}
    assert {t.dtype for t in load_file(str(out / "adapter" / "adapter_model.safetensors")).values()} == \
        {torch.float32}
    # measured: within 3e-4 of the fp32 goldens on the tiny model
    assert [r["loss"] for r in metrics(out)] == pytest.approx(GOLDEN_LOSSES, abs=2e-3)


def test_the_attention_kernel_follows_the_device_precision_and_packing_unless_configured():
    cfg = tiny_config()

    def job(runtime, **train):
        return TrainJob(cfg.train.model_copy(update=train), cfg.lora, 0, "tiny-random-llama", 256, runtime)

    assert attention_for(job(Runtime("cpu", "bf16"))) == attention_for(job(Runtime("cpu", "fp32"))) == "mathlora_rows"
    assert attention_for(job(Runtime("cpu", "bf16"), packing=False)) == "eager"
    assert attention_for(job(Runtime("cpu", "fp32"), packing=False)) is None
    assert attention_for(job(Runtime("cuda", "bf16"))) is None
    assert attention_for(job(Runtime("cpu", "bf16"), attn_implementation="sdpa")) == "sdpa"


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16", 2e-2)])
def test_flat_rows_equal_padded_rows(tokens_dir, precision, tolerance):
    """The unpadded row through the mathlora_rows kernel gives the padded packed rows' loss and gradients."""
    from mathlora.modeling.compat import set_attn_implementation
    from mathlora.train import attention
    from mathlora.train.data import collate, load_token_records, pack_rows
    from mathlora.train.lora import apply_lora
    from mathlora.train.loss import LearnableTokenLoss
    from mathlora.modeling.models import load_model

    records, _ = load_token_records(tokens_dir)
    rows = pack_rows(records[:10], 64)
    assert len({len(r.input_ids) for r in rows}) > 1  # really padded
    runtime = Runtime("cpu", precision)
    results = []
    for flat in (False, True):
        torch.manual_seed(0)
        model = load_model("tiny-random-llama", runtime)
        torch.manual_seed(0)
        peft_model = apply_lora(model, tiny_config().lora)
        set_attn_implementation(peft_model.get_base_model(), attention.register() if flat else "eager")
        inputs = attention.flat_inputs(rows, runtime.dtype) if flat else collate(rows, 0, packed=True)
        loss, count = LearnableTokenLoss(peft_model)(**inputs)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
        results.append((float(loss), int(count), grads))
    (loss_a, count_a, grads_a), (loss_b, count_b, grads_b) = results
    assert count_a == count_b and loss_b == pytest.approx(loss_a, rel=tolerance)
    for name, grad in grads_a.items():
        assert torch.allclose(grads_b[name], grad, atol=tolerance * max(1e-3, float(grad.abs().max()))), name


def test_a_model_built_for_rows_still_runs_a_plain_causal_forward():
    from mathlora.modeling.compat import set_attn_implementation
    from mathlora.modeling.models import load_model
    from mathlora.train import attention

    ids = torch.tensor([[5, 6, 7, 8, 9]])
    model = load_model("tiny-random-llama", Runtime())
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        set_attn_implementation(model, attention.register())
        assert torch.allclose(model(input_ids=ids).logits, plain, atol=1e-5)
        assert torch.allclose(model(input_ids=ids[:, :3]).logits, plain[:, :3], atol=1e-5)  # causal
