"""The memory estimate (calibrated on the one measured H100 figure) and the recompute / micro-batch plan."""

import pytest

from mathlora.train.memory import GIB, ModelShape, estimate_bytes, plan

LLAMA3_8B = ModelShape(layers=32, hidden=4096, heads=32, kv_heads=8, inter=14336, vocab=128256,
                       params=8_030_261_248, trainable=3_407_872)
H100_BUDGET = int(79.1 * GIB * 0.85)


def test_estimate_matches_the_measured_recompute_peak():
    # issue 11: bench/gpu_train_throughput.py, whole-layer recompute, 32 x 256, bf16: 28.9 GB peak
    # (torch.cuda.max_memory_allocated / 2**30)
    est = estimate_bytes(LLAMA3_8B, tokens=32 * 256, recompute_layers=32) / GIB
    assert est == pytest.approx(28.9, rel=0.03)


def test_estimate_golden_values_and_orderings():
    none32 = estimate_bytes(LLAMA3_8B, tokens=8192)
    assert none32 / GIB == pytest.approx(66.04, abs=0.01)
    assert estimate_bytes(LLAMA3_8B, tokens=2048) / GIB == pytest.approx(27.95, abs=0.01)
    sel = estimate_bytes(LLAMA3_8B, tokens=8192, selective=True)
    liger = estimate_bytes(LLAMA3_8B, tokens=8192, liger=True)
    assert liger < sel < none32
    # every recomputed layer frees memory; fewer head tokens need less
    assert estimate_bytes(LLAMA3_8B, tokens=8192, recompute_layers=8, selective=True) < sel
    assert estimate_bytes(LLAMA3_8B, tokens=8192, head_tokens=2458) < none32


def test_plan_prefers_no_recompute_with_the_whole_step():
    p = plan(LLAMA3_8B, budget_bytes=H100_BUDGET, max_rows=32, row_tokens=256)
    assert (p.mode, p.micro_batch_size, p.fits) == ("none", 32, True)
    assert p.estimate_bytes <= H100_BUDGET
    with_liger = plan(LLAMA3_8B, budget_bytes=H100_BUDGET, max_rows=32, row_tokens=256, liger=True)
    assert (with_liger.mode, with_liger.micro_batch_size) == ("none", 32)


def test_plan_under_tighter_budgets_selective_then_layers_then_full():
    p = plan(LLAMA3_8B, budget_bytes=58 * GIB, max_rows=32, row_tokens=256)
    assert (p.mode, p.micro_batch_size) == ("selective", 32)
    p = plan(LLAMA3_8B, budget_bytes=40 * GIB, max_rows=32, row_tokens=256)
    assert (p.mode, p.micro_batch_size) == ("selective", 16)
    # micro-batches below 2048 tokens are not taken before recomputing some layers
    p = plan(LLAMA3_8B, budget_bytes=31 * GIB, max_rows=32, row_tokens=256, min_micro_tokens=4096)
    assert p.mode == "partial" and 0 < p.recompute_layers < 32 and p.micro_batch_size == 32
    p = plan(LLAMA3_8B, budget_bytes=24 * GIB, max_rows=32, row_tokens=256)
    assert (p.mode, p.recompute_layers, p.micro_batch_size) == ("full", 32, 16)
    p = plan(LLAMA3_8B, budget_bytes=10 * GIB, max_rows=32, row_tokens=256)
    assert not p.fits and p.micro_batch_size == 1 and "NOT fit" in p.describe(32)
    assert all(q.estimate_bytes <= q.budget_bytes for q in [
        plan(LLAMA3_8B, budget_bytes=b * GIB, max_rows=32, row_tokens=256) for b in (20, 30, 45, 60, 70)])


def test_short_records_plan_on_their_real_tokens():
    # realistic data: 32 records of ~94 tokens, 30% learnable, fit in one pass on a budget where full rows don't
    p = plan(LLAMA3_8B, budget_bytes=40 * GIB, max_rows=32, row_tokens=256, step_tokens=32 * 120,
             head_fraction=0.45)
    assert (p.mode, p.micro_batch_size) == ("none", 32)


def test_plan_rejects_nonsense():
    with pytest.raises(ValueError):
        plan(LLAMA3_8B, budget_bytes=GIB, max_rows=0, row_tokens=256)
