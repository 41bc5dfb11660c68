"""LoRA training per the recipe: one CPU, one GPU, or several processes under torchrun.

``train(cfg.train, runtime, tokens_dir, output_dir, lora=cfg.lora, seed=cfg.seed)`` reads the tokenize
stage's ``tokens.parquet`` and, from its ``stats.json``, the model to train (the spec whose tokenizer made
the tokens) and the sequence length (the default packing length), and writes::

    <output_dir>/
      checkpoints/step-<N>/       adapter_config.json, adapter_model.safetensors (peft),
                                  optimizer.safetensors, trainer_state.json (step, data position, lr, ...),
                                  merged/ (when train.merge_checkpoints: base + adapter, plain transformers)
      adapter/                    the final adapter (peft format)
      metrics.jsonl               per log step (train.log_every, checkpoints, the last step): step, epoch,
                                  loss, lr, grad_norm, learnable_tokens (that step's), tokens_per_s and
                                  interval_{steps,seconds,learnable_tokens,tokens} since the previous row
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
* "the same run" is decided by ``run_fingerprint`` (used by ``mathlora run`` too): settings that cannot
  change the trained numbers (the fields marked ``NOT_RESULT`` in ``TrainConfig``, the device once the precision is fixed, progress
  output) never make a finished run or a checkpoint stale;
* the host waits for the device only at log, checkpoint and last steps (loss and gradient norm stay on the
  device in between); speed levers (``mathlora.train.speed``): the memory plan for recompute and
  micro-batch (``auto``), Liger kernels, ``torch.compile`` of decoder layers, fused AdamW on CUDA (each
  decided from the runtime's device); the summary carries strict FLOP figures (``mathlora.train.flops``:
  MFU on a known GPU).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mathlora.errors import MathloraError
from mathlora.records import dumps_line, read_jsonl
from mathlora.run_dir import atomic_path, file_sha256, write_json_atomic
from mathlora.runtime import Runtime
from mathlora.same_result import result_settings
from mathlora.train.checkpoint import (
    adapter_problem, checkpoint_dir, list_checkpoints, newest_valid_checkpoint, non_finite, read_adapter_weights,
    read_training_state, resolve_save_steps, write_checksum, write_training_state,
)
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.train.data import (
    TOKENS_FILE, TokenRecord, collate, global_batch_indices, load_token_records, micro_batches, read_token_stats,
    shard, step_rows,
)
from mathlora.train.loss import LearnableTokenLoss
from mathlora.train.outputs import METRICS, SUMMARY, clear_outputs, finished_summary
from mathlora.train.distributed import ProcessGroup, start_processes
from mathlora.train.schedule import lr_at, steps_per_epoch, total_steps, warmup_steps

@dataclass(frozen=True)
class TrainJob:
    """One training run: the ``train`` and ``lora`` sections, the seed, the runtime, and what the tokens
    artifact says (``model``: the spec whose tokenizer made the tokens; ``seq_length``)."""
    train: TrainConfig
    lora: LoraConfig
    seed: int
    model: str
    seq_length: int
    runtime: Runtime

    @classmethod
    def from_tokens(cls, train: TrainConfig, lora: LoraConfig, seed: int, runtime: Runtime,
                    tokens_dir) -> "TrainJob":
        stats = read_token_stats(tokens_dir)
        return cls(train, lora, seed, str(stats["model"]), int(stats["seq_length"]), runtime)


def tokens_file(tokens_dir) -> Path:
    tokens_dir = Path(tokens_dir)
    return tokens_dir / TOKENS_FILE if tokens_dir.is_dir() else tokens_dir


def run_fingerprint(cfg: TrainJob, tokens: Path) -> str:
    """What makes two trainings the same run: model, seed, LoRA, the result-changing train settings, the
    sequence length, the precision, and the tokens. The pipeline's ``train`` stage uses it too."""
    train = result_settings(cfg.train)
    settings = {"model": cfg.model, "seed": cfg.seed, "lora": cfg.lora.model_dump(mode="json"),
                "train": train, "seq_length": cfg.seq_length, **cfg.runtime.fingerprint(),
                "tokens": file_sha256(tokens)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def training_fingerprint(train: TrainConfig, runtime: Runtime, tokens_dir, *, lora: LoraConfig, seed: int) -> str:
    """``run_fingerprint`` of the run ``train(train, runtime, tokens_dir, ...)`` would make."""
    return run_fingerprint(TrainJob.from_tokens(train, lora, seed, runtime, tokens_dir), tokens_file(tokens_dir))


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 9_973 + rank) % (2**63)


