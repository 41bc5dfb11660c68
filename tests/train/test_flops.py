"""Strict FLOP accounting: golden numbers for the Llama-3-8B shape and the issue's measured H100 figures."""

import pytest
import torch

from mathlora.train.flops import (
    MatmulParams, count_matmul_params, hardware_flops, llama_matmul_params, model_flops, model_flops_per_token,
    peak_tflops, step_report, utilization,
)

LLAMA3_8B = dict(layers=32, hidden=4096, heads=32, kv_heads=8, inter=14336, vocab=128256)


def test_llama3_8b_matmul_parameters():
    p = llama_matmul_params(**LLAMA3_8B, lora_r=8)
    # per layer: q 4096^2, k/v 4096*1024, o 4096^2, gate/up/down 4096*14336 -> 218,103,808; x32
    assert p.body == 6_979_321_856
    assert p.head == 525_336_576                      # 4096 x 128256
    assert p.trainable == 3_407_872                   # LoRA r8 on q (8*(4096+4096)) and v (8*(4096+1024)), x32
    assert p.total == 7_508_066_304                   # N; + embeddings 525,336,576 + norms 266,240 = 8.03 B


def test_4n_lora_6n_full_finetune():
    p = llama_matmul_params(**LLAMA3_8B, lora_r=8)
    assert model_flops_per_token(p.total) == 30_032_265_216
    assert model_flops_per_token(p.total, full_finetune=True) == 45_048_397_824
    # exact: 4 x frozen + 6 x trainable (LoRA weight gradients): 2 x 3,407,872 above the rule of thumb
    assert model_flops(p, 1) == 4 * (p.body + p.head) + 6 * p.trainable == 30_039_080_960
    full = MatmulParams(body=p.body, head=p.head, trainable=p.body + p.head, full_finetune=True)
    assert model_flops(full, 1) == 6 * (p.body + p.head)


def test_issue_h100_figures_strict_mfu_and_hfu():
    """The issue's bench: 9,433 tok/s with whole-layer recompute printed 'MFU 0.43' (6N); strictly 28.6%."""
    p = llama_matmul_params(**LLAMA3_8B, lora_r=8)
    peak = peak_tflops("NVIDIA H100 80GB HBM3")
    assert peak == pytest.approx(989.4)
    assert utilization(model_flops(p, 9433), 1.0, peak) == pytest.approx(0.2864, abs=1e-4)
    # recompute redoes the decoder layers' forward (not the LM head): 6N minus 2 x head
    hw = hardware_flops(p, 9433, recomputed_fraction=1.0)
    assert hw == model_flops(p, 9433) + 2 * (p.body + p.trainable) * 9433
    assert utilization(hw, 1.0, peak) == pytest.approx(0.4195, abs=1e-4)
    # no recompute, micro-batch 8: 11,510 tok/s -> 34.9% MFU, HFU equal
    assert utilization(model_flops(p, 11510), 1.0, peak) == pytest.approx(0.3495, abs=1e-4)
    assert hardware_flops(p, 11510) == model_flops(p, 11510)


def test_head_counted_on_learnable_tokens_and_extra_head_work_is_hardware_only():
    p = MatmulParams(body=1000, head=100, trainable=10)
    assert model_flops(p, 10, head_tokens=3) == 4 * 1000 * 10 + 6 * 10 * 10 + 4 * 100 * 3
    # an implementation projecting all 10 positions does the same model work, more hardware work
    assert hardware_flops(p, 10, 3, computed_head_tokens=10) - model_flops(p, 10, 3) == 4 * 100 * 7
    # padding tokens are hardware work too
    assert hardware_flops(p, 10, 3, computed_tokens=16, computed_head_tokens=3) == model_flops(p, 16, 3)
    # half the layers recomputed
    assert hardware_flops(p, 10, 3, recomputed_fraction=0.5) == model_flops(p, 10, 3) + 1010 * 10


def test_peak_lookup_and_unknown_devices():
    assert peak_tflops("NVIDIA H200") == pytest.approx(989.4)
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("cpu") is None and peak_tflops(None) is None
    r = step_report(MatmulParams(10, 1, 1), tokens=100, learnable_tokens=50, seconds=2.0, device_name=None)
    assert r["mfu"] is None and r["hfu"] is None and r["model_flops"] == 4 * 10 * 100 + 6 * 100 + 4 * 50


def test_count_matmul_params_of_a_peft_model_matches_the_shape_formula():
    from mathlora.modeling.models import load_model
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.config import LoraConfig
    from mathlora.train.lora import apply_lora

    spec = "tiny-random-llama:layers=2,hidden=64,heads=4,kv_heads=2,inter=128"
    model = apply_lora(load_model(spec, Runtime("cpu", "fp32")), LoraConfig(r=8))
    counted = count_matmul_params(model)
    vocab = model.get_base_model().config.vocab_size
    expected = llama_matmul_params(layers=2, hidden=64, heads=4, kv_heads=2, inter=128, vocab=vocab, lora_r=8)
    assert counted == expected
    assert counted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
