"""Process layout: one process, or several under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK), and what the
trainer does differently under DDP or FSDP2: wrapping the model, pausing the gradient sync, gathering the
adapter and optimizer state to full tensors (checkpoints have one format whatever the strategy)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime


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


def reduce_device(group: ProcessGroup) -> str:
    """Where a tensor must be for ``all_reduce_sum`` (NCCL: the GPU; gloo: the CPU)."""
    return group.device if group.device.startswith("cuda") else "cpu"


def uses_fsdp(group: ProcessGroup, strategy: str) -> bool:
    return group.distributed and strategy == "fsdp"


def wrap_for_processes(module: torch.nn.Module, group: ProcessGroup, strategy: str,
                       compute_dtype=torch.float32) -> torch.nn.Module:
    """DDP, or FSDP2 (``fully_shard`` per decoder layer, then the whole; bf16 compute with fp32 gradient
    reduction when ``compute_dtype`` is bf16). Works on CUDA (NCCL) and on CPU (gloo)."""
    if not group.distributed:
        return module
    cuda = group.device.startswith("cuda")
    if strategy == "fsdp":
        try:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        except ImportError:
            raise MathloraError("train.distributed=fsdp needs torch >= 2.6 (FSDP2, fully_shard)") from None
        policy = MixedPrecisionPolicy() if compute_dtype == torch.float32 else MixedPrecisionPolicy(
            param_dtype=compute_dtype, reduce_dtype=torch.float32)
        for layer in [m for m in module.modules() if type(m).__name__.endswith("DecoderLayer")]:
            fully_shard(layer, mp_policy=policy)
        fully_shard(module, mp_policy=policy)
        if cuda:
            module.to(group.device)  # only this process's shards move to the device
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[group.local_rank] if cuda else None)


def is_fsdp(module: torch.nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(module, FSDPModule)


def full_tensor(value):
    """A DTensor shard gathered to the full tensor (a collective: every process calls it in the same order)."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def no_gradient_sync(wrapped):
    """DDP's ``no_sync()``, or FSDP2's ``set_requires_gradient_sync(False)`` for the block."""
    if not is_fsdp(wrapped):
        return wrapped.no_sync()

    @contextlib.contextmanager
    def paused():
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)

    return paused()


def adapter_state(peft_model) -> dict[str, torch.Tensor]:
    """Trainable (LoRA) weights by their peft state-dict names, as full tensors (collective under FSDP)."""
    return {n: full_tensor(p.detach()).to("cpu").clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def optimizer_state(optimizer, wrapped) -> dict:
    """The optimizer state dict with full tensors: the same format whatever the strategy (FSDP checkpoints
    resume under DDP or one process and back)."""
    sd = optimizer.state_dict()
    if not is_fsdp(wrapped):
        return sd
    state = {k: {name: full_tensor(v) for name, v in sd["state"][k].items()} for k in sorted(sd["state"])}
    return {"state": state, "param_groups": sd["param_groups"]}


def load_optimizer_state(optimizer, wrapped, state: dict) -> None:
    if is_fsdp(wrapped):
        from torch.distributed.tensor import distribute_tensor

        params = [p for g in optimizer.param_groups for p in g["params"]]
        state = {"param_groups": state["param_groups"], "state": {
            k: {name: (distribute_tensor(v.to(params[int(k)].device, params[int(k)].dtype),
                                         params[int(k)].device_mesh, params[int(k)].placements)
                       if isinstance(v, torch.Tensor) and v.shape == params[int(k)].shape else v)
                for name, v in slots.items()}
            for k, slots in state["state"].items()}}
    optimizer.load_state_dict(state)
