"""What the training loop carries from step to step (``TrainState``), and what one step hands back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mathlora.train.data import StepBatch, TokenRecord
from mathlora.train.distributed import ProcessGroup
from mathlora.train.job import TrainJob
from mathlora.train.memory import Plan


@dataclass
class TrainState:
    """Everything the loop needs, and where it stands (``step`` and the totals are saved in checkpoints)."""
    job: TrainJob
    group: ProcessGroup
    out: Path
    records: list[TokenRecord]
    skipped: int
    fingerprint: str
    peft_model: torch.nn.Module
    wrapped: torch.nn.Module  # the loss module, under DDP/FSDP when several processes train
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]  # the trainable ones (LoRA)
    parameters: tuple[int, int]  # (trainable, total), counted before any sharding
    plan: Plan
    use_liger: bool
    pad_id: int
    n_epoch: int
    n_total: int
    n_warmup: int
    save_at: set[int]
    pack_length: int
    static_shape: tuple[int, int] | None
    step: int = 0
    learnable_done: int = 0
    tokens_done: int | None = 0  # every input token (prompt included): FLOP accounting
    seconds_done: float = 0.0
    last_loss: float = float("nan")
    checkpoints: list[str] = field(default_factory=list)
    first_bad: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))

    def checkpoint_state(self, row: dict) -> dict:
        """``trainer_state.json`` of the checkpoint at ``step`` (``row``: its metrics row)."""
        state, step, n_epoch = self, self.step, self.n_epoch
        return {"step": step, "epoch": step / n_epoch, "total_steps": state.n_total, "lr": row["lr"],
                "loss": row["loss"],
                "data_position": {"epoch": (step // n_epoch), "batch_in_epoch": step % n_epoch,
                                  "order_seed": "seed + epoch"},
                "rng": {"scheme": "torch.manual_seed(step_seed(seed, step, rank)) at each step", "seed": state.job.seed},
                "learnable_tokens": state.learnable_done, "seconds": state.seconds_done,
                "fingerprint": state.fingerprint, "world_size": state.group.world, "tokens": state.tokens_done}


@dataclass
class StepResult:
    loss: torch.Tensor  # on the device: read only at host syncs
    grad_norm: torch.Tensor
    batch: StepBatch
    lr: float


@dataclass
class Interval:
    """What happened since the previous host sync (times and tokens/s cover it)."""
    t0: float = field(default_factory=time.perf_counter)
    steps: int = 0
    learnable: int = 0
    tokens: int = 0