def build_model(cfg: TrainJob, runtime: Runtime, *, before_lora=None, recompute: bool | None = None):
    """Base model (frozen) + fresh LoRA weights, built on the CPU from the seed (the same model on every
    machine), activation checkpointing as configured, then moved to ``runtime.device``.

    ``before_lora(model)`` runs on the base model before LoRA is attached (kernel patches);
    ``recompute=False`` leaves activation recompute to the caller (the memory plan).
    """
    from mathlora.compat import enable_activation_checkpointing, set_attn_implementation
    from mathlora.models import load_model
    from mathlora.train.lora import apply_lora

    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model, runtime.replace(device="cpu"))
    model.config.use_cache = False
    if cfg.train.attn_implementation:
        set_attn_implementation(model, cfg.train.attn_implementation)
    if before_lora is not None:
        before_lora(model)
    if (cfg.train.gradient_checkpointing is True) if recompute is None else recompute:
        enable_activation_checkpointing(model)
    torch.manual_seed(cfg.seed)
    return apply_lora(model, cfg.lora).to(runtime.device)


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


def _full(value):
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


def adapter_state(peft_model, wrapped) -> dict[str, torch.Tensor]:
    """Trainable (LoRA) weights by their peft state-dict names, as full tensors (collective under FSDP)."""
    return {n: _full(p.detach()).to("cpu").clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def optimizer_state(optimizer, wrapped) -> dict:
    """The optimizer state dict with full tensors: the same format whatever the strategy (FSDP checkpoints
    resume under DDP or one process and back)."""
    sd = optimizer.state_dict()
    if not is_fsdp(wrapped):
        return sd
    state = {k: {name: _full(v) for name, v in sd["state"][k].items()} for k in sorted(sd["state"])}
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


def save_adapter(peft_model, weights: dict[str, torch.Tensor], folder: Path) -> None:
    peft_model.save_pretrained(str(folder), state_dict=weights, safe_serialization=True)


def global_loss_terms(records: list[TokenRecord], group: ProcessGroup, cfg: TrainJob, step: int,
                      n_steps_epoch: int, pack_length: int, micro: int | None = None,
                      tokens_out: list | None = None) -> tuple[list, int]:
    """(this process's micro-batches, learnable tokens of the whole global batch) for ``step``.

    Every process holds every record, so the global count is summed locally: no collective, no device sync.
    ``tokens_out`` (a list) receives the global batch's input-token count (for FLOP accounting).
    """
    indices = global_batch_indices(len(records), cfg.train.global_batch_size, cfg.seed, step, n_steps_epoch)
    mine = [records[i] for i in shard(indices, group.rank, group.world)]
    rows = step_rows(mine, packing=cfg.train.packing, pack_length=pack_length)
    n_global = sum(records[i].learnable_tokens for i in indices)
    if tokens_out is not None:
        tokens_out.append(sum(len(records[i]) for i in indices))
    return micro_batches(rows, micro or cfg.train.micro_batch_size), n_global


def run_micro_batches(wrapped, batches, group: ProcessGroup, pad_id: int, packed: bool, n_global: int,
                      static_shape: tuple[int, int] | None = None):
    """Forward/backward every micro-batch; the gradient sync happens once, on the last one.

    Returns the summed loss as a tensor on the device: nothing here waits for the device (the caller reads
    it at log steps only). ``static_shape`` = (rows, width) pads every micro-batch to one shape (CUDA graphs).
    """
    from mathlora.train.data import IGNORE, Row

    if not batches:  # this process got no record: a no-op row keeps the collective calls in step
        batches = [[Row([pad_id], [0], [IGNORE])]]
    cuda = group.device.startswith("cuda")
    loss_sum = torch.zeros((), dtype=torch.float64, device=group.device if cuda else "cpu")
    rows, width = static_shape if static_shape is not None else (None, None)
    for j, mb in enumerate(batches):
        last = j == len(batches) - 1
        sync = contextlib.nullcontext() if (last or not group.distributed) else no_gradient_sync(wrapped)
        host = collate(mb, pad_id, packed=packed, width=width, n_rows=rows)
        inputs = {k: (v.pin_memory().to(group.device, non_blocking=True) if cuda else v) for k, v in host.items()}
        if static_shape is not None and cuda:
            torch.compiler.cudagraph_mark_step_begin()
        with sync:
            part, _ = wrapped(**inputs)
            (part * (group.world / n_global)).backward()
        loss_sum += part.detach().double()
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


def train(cfg: TrainConfig, runtime: Runtime, tokens_dir, output_dir, *, lora: LoraConfig, seed: int,
          resume: bool = True, progress: bool = True) -> dict:
    """Train LoRA on ``tokens_dir/tokens.parquet``; see the module docstring for the output layout."""
    if runtime.precision == "fp16":
        raise MathloraError("runtime.precision=fp16 is not supported for training (use bf16, fp32 or auto)")
    group = start_processes(runtime)
    try:
        job = TrainJob.from_tokens(cfg, lora, seed, runtime.replace(device=group.device), tokens_dir)
        return _train(job, Path(tokens_dir), Path(output_dir), group, resume=resume, progress=progress)
    finally:
        group.close()


def _train(cfg: TrainJob, tokens_dir: Path, out: Path, group: ProcessGroup, *, resume: bool, progress: bool) -> dict:
    from tqdm import tqdm

    from mathlora.models import count_parameters, load_tokenizer, param_ratio_line

    tc = cfg.train
    if out.exists() and not out.is_dir():
        raise MathloraError(f"output {out} exists and is a file; expected a folder")
    records, skipped = load_token_records(tokens_dir)
    fingerprint = run_fingerprint(cfg, tokens_file(tokens_dir))
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

    dtype = cfg.runtime.dtype
    fsdp = uses_fsdp(group, tc.distributed)
    # FSDP: weights built on the host in the compute dtype (no fp32 copy), sharded onto the devices
    from mathlora.train import speed

    use_liger = speed.want_liger(tc.liger, group.device) and not fsdp
    kernels: dict = {}
    peft_model = build_model(cfg, cfg.runtime.replace(device="cpu") if fsdp else cfg.runtime,
                             before_lora=(lambda m: kernels.update(fused_ce=speed.apply_liger(m))) if use_liger else None,
                             recompute=False)
    trainable, total = count_parameters(peft_model)
    ratio_line = param_ratio_line(trainable, total)
    pad_id = load_tokenizer(cfg.model).pad_token_id or 0

    n_epoch = steps_per_epoch(len(records), tc.global_batch_size)
    n_total = total_steps(len(records), tc.global_batch_size, tc.epochs, tc.max_steps)
    n_warmup = warmup_steps(n_total, tc.warmup_ratio)
    save_at = set(resolve_save_steps(tc.save_steps, n_total))
    pack_length = tc.pack_length or cfg.seq_length
    # recompute and micro-batch: as configured, or the memory plan's (auto)
    local_records = -(-tc.global_batch_size // group.world)
    longest = max(len(r) for r in records)
    row_tokens = max(pack_length, longest) if tc.packing else longest
    biggest = sorted((len(r) for r in records), reverse=True)[:local_records]
    n_layers = len(speed.decoder_layers(peft_model))
    plan = speed.resolve_plan(
        tc.gradient_checkpointing, tc.micro_batch_size, shape=speed.model_shape(peft_model, dtype=dtype),
        n_layers=n_layers, device=group.device, memory_fraction=tc.memory_fraction, max_rows=local_records, row_tokens=row_tokens,
        step_tokens=sum(biggest), head_fraction=max(r.learnable_tokens / len(r) for r in records), liger=use_liger)
    speed.apply_recompute(peft_model.get_base_model(), layers=plan.recompute_layers, selective=plan.selective)
    if group.is_main and (tc.gradient_checkpointing in ("auto", "selective") or tc.micro_batch_size == "auto"):
        speed.log(f"memory plan: {plan.describe(n_layers)}" if plan.budget_bytes else
                  f"recompute {plan.mode}, micro-batch {plan.micro_batch_size} rows (no memory plan off CUDA)")
    static_shape = None
    if tc.compile != "none" and not fsdp:
        speed.compile_layers(peft_model, tc.compile)
        if tc.compile == "reduce-overhead":
            static_shape = (plan.micro_batch_size, row_tokens)

    step, tokens_done, seconds_done, last_loss = 0, 0, 0.0, float("nan")
    inputs_done: int | None = 0  # every input token (prompt included): FLOP accounting
    resumed_state = None
    if start is not None:
        opt_state, state = read_training_state(start)
        if state.get("fingerprint") != fingerprint:
            raise MathloraError(f"checkpoint {start} was trained with other settings or data; choose another "
                                f"output folder or pass --no-resume to start over")
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(peft_model, read_adapter_weights(start))
        step, tokens_done, seconds_done = state["step"], state["learnable_tokens"], state["seconds"]
        inputs_done = state.get("tokens")
        last_loss = state.get("loss", last_loss)
        resumed_state = opt_state
        if group.is_main:
            print(f"resuming from {start} (step {step}/{n_total})", file=sys.stderr)

    wrapped = wrap_for_processes(LearnableTokenLoss(peft_model, kernels.get("fused_ce")), group, tc.distributed,
                                 dtype)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = speed.make_optimizer(params, lr=tc.lr, betas=tc.betas, eps=tc.eps, weight_decay=tc.weight_decay,
                                     device=group.device)
    if resumed_state is not None:
        load_optimizer_state(optimizer, wrapped, resumed_state)

    metrics = MetricsLog(out, step, group.is_main)
    bar = tqdm(total=n_total, initial=step, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True,
               disable=not (progress and group.is_main))
    checkpoints = [str(p) for s, p in list_checkpoints(ckpt_root) if s <= step]
    wrapped.train()
    # The device is waited for only at log, checkpoint and last steps; times and tokens/s cover the interval
    # since the previous such step.
    interval = {"t0": time.perf_counter(), "steps": 0, "learnable": 0, "tokens": 0}
    loss_t = grad_t = None
    from mathlora.train.flops import count_matmul_params, model_flops, peak_tflops, utilization

    matmul = count_matmul_params(peft_model)
    peak = peak_tflops(torch.cuda.get_device_name(group.device)) if group.device.startswith("cuda") else None
    first_bad = torch.zeros((), dtype=torch.long)  # first step with a non-finite loss or gradient norm (0: none)
    try:
        while step < n_total:
            torch.manual_seed(step_seed(cfg.seed, step, group.rank))
            step_tokens: list[int] = []
            batches, n_global = global_loss_terms(records, group, cfg, step, n_epoch, pack_length,
                                                  plan.micro_batch_size, step_tokens)
            lr = lr_at(step, total=n_total, warmup=n_warmup, lr=tc.lr, lr_end=tc.lr_end)
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss_sum = run_micro_batches(wrapped, batches, group, pad_id, tc.packing, n_global, static_shape)
            loss_t = group.all_reduce_sum(loss_sum.to(_reduce_device(group))) / n_global
            grad_t = clip_gradients(wrapped, params, tc.max_grad_norm, as_tensor=True)
            # Non-finite loss/gradient norm: noted on the device (no host sync), checked at the next sync point,
            # before anything is logged or saved.
            finite = torch.isfinite(loss_t) & torch.isfinite(grad_t).to(loss_t.device)
            first_bad = first_bad.to(loss_t.device)  # a no-op after the first step
            first_bad = torch.where((first_bad == 0) & ~finite, step + 1, first_bad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            interval["steps"] += 1
            interval["learnable"] += n_global
            interval["tokens"] += step_tokens[0]
            bar.update(1)
            if not (step % tc.log_every == 0 or step == n_total or step in save_at):
                continue
            loss, grad_norm = float(loss_t), float(grad_t)  # waits for the device
            if int(first_bad):
                raise MathloraError(f"training stopped: the loss or gradient norm was not finite at step "
                                    f"{int(first_bad)} (step {step}: loss {loss}, gradient norm {grad_norm}); "
                                    f"lower train.lr or check the data. Checkpoints up to step "
                                    f"{int(first_bad) - 1} are kept")
            dt = time.perf_counter() - interval["t0"]
            tokens_done += interval["learnable"]
            inputs_done = inputs_done + interval["tokens"] if inputs_done is not None else None
            seconds_done += dt
            last_loss = loss
            row = {"step": step, "epoch": round(step / n_epoch, 4), "loss": loss, "lr": lr,
                   "grad_norm": grad_norm, "learnable_tokens": n_global,
                   "tokens_per_s": interval["learnable"] / dt, "seconds": round(seconds_done, 3),
                   "interval_steps": interval["steps"], "interval_seconds": round(dt, 6),
                   "interval_learnable_tokens": interval["learnable"], "interval_tokens": interval["tokens"]}
            mfu = utilization(model_flops(matmul, interval["tokens"], interval["learnable"]) / group.world, dt, peak)
            row["mfu"] = round(mfu, 4) if mfu is not None else None  # strict, per device; None off known GPUs
            metrics.write(row)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{interval['learnable'] / dt:.0f}")
            if step in save_at:
                state = {"step": step, "epoch": step / n_epoch, "total_steps": n_total, "lr": lr, "loss": loss,
                         "data_position": {"epoch": (step // n_epoch), "batch_in_epoch": step % n_epoch,
                                           "order_seed": "seed + epoch"},
                         "rng": {"scheme": "torch.manual_seed(step_seed(seed, step, rank)) at each step",
                                 "seed": cfg.seed},
                         "learnable_tokens": tokens_done, "seconds": seconds_done, "fingerprint": fingerprint,
                         "world_size": group.world, "tokens": inputs_done}
                path = save_checkpoint(cfg, peft_model, wrapped, optimizer, state, ckpt_root, group)
                checkpoints.append(str(path))
            interval = {"t0": time.perf_counter(), "steps": 0, "learnable": 0, "tokens": 0}
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
        "speed": {"recompute": plan.mode, "recompute_layers": plan.recompute_layers,
                  "micro_batch_size": plan.micro_batch_size, "liger": use_liger, "compile": tc.compile,
                  "fused_adamw": bool(optimizer.defaults.get("fused")),
                  "distributed": ("fsdp2" if is_fsdp(wrapped) else "ddp") if group.distributed else None},
    }
    summary.update(_flops_summary(peft_model, group, inputs_done, tokens_done, seconds_done,
                                  plan.recompute_layers / max(1, n_layers)))
    if group.is_main:
        write_json_atomic(out / SUMMARY, summary)
    group.barrier()
    return summary


def _reduce_device(group: ProcessGroup) -> str:
    return group.device if group.device.startswith("cuda") else "cpu"


def clip_gradients(wrapped, params, max_norm: float | None, as_tensor: bool = False):
    """Clip to ``max_norm`` (when set) and return the total gradient norm before clipping (a float, or the
    device tensor with ``as_tensor``, which does not wait for the device)."""
    limit = max_norm if max_norm is not None else math.inf
    norm = _full(torch.nn.utils.clip_grad_norm_(params, limit))  # DTensor norms under FSDP2
    return norm if as_tensor else float(norm)


def _flops_summary(peft_model, group: ProcessGroup, tokens: int | None, learnable: int, seconds: float,
                   recomputed_fraction: float) -> dict:
    """Strict MFU/HFU figures for the summary (``mathlora.train.flops``); MFU only on a known device."""
    from mathlora.train.flops import count_matmul_params, step_report

    if tokens is None or seconds <= 0:
        return {"tokens": tokens}
    name = torch.cuda.get_device_name(group.device) if group.device.startswith("cuda") else None
    report = step_report(count_matmul_params(peft_model), tokens=tokens, learnable_tokens=learnable,
                         seconds=seconds, device_name=name, recomputed_fraction=recomputed_fraction)
    if group.world > 1 and report["mfu"] is not None:  # figures are for all devices together
        report["mfu"] = round(report["mfu"] / group.world, 4)
        report["hfu"] = round(report["hfu"] / group.world, 4)
    return {"tokens": tokens, "flops": report}


def save_checkpoint(cfg: TrainJob, peft_model, wrapped, optimizer, state: dict[str, Any], root: Path,
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

                merge_adapter(cfg.runtime, cfg.model, tmp, tmp / "merged")
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
