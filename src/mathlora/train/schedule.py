"""Step counts and the learning-rate schedule (linear warmup, cosine decay down to ``lr_end``).

Step ``s`` counts optimizer steps from 0. Warmup rises linearly and reaches the peak ``lr`` at the last
warmup step (no step runs at lr 0); the cosine then starts at the peak and reaches ``lr_end`` where
training ends, i.e. at step ``total`` (so the final step still learns, as in transformers' schedule).
"""

from __future__ import annotations

import math


def steps_per_epoch(n_records: int, global_batch_size: int) -> int:
    """Optimizer steps in one pass over the data (the last, partial batch counts)."""
    return max(1, math.ceil(n_records / global_batch_size))


def total_steps(n_records: int, global_batch_size: int, epochs: float, max_steps: int | None) -> int:
    """``max_steps`` when given, else ``ceil(epochs x steps_per_epoch)``."""
    if max_steps is not None:
        return max_steps
    return max(1, math.ceil(epochs * steps_per_epoch(n_records, global_batch_size)))


def warmup_steps(total: int, warmup_ratio: float) -> int:
    return math.ceil(total * warmup_ratio)


def lr_at(step: int, *, total: int, warmup: int, lr: float, lr_end: float) -> float:
    """Learning rate used by optimizer step ``step`` (0-based)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return lr_end + (lr - lr_end) * 0.5 * (1.0 + math.cos(math.pi * progress))
