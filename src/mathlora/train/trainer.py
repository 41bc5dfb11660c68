"""LoRA training per the recipe: one CPU, one GPU, or several processes under torchrun.

``train(cfg, tokens_dir, output_dir)`` reads the tokenize stage's ``tokens.parquet`` and writes::

    <output_dir>/
      checkpoints/step-<N>/       adapter_config.json, adapter_model.safetensors (peft),
                                  optimizer.safetensors, trainer_state.json (step, data position, lr, ...),
                                  merged/ (when train.merge_checkpoints: base + adapter, plain transformers)
      adapter/                    the final adapter (peft format)
      metrics.jsonl               per step: step, epoch, loss, lr, grad_norm, learnable_tokens,
                                  tokens_per_s, seconds
      tensorboard/                the same metrics for TensorBoard
      summary.json                written last: a finished run returns it immediately when rerun

Semantics:

* one optimizer step = ``train.global_batch_size`` records over all processes; each process takes every
  ``world``-th record of the step's batch and runs it in micro-batches of ``train.micro_batch_size`` rows
  (packed rows of up to ``pack_length`` tokens, or single records padded to the micro-batch's longest);
* the loss is the sum of token losses over the global batch divided by its learnable-token count
  (all-reduced across processes before any backward), so accumulation and data parallelism match one big
  batch exactly;
* data order per epoch is a permutation seeded by ``seed + epoch``; the step number fixes the data
  position; the torch RNG (LoRA dropout) is reseeded from (seed, step, rank) at each step. Together with the
  optimizer state and the adapter in each checkpoint, resuming reproduces the uninterrupted run;
* only rank 0 writes files;
* a checkpoint carries a checksum written last; a resume verifies it (and that the weights load and are
  finite) and falls back to the newest checkpoint that passes, saying so. A non-finite loss or gradient norm
  stops training with an error before the optimizer step; non-finite weights are never saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from mathlora.config import Config
from mathlora.errors import MathloraError
from mathlora.records import dumps_line, read_jsonl
from mathlora.run_dir import atomic_path, file_sha256, write_json_atomic
from mathlora.train.checkpoint import (
    adapter_problem, checkpoint_dir, list_checkpoints, newest_valid_checkpoint, non_finite, read_adapter_weights,
    read_training_state, resolve_save_steps, write_checksum, write_training_state,
)
from mathlora.train.data import (
    TOKENS_FILE, TokenRecord, collate, global_batch_indices, load_token_records, micro_batches, shard, step_rows,
)
from mathlora.train.loss import LearnableTokenLoss
from mathlora.train.distributed import ProcessGroup, start_processes
from mathlora.train.schedule import lr_at, steps_per_epoch, total_steps, warmup_steps

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
# Settings that do not change the trained numbers (beyond float rounding); a resume may change them.
RESUMABLE_CHANGES = {"save_steps", "merge_checkpoints", "log_every", "device", "distributed",
                     "gradient_checkpointing", "micro_batch_size"}


def run_fingerprint(cfg: Config, tokens_file: Path) -> str:
    train = {k: v for k, v in cfg.train.model_dump(mode="json").items() if k not in RESUMABLE_CHANGES}
    settings = {"model": cfg.model, "seed": cfg.seed, "lora": cfg.lora.model_dump(mode="json"),
                "train": train, "seq_length": cfg.tokenize.seq_length, "tokens": file_sha256(tokens_file)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 9_973 + rank) % (2**63)


def build_model(cfg: Config, device: str, dtype):
    """Base model (frozen) + fresh LoRA weights, activation checkpointing as configured."""
    from mathlora.models import load_model
    from mathlora.train.lora import apply_lora

    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model, dtype=dtype, device=device)
    model.config.use_cache = False
    if cfg.train.gradient_checkpointing:
        # transformers 5.x renames gradient_checkpointing_enable to activation_checkpointing_enable
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)
    return apply_lora(model, cfg.lora)


def uses_fsdp(group: ProcessGroup, strategy: str) -> bool:
    return group.distributed and strategy == "fsdp"


def wrap_for_processes(module: torch.nn.Module, group: ProcessGroup, strategy: str,
                       compute_dtype=torch.float32) -> torch.nn.Module:
    """DDP, or FSDP (fp32 shards: LoRA and base weights share flat parameters, computed in ``compute_dtype``)."""
    if not group.distributed:
        return module
    cuda = group.device.startswith("cuda")
    if strategy == "fsdp":
        import functools

        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp import MixedPrecision
        from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

        layer_classes = {type(m) for m in module.modules() if type(m).__name__.endswith("DecoderLayer")}
        policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=layer_classes)
        precision = None if compute_dtype == torch.float32 else MixedPrecision(
            param_dtype=compute_dtype, reduce_dtype=torch.float32, buffer_dtype=compute_dtype)
        return FSDP(module, auto_wrap_policy=policy, use_orig_params=True, mixed_precision=precision,
                    device_id=torch.device(group.device) if cuda else None)
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[group.local_rank] if cuda else None)


def is_fsdp(module: torch.nn.Module) -> bool:
    return type(module).__name__ == "FullyShardedDataParallel"


def adapter_state(peft_model, wrapped) -> dict[str, torch.Tensor]:
    """Trainable (LoRA) weights by their peft state-dict names, gathered to full tensors (collective under FSDP)."""
    if is_fsdp(wrapped):
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
            full = wrapped.state_dict()
        return {k.removeprefix("causal_lm."): v for k, v in full.items() if "lora_" in k}
    return {n: p.detach().to("cpu").clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def optimizer_state(optimizer, wrapped) -> dict:
    if is_fsdp(wrapped):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP.optim_state_dict(wrapped, optimizer)
    return optimizer.state_dict()


def load_optimizer_state(optimizer, wrapped, state: dict) -> None:
    if is_fsdp(wrapped):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        state = FSDP.optim_state_dict_to_load(wrapped, optimizer, state)
    optimizer.load_state_dict(state)


def save_adapter(peft_model, weights: dict[str, torch.Tensor], folder: Path) -> None:
    peft_model.save_pretrained(str(folder), state_dict=weights, safe_serialization=True)


def global_loss_terms(records: list[TokenRecord], group: ProcessGroup, cfg: Config, step: int,
                      n_steps_epoch: int, pack_length: int) -> tuple[list, int]:
    """(this process's micro-batches, learnable tokens of the whole global batch) for ``step``."""
    indices = global_batch_indices(len(records), cfg.train.global_batch_size, cfg.seed, step, n_steps_epoch)
    mine = [records[i] for i in shard(indices, group.rank, group.world)]
    rows = step_rows(mine, packing=cfg.train.packing, pack_length=pack_length)
    local = torch.tensor(sum(r.learnable_tokens for r in mine), dtype=torch.float64,
                         device=group.device if group.device.startswith("cuda") else "cpu")
    n_global = int(group.all_reduce_sum(local).item())
    return micro_batches(rows, cfg.train.micro_batch_size), n_global


def run_micro_batches(wrapped, batches, group: ProcessGroup, pad_id: int, packed: bool, n_global: int):
    """Forward/backward every micro-batch; the gradient sync happens once, on the last one."""
    from mathlora.train.data import IGNORE, Row

    if not batches:  # this process got no record: a no-op row keeps the collective calls in step
        batches = [[Row([pad_id], [0], [IGNORE])]]
    loss_sum = torch.zeros((), dtype=torch.float64)
    for j, mb in enumerate(batches):
        last = j == len(batches) - 1
        sync = contextlib.nullcontext() if (last or not group.distributed) else wrapped.no_sync()
        inputs = {k: v.to(group.device) for k, v in collate(mb, pad_id, packed=packed).items()}
        with sync:
            part, _ = wrapped(**inputs)
            (part * (group.world / n_global)).backward()
        loss_sum += part.detach().double().cpu()
    return loss_sum


class MetricsLog:
    """metrics.jsonl (append per step) + TensorBoard, on rank 0 only."""

    def __init__(self, out: Path, start_step: int, enabled: bool):
        self.enabled = enabled
        self.path = out / METRICS
        self.writer = None
        if not enabled:
            return
        kept = [r for r in read_jsonl(self.path, "metrics")] if self.path.is_file() else []
        kept = [r for r in kept if r.get("step", 0) <= start_step]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(dumps_line(r) + "\n" for r in kept), encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            warnings.warn("tensorboard is not installed; metrics go to metrics.jsonl only")

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(dumps_line(row) + "\n")
        if self.writer is not None:
            for key in ("loss", "lr", "grad_norm", "learnable_tokens", "tokens_per_s"):
                self.writer.add_scalar(f"train/{key}", row[key], row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def clear_outputs(out: Path) -> None:
    for name in ("checkpoints", "adapter", "tensorboard"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (METRICS, SUMMARY):
        (out / name).unlink(missing_ok=True)


def finished_summary(out: Path, fingerprint: str, resume: bool) -> dict | None:
    path = out / SUMMARY
    if not path.is_file():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    if summary.get("fingerprint") == fingerprint:
        return summary
    if resume:
        raise MathloraError(f"{out} holds a finished run with other settings; choose another output folder "
                            f"or pass --no-resume to overwrite it")
    return None


def train(cfg: Config, tokens_dir, output_dir, *, resume: bool = True, progress: bool = True) -> dict:
    """Train LoRA on ``tokens_dir/tokens.parquet``; see the module docstring for the output layout."""
    if cfg.train.precision == "fp16":
        raise MathloraError("train.precision=fp16 is not supported for training (use bf16, fp32 or auto)")
    group = start_processes(cfg.train.device)
    try:
        return _train(cfg, Path(tokens_dir), Path(output_dir), group, resume=resume, progress=progress)
    finally:
        group.close()


def _train(cfg: Config, tokens_dir: Path, out: Path, group: ProcessGroup, *, resume: bool, progress: bool) -> dict:
    from tqdm import tqdm

    from mathlora.models import count_parameters, load_tokenizer, param_ratio_line, resolve_dtype

    tc = cfg.train
    if out.exists() and not out.is_dir():
        raise MathloraError(f"output {out} exists and is a file; expected a folder")
    records, skipped = load_token_records(tokens_dir)
    fingerprint = run_fingerprint(cfg, tokens_dir / TOKENS_FILE if tokens_dir.is_dir() else tokens_dir)
    done = finished_summary(out, fingerprint, resume)
    if done is not None:
        problem = adapter_problem(out / "adapter")
        if problem is None:
            return done
        if group.is_main:
            print(f"warning: the finished adapter {out / 'adapter'} {problem}; rebuilding it from the checkpoints",
                  file=sys.stderr)
            (out / SUMMARY).unlink(missing_ok=True)
        group.barrier()
    if tc.global_batch_size % group.world:
        raise MathloraError(f"train.global_batch_size={tc.global_batch_size} is not a multiple of the "
                            f"{group.world} processes")
    if skipped and group.is_main:
        print(f"warning: skipped {skipped} record(s) without a learnable token", file=sys.stderr)

    ckpt_root = out / "checkpoints"
    def warn(message: str) -> None:
        if group.is_main:
            print(f"warning: {message}", file=sys.stderr)

    start = newest_valid_checkpoint(ckpt_root, warn) if resume else None
    if start is None and group.is_main:
        if resume and out.exists() and any(out.iterdir()):
            print(f"warning: no complete checkpoint in {ckpt_root}; starting from step 0", file=sys.stderr)
        clear_outputs(out)
    group.barrier()
    out.mkdir(parents=True, exist_ok=True)

    dtype = resolve_dtype(tc.precision, group.device.split(":")[0])
    fsdp = uses_fsdp(group, tc.distributed)
    if fsdp and not group.device.startswith("cuda"):
        raise MathloraError("train.distributed=fsdp needs CUDA devices; use train.distributed=ddp on CPU")
    # FSDP: fp32 weights loaded on the host and sharded onto the devices, bf16 compute (mixed precision)
    peft_model = build_model(cfg, "cpu" if fsdp else group.device, torch.float32 if fsdp else dtype)
    trainable, total = count_parameters(peft_model)
    ratio_line = param_ratio_line(trainable, total)
    pad_id = load_tokenizer(cfg.model).pad_token_id or 0

    n_epoch = steps_per_epoch(len(records), tc.global_batch_size)
    n_total = total_steps(len(records), tc.global_batch_size, tc.epochs, tc.max_steps)
    n_warmup = warmup_steps(n_total, tc.warmup_ratio)
    save_at = set(resolve_save_steps(tc.save_steps, n_total))
    pack_length = tc.pack_length or cfg.tokenize.seq_length

    step, tokens_done, seconds_done, last_loss = 0, 0, 0.0, float("nan")
    resumed_state = None
    if start is not None:
        opt_state, state = read_training_state(start)
        if state.get("fingerprint") != fingerprint:
            raise MathloraError(f"checkpoint {start} was trained with other settings or data; choose another "
                                f"output folder or pass --no-resume to start over")
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(peft_model, read_adapter_weights(start))
        step, tokens_done, seconds_done = state["step"], state["learnable_tokens"], state["seconds"]
        last_loss = state.get("loss", last_loss)
        resumed_state = opt_state
        if group.is_main:
            print(f"resuming from {start} (step {step}/{n_total})", file=sys.stderr)

    wrapped = wrap_for_processes(LearnableTokenLoss(peft_model), group, tc.distributed, dtype)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tc.lr, betas=tuple(tc.betas), eps=tc.eps,
                                  weight_decay=tc.weight_decay)
    if resumed_state is not None:
        load_optimizer_state(optimizer, wrapped, resumed_state)

    metrics = MetricsLog(out, step, group.is_main)
    bar = tqdm(total=n_total, initial=step, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True,
               disable=not (progress and group.is_main))
    checkpoints = [str(p) for s, p in list_checkpoints(ckpt_root) if s <= step]
    wrapped.train()
    try:
        while step < n_total:
            t0 = time.perf_counter()
            torch.manual_seed(step_seed(cfg.seed, step, group.rank))
            batches, n_global = global_loss_terms(records, group, cfg, step, n_epoch, pack_length)
            lr = lr_at(step, total=n_total, warmup=n_warmup, lr=tc.lr, lr_end=tc.lr_end)
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss_sum = run_micro_batches(wrapped, batches, group, pad_id, tc.packing, n_global)
            loss = float(group.all_reduce_sum(loss_sum.to(_reduce_device(group))).item()) / n_global
            grad_norm = clip_gradients(wrapped, params, tc.max_grad_norm)
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                raise MathloraError(f"training stopped at step {step + 1}: the loss is {loss} and the gradient "
                                    f"norm {grad_norm} (not finite); lower train.lr or check the data. "
                                    f"Checkpoints up to step {step} are kept")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            dt = time.perf_counter() - t0
            tokens_done += n_global
            seconds_done += dt
            last_loss = loss
            row = {"step": step, "epoch": round(step / n_epoch, 4), "loss": loss, "lr": lr,
                   "grad_norm": grad_norm, "learnable_tokens": n_global, "tokens_per_s": n_global / dt,
                   "seconds": round(seconds_done, 3)}
            if step % tc.log_every == 0 or step == n_total:
                metrics.write(row)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{n_global / dt:.0f}")
            if step in save_at:
                state = {"step": step, "epoch": step / n_epoch, "total_steps": n_total, "lr": lr, "loss": loss,
                         "data_position": {"epoch": (step // n_epoch), "batch_in_epoch": step % n_epoch,
                                           "order_seed": "seed + epoch"},
                         "rng": {"scheme": "torch.manual_seed(step_seed(seed, step, rank)) at each step",
                                 "seed": cfg.seed},
                         "learnable_tokens": tokens_done, "seconds": seconds_done, "fingerprint": fingerprint,
                         "world_size": group.world}
                path = save_checkpoint(cfg, peft_model, wrapped, optimizer, state, ckpt_root, group)
                checkpoints.append(str(path))
    finally:
        bar.close()
        metrics.close()

    final_adapter = out / "adapter"
    weights = adapter_state(peft_model, wrapped)
    check_finite_weights(weights, group, step)
    if group.is_main:
        with atomic_path(final_adapter, directory=True) as tmp:
            save_adapter(peft_model, weights, tmp)
    summary = {
        "steps": step, "epochs": round(step / n_epoch, 4), "seconds": round(seconds_done, 3),
        "learnable_tokens": tokens_done, "tokens_per_s": tokens_done / seconds_done if seconds_done else 0.0,
        "final_loss": last_loss, "trainable": trainable, "total": total, "ratio_line": ratio_line,
        "checkpoints": sorted(set(checkpoints), key=lambda p: int(Path(p).name.split("-")[1])),
        "adapter": str(final_adapter), "records": len(records), "skipped_records": skipped,
        "world_size": group.world, "device": group.device, "dtype": str(dtype).removeprefix("torch."),
        "fingerprint": fingerprint,
    }
    if group.is_main:
        write_json_atomic(out / SUMMARY, summary)
    group.barrier()
    return summary


def _reduce_device(group: ProcessGroup) -> str:
    return group.device if group.device.startswith("cuda") else "cpu"


def clip_gradients(wrapped, params, max_norm: float | None) -> float:
    """Clip to ``max_norm`` (when set) and return the total gradient norm before clipping."""
    limit = max_norm if max_norm is not None else math.inf
    if is_fsdp(wrapped):
        return float(wrapped.clip_grad_norm_(limit))
    return float(torch.nn.utils.clip_grad_norm_(params, limit))


def save_checkpoint(cfg: Config, peft_model, wrapped, optimizer, state: dict[str, Any], root: Path,
                    group: ProcessGroup) -> Path:
    """Write ``root/step-<N>`` atomically (rank 0); every process takes part in gathering the state."""
    weights = adapter_state(peft_model, wrapped)
    check_finite_weights(weights, group, state["step"])
    opt_state = optimizer_state(optimizer, wrapped)
    target = checkpoint_dir(root, state["step"])
    if group.is_main:
        with atomic_path(target, directory=True) as tmp:
            save_adapter(peft_model, weights, tmp)
            write_training_state(tmp, opt_state, state)
            if cfg.train.merge_checkpoints:
                from mathlora.train.merge import merge_adapter

                merge_adapter(cfg.model, tmp, tmp / "merged")
            write_checksum(tmp)  # last: a checkpoint whose checksum verifies is complete and intact
    group.barrier()
    return target


def check_finite_weights(weights: dict[str, torch.Tensor], group: ProcessGroup, step: int) -> None:
    """Stop (on every process) when the adapter weights hold NaN or Infinity: they are never saved."""
    bad = non_finite(weights)
    flag = group.all_reduce_sum(torch.tensor(float(bad is not None), dtype=torch.float64,
                                             device=_reduce_device(group)))
    if float(flag.item()) > 0:
        raise MathloraError(f"training stopped at step {step}: the adapter weights are not finite "
                            f"(NaN/Infinity{' in ' + bad if bad else ''}); lower train.lr or check the data")
