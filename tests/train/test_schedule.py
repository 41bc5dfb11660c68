import math

import pytest

from mathlora.train.checkpoint import resolve_save_steps
from mathlora.train.schedule import lr_at, steps_per_epoch, total_steps, warmup_steps


def test_step_counts_follow_the_recipe():
    # 1000 records, batch 32, 3 epochs: 32 steps per epoch (last one partial), 96 in all, 3 warmup.
    assert steps_per_epoch(1000, 32) == 32
    assert total_steps(1000, 32, 3, None) == 96
    assert total_steps(1000, 32, 3, 10) == 10
    assert total_steps(1000, 32, 0.5, None) == 16
    assert warmup_steps(96, 0.03) == 3


def test_lr_schedule_shape_warmup_cosine_lr_end():
    total, warmup, peak, end = 100, 10, 1e-4, 1e-6
    lrs = [lr_at(s, total=total, warmup=warmup, lr=peak, lr_end=end) for s in range(total)]
    # linear warmup reaching the peak on the last warmup step
    assert lrs[0] == pytest.approx(peak / 10)
    assert lrs[:10] == pytest.approx([peak * (s + 1) / 10 for s in range(10)])
    assert lrs[9] == pytest.approx(peak) and lrs[10] == pytest.approx(peak)
    # cosine: monotone non-increasing, half-way value, ends exactly at lr_end
    after = lrs[10:]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert lrs[55] == pytest.approx((peak + end) / 2)  # half-way through the cosine
    assert lrs[40] == pytest.approx(end + (peak - end) * 0.5 * (1 + math.cos(math.pi * 30 / 90)))
    # the last step still learns; lr_end is where the run ends (step == total)
    assert end < lrs[-1] < end + (peak - end) * 0.01
    assert lr_at(total, total=total, warmup=warmup, lr=peak, lr_end=end) == pytest.approx(end)


def test_lr_without_warmup_starts_at_peak():
    assert lr_at(0, total=5, warmup=0, lr=2.0, lr_end=0.0) == 2.0
    assert lr_at(5, total=5, warmup=0, lr=2.0, lr_end=0.0) == 0.0


def test_save_steps_interval_list_and_last():
    assert resolve_save_steps(None, 7) == [7]
    assert resolve_save_steps(3, 7) == [3, 6, 7]
    assert resolve_save_steps(3, 6) == [3, 6]
    assert resolve_save_steps([2100, 2800, 3500, 4200, 9999], 4389) == [2100, 2800, 3500, 4200, 4389]
