"""Speed levers on CPU: recompute modes change no number, the auto plan on CPU, static shapes, optimizer."""

import json

import pytest
import torch

from mathlora.train import speed
from mathlora.train.data import Row, collate
from .conftest import tiny_config, train

SPEC = "tiny-random-llama:layers=3,hidden=64,heads=4,kv_heads=2,inter=128"


def _model():
    from mathlora.modeling.models import load_model
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.config import LoraConfig
    from mathlora.train.lora import apply_lora

    torch.manual_seed(0)
    model = apply_lora(load_model(SPEC, Runtime("cpu", "fp32")), LoraConfig(r=4))
    for n, p in model.named_parameters():  # non-zero B so LoRA gradients flow everywhere
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _grads(model):
    from mathlora.train.loss import LearnableTokenLoss

    model.train()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 250, (2, 24), generator=g)
    pos = torch.cat([torch.arange(10), torch.arange(14)]).expand(2, -1)  # two packed records per row
    targets = torch.roll(ids, -1, 1)
    loss, _ = LearnableTokenLoss(model)(ids, pos, targets)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("layers,selective", [(0, True), (1, True), (3, False), (2, False)])
def test_recompute_modes_give_the_same_loss_and_gradients(layers, selective):
    ref_loss, ref = _grads(_model())
    model = _model()
    speed.apply_recompute(model.get_base_model(), layers=layers, selective=selective)
    stack = speed.decoder_layers(model)
    assert [bool(getattr(x, "gradient_checkpointing", False)) for x in stack] == [i < layers for i in range(3)]
    if selective:
        assert all(getattr(x.mlp, "_mathlora_selective", False) for x in stack[layers:])
    loss, got = _grads(model)
    assert loss == pytest.approx(ref_loss, abs=1e-6)
    assert max(float((got[k] - ref[k]).abs().max()) for k in ref) < 1e-6


def test_cpu_auto_plan_keeps_activations_and_takes_the_whole_step():
    p = speed.resolve_plan("auto", "auto", shape=None, n_layers=3, device="cpu", memory_fraction=0.85, max_rows=16,
                           row_tokens=256, step_tokens=4000, head_fraction=0.3, liger=False)
    assert (p.mode, p.micro_batch_size) == ("none", 16)
    p = speed.resolve_plan(True, 4, shape=None, n_layers=3, device="cpu", memory_fraction=0.85, max_rows=16,
                           row_tokens=256, step_tokens=4000, head_fraction=0.3, liger=False)
    assert (p.mode, p.recompute_layers, p.micro_batch_size) == ("full", 3, 4)
    p = speed.resolve_plan("selective", 2, shape=None, n_layers=3, device="cpu", memory_fraction=0.85, max_rows=16,
                           row_tokens=256, step_tokens=4000, head_fraction=0.3, liger=False)
    assert (p.mode, p.micro_batch_size) == ("selective", 2)


def test_liger_only_on_cuda_and_optimizer_fused_only_on_cuda(capsys):
    assert not speed.want_liger("auto", "cpu")
    assert not speed.want_liger(False, "cuda:0")
    assert not speed.want_liger(True, "cpu")
    assert "not used" in capsys.readouterr().err
    opt = speed.make_optimizer([torch.nn.Parameter(torch.zeros(3))], lr=1e-3, betas=(0.9, 0.95), eps=1e-8,
                               weight_decay=0.0, device="cpu")
    assert not opt.defaults.get("fused")


def test_static_shape_collate_pads_rows_and_width_without_targets():
    rows = [Row([5, 6, 7], [0, 1, 2], [6, 7, -100])]
    batch = collate(rows, 0, packed=True, width=8, n_rows=3)
    assert batch["input_ids"].shape == (3, 8)
    assert int((batch["targets"] != -100).sum()) == 2


def test_trainer_modes_reach_the_same_losses(tmp_path, tokens_dir):
    base = dict(max_steps=3, save_steps=None)
    ref = train(tiny_config(**base), tokens_dir, tmp_path / "ref", progress=False)
    sel = train(tiny_config(gradient_checkpointing="selective", **base), tokens_dir, tmp_path / "sel", progress=False)
    auto = train(tiny_config(gradient_checkpointing="auto", micro_batch_size="auto", **base), tokens_dir,
                 tmp_path / "auto", progress=False)
    assert sel["final_loss"] == pytest.approx(ref["final_loss"], abs=1e-5)
    assert auto["final_loss"] == pytest.approx(ref["final_loss"], abs=1e-5)
    assert auto["speed"]["micro_batch_size"] == 8 and auto["speed"]["recompute"] == "none"
    assert sel["speed"]["recompute"] == "selective" and not ref["speed"]["fused_adamw"]
    # strict FLOP accounting in the summary: every input token counted, MFU left out on CPU
    assert ref["tokens"] > ref["learnable_tokens"] > 0
    assert ref["flops"]["mfu"] is None and ref["flops"]["model_flops"] > 0


def test_metrics_at_log_steps_cover_the_interval(tmp_path, tokens_dir):
    summary = train(tiny_config(max_steps=5, log_every=2), tokens_dir, tmp_path / "r", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 5]
    assert [r["interval_steps"] for r in rows] == [2, 2, 1]
    assert sum(r["interval_learnable_tokens"] for r in rows) == summary["learnable_tokens"]
    assert sum(r["interval_tokens"] for r in rows) == summary["tokens"]


def test_compiled_layers_train_like_eager(tmp_path):
    """torch.compile of the decoder layers (aot_eager backend: no C++ toolchain needed) changes no number."""
    ref_loss, ref = _grads(_model())
    model = _model()
    assert speed.compile_layers(model, "default", backend="aot_eager") == 3
    loss, got = _grads(model)
    assert loss == pytest.approx(ref_loss, abs=1e-5)
    assert max(float((got[k] - ref[k]).abs().max()) for k in ref) < 1e-5
