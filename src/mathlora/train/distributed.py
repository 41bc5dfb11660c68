"""Process layout: one process, or several under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from mathlora.runtime import Runtime


@dataclass
class ProcessGroup:
    rank: int
    world: int
    local_rank: int
    device: str
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False


def start_processes(runtime: Runtime) -> ProcessGroup:
    """Join the torchrun process group when launched by torchrun, else a single process. Each process
    runs on ``runtime.for_process(local_rank)`` (``cuda`` becomes ``cuda:<LOCAL_RANK>``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = runtime.for_process(local_rank).device if world > 1 else runtime.device
    group = ProcessGroup(rank, world, local_rank, device)
    if world > 1:
        import torch.distributed as dist

        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
            group.owns_group = True
    return group
