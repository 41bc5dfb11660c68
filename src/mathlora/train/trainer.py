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
* "the same run" is decided by ``mathlora.train.fingerprint`` (used by ``mathlora run`` too): settings that cannot
  change the trained numbers (the fields marked ``NOT_RESULT`` in ``TrainConfig``, the device once the precision is fixed, progress
  output) never make a finished run or a checkpoint stale;
* the host waits for the device only at log, checkpoint and last steps (loss and gradient norm stay on the
  device in between); speed levers (``mathlora.train.speed``): the memory plan for recompute and
  micro-batch (``auto``), Liger kernels, ``torch.compile`` of decoder layers, fused AdamW on CUDA, on a
  CPU padding-free packed rows (``mathlora.train.attention``, chosen by ``lora.attention_for``) (each decided from
  the runtime's device); the summary carries strict FLOP figures (``mathlora.train.flops``:
  MFU on a known GPU).
* a checkpoint carries a checksum written last; a resume verifies it (and that the weights load and are
  finite) and falls back to the newest checkpoint that passes, saying so. A non-finite loss or gradient norm
  is noted on the device at its step (the optimizer step still runs: checking would wait for the device) and
  stops training with an error at the next host sync, before that interval is logged or saved; the
  checkpoints before it are kept, and non-finite weights are never saved.

The recipe reads top to bottom: ``setup`` builds the ``TrainState`` (model, optimizer, schedule, a resumed
position), ``train_step`` does one optimizer step, ``train_loop`` runs the steps and, at each host sync,
logs a metrics row and saves the due checkpoint; ``finish`` writes the adapter and the summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime
from mathlora.train import speed
from mathlora.modeling.adapters import adapter_problem
from mathlora.train.checkpoint import (list_checkpoints, newest_valid_checkpoint, resolve_save_steps,
                                       restore_checkpoint, save_checkpoint)
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.train.data import TokenRecord, load_token_records, step_batch
from mathlora.train.distributed import (ProcessGroup, load_optimizer_state, reduce_device, start_processes, uses_fsdp,
                                        wrap_for_processes)
from mathlora.train.fingerprint import run_fingerprint
from mathlora.train.job import TrainJob, tokens_file
from mathlora.train.attention import NAME as ROWS_ATTENTION
from mathlora.train.lora import attention_for, build_model
from mathlora.train.loss import LearnableTokenLoss, clip_gradients, run_micro_batches
from mathlora.train.metrics import MetricsLog, metrics_row, sync_interval
from mathlora.train.outputs import (SUMMARY, claim_training_folder, clear_outputs, finished_summary,
                                   require_start_elsewhere)
from mathlora.train.schedule import lr_at, steps_per_epoch, total_steps, warmup_steps
from mathlora.train.state import Interval, StepResult, TrainState
from mathlora.train.summary import finish
from mathlora.modeling.models import count_parameters, load_tokenizer
from mathlora.train.flops import count_matmul_params, peak_tflops


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 9_973 + rank) % (2**63)


def train(cfg: TrainConfig, runtime: Runtime, tokens_dir, output_dir, *, lora: LoraConfig, seed: int,
          resume: bool = True, progress: bool = True) -> dict:
    """Train LoRA on ``tokens_dir/tokens.parquet``; see the module docstring for the output layout."""
    if runtime.precision == "fp16":
        raise MathloraError("runtime.precision=fp16 is not supported for training (use bf16, fp32 or auto)")
    group = start_processes(runtime)
    try:
        job = TrainJob.from_tokens(cfg, lora, seed, runtime.replace(device=group.device), tokens_dir)
        out = Path(output_dir)
        if out.exists() and not out.is_dir():
            raise MathloraError(f"output {out} exists and is a file; expected a folder")
        require_start_elsewhere(lora.init_from, out)
        if group.is_main:
            claim_training_folder(out)  # never clears a folder of files mathlora did not write
        group.barrier()
        data = load_token_records(tokens_dir)
        fingerprint = run_fingerprint(job, tokens_file(tokens_dir))
        done = finished_run(out, fingerprint, group, resume)
        if done is not None:
            return done
        return train_loop(setup(job, group, out, data, fingerprint, resume=resume), progress=progress)
    finally:
        group.close()


def finished_run(out: Path, fingerprint: str, group: ProcessGroup, resume: bool) -> dict | None:
    """The summary of this very run when it finished before and its adapter is intact, else None."""
    done = finished_summary(out, fingerprint, resume)
    if done is None:
        return None
    problem = adapter_problem(out / "adapter")
    if problem is None:
        return done
    if group.is_main:
        print(f"warning: the finished adapter {out / 'adapter'} {problem}; rebuilding it from the checkpoints",
              file=sys.stderr)
        (out / SUMMARY).unlink(missing_ok=True)
    group.barrier()
    return None


def setup(job: TrainJob, group: ProcessGroup, out: Path, data: tuple[list[TokenRecord], int], fingerprint: str,
          *, resume: bool) -> TrainState:
    """Model, memory plan, optimizer and schedule; the newest valid checkpoint's position when resuming."""

    tc, (records, skipped) = job.train, data
    if tc.global_batch_size % group.world:
        raise MathloraError(f"train.global_batch_size={tc.global_batch_size} is not a multiple of the "
                            f"{group.world} processes")
    if skipped and group.is_main:
        print(f"warning: skipped {skipped} record(s) without a learnable token", file=sys.stderr)
    ckpt_root = out / "checkpoints"
    start = newest_valid_checkpoint(ckpt_root, lambda m: group.is_main and print(f"warning: {m}", file=sys.stderr)
                                    ) if resume else None
    if start is None and group.is_main:
        if resume and ckpt_root.is_dir() and any(p.is_dir() for p in ckpt_root.iterdir()):  # a fresh one: silent
            print(f"warning: no complete checkpoint in {ckpt_root}; starting from step 0", file=sys.stderr)
        clear_outputs(out)
    group.barrier()
    out.mkdir(parents=True, exist_ok=True)

    # FSDP: weights built on the host in the compute dtype (no fp32 copy), sharded onto the devices
    fsdp = uses_fsdp(group, tc.distributed)
    use_liger = speed.want_liger(tc.liger, group.device) and not fsdp
    kernels: dict = {}
    peft_model = build_model(job, job.runtime.replace(device="cpu") if fsdp else job.runtime,
                             before_lora=(lambda m: kernels.update(fused_ce=speed.apply_liger(m))) if use_liger else None,
                             recompute=False)
    parameters = count_parameters(peft_model)
    n_total = total_steps(len(records), tc.global_batch_size, tc.epochs, tc.max_steps)
    by_epochs = total_steps(len(records), tc.global_batch_size, tc.epochs, None)
    if tc.max_steps is not None and tc.max_steps != by_epochs and group.is_main:
        print(f"note: train.max_steps={tc.max_steps} sets the length; train.epochs={tc.epochs:g} would be "
              f"{by_epochs} steps", file=sys.stderr)
    pack_length = tc.pack_length or job.seq_length
    # recompute and micro-batch: as configured, or the memory plan's (auto)
    plan, row_tokens = speed.plan_for_records(tc, peft_model, records, world=group.world, device=group.device,
                                              dtype=job.runtime.dtype, pack_length=pack_length, liger=use_liger)
    if group.is_main and (tc.gradient_checkpointing in ("auto", "selective") or tc.micro_batch_size == "auto"):
        n_layers = len(speed.decoder_layers(peft_model))
        speed.log(f"memory plan: {plan.describe(n_layers)}" if plan.budget_bytes else
                  f"recompute {plan.mode}, micro-batch {plan.micro_batch_size} rows (no memory plan off CUDA)")
    static_shape = None
    if tc.compile != "none" and not fsdp:
        speed.compile_layers(peft_model, tc.compile)
        if tc.compile == "reduce-overhead":
            static_shape = (plan.micro_batch_size, row_tokens)
    resumed, opt_state = restore_checkpoint(start, fingerprint, peft_model) if start is not None else ({}, None)
    wrapped = wrap_for_processes(LearnableTokenLoss(peft_model, kernels.get("fused_ce")), group, tc.distributed,
                                 job.runtime.dtype)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = speed.make_optimizer(params, lr=tc.lr, betas=tc.betas, eps=tc.eps, weight_decay=tc.weight_decay,
                                     device=group.device)
    if opt_state is not None:
        load_optimizer_state(optimizer, wrapped, opt_state)
    position = ({"step": resumed["step"], "learnable_done": resumed["learnable_tokens"],
                 "seconds_done": resumed["seconds"], "tokens_done": resumed.get("tokens"),
                 **({"last_loss": resumed["loss"]} if "loss" in resumed else {})} if resumed else {})
    state = TrainState(job=job, group=group, out=out, records=records, skipped=skipped, fingerprint=fingerprint,
                       peft_model=peft_model, wrapped=wrapped, optimizer=optimizer, params=params,
                       parameters=parameters, plan=plan, use_liger=use_liger,
                       pad_id=load_tokenizer(job.model).pad_token_id or 0,
                       n_epoch=steps_per_epoch(len(records), tc.global_batch_size), n_total=n_total,
                       n_warmup=warmup_steps(n_total, tc.warmup_ratio),
                       save_at=set(resolve_save_steps(tc.save_steps, n_total)), pack_length=pack_length,
                       static_shape=static_shape, **position)
    if resumed:
        if group.is_main:
            print(f"resuming from {start} (step {state.step}/{n_total})", file=sys.stderr)
    state.checkpoints = [str(p) for s, p in list_checkpoints(ckpt_root) if s <= state.step]
    return state


def train_step(state: TrainState, step: int) -> StepResult:
    """One optimizer step over the global batch of ``step``; nothing here waits for the device."""
    job, group, tc = state.job, state.group, state.job.train
    torch.manual_seed(step_seed(job.seed, step, group.rank))
    batch = step_batch(state.records, global_batch_size=tc.global_batch_size, seed=job.seed, step=step,
                       steps_in_epoch=state.n_epoch, rank=group.rank, world=group.world, packing=tc.packing,
                       pack_length=state.pack_length, micro_batch_size=state.plan.micro_batch_size)
    lr = lr_at(step, total=state.n_total, warmup=state.n_warmup, lr=tc.lr, lr_end=tc.lr_end)
    for g in state.optimizer.param_groups:
        g["lr"] = lr
    flat = job.runtime.dtype if attention_for(job) == ROWS_ATTENTION else None
    loss_sum = run_micro_batches(state.wrapped, batch, group, state.pad_id, tc.packing, state.static_shape, flat)
    loss = group.all_reduce_sum(loss_sum.to(reduce_device(group))) / batch.learnable_tokens
    grad_norm = clip_gradients(state.params, tc.max_grad_norm, as_tensor=True)
    # a non-finite loss/gradient norm is noted on the device (no host sync) and checked at the next sync point
    finite = torch.isfinite(loss) & torch.isfinite(grad_norm).to(loss.device)
    first_bad = state.first_bad.to(loss.device)  # a no-op after the first step
    state.first_bad = torch.where((first_bad == 0) & ~finite, step + 1, first_bad)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    return StepResult(loss, grad_norm, batch, lr)


def train_loop(state: TrainState, *, progress: bool = True) -> dict:
    """The steps; the device is waited for only at log, checkpoint and last steps."""
    from tqdm import tqdm


    group, tc = state.group, state.job.train
    metrics = MetricsLog(state.out, state.step, group.is_main, job=state.job)  # train.report_to's trackers
    bar = tqdm(total=state.n_total, initial=state.step, desc="train", unit="step", file=sys.stderr,
               dynamic_ncols=True, disable=not (progress and group.is_main))
    matmul = count_matmul_params(state.peft_model)
    peak = peak_tflops(torch.cuda.get_device_name(group.device)) if group.device.startswith("cuda") else None
    state.wrapped.train()
    interval = Interval()
    try:
        while state.step < state.n_total:
            result = train_step(state, state.step)
            state.step += 1
            interval.steps += 1
            interval.learnable += result.batch.learnable_tokens
            interval.tokens += result.batch.tokens
            bar.update(1)
            if not (state.step % tc.log_every == 0 or state.step == state.n_total or state.step in state.save_at):
                continue
            loss, grad_norm, seconds = sync_interval(state, result, interval)  # waits for the device
            row = metrics_row(state, result, interval, matmul, peak, loss=loss, grad_norm=grad_norm, seconds=seconds)
            metrics.write(row)
            speed.trim_host_heap(group.device)  # at a host sync: the freed activations' pages go back
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", tok_s=f"{row['tokens_per_s']:.0f}")
            if state.step in state.save_at:
                state.checkpoints.append(str(save_checkpoint(state.job, state.peft_model, state.wrapped,
                                                             state.optimizer, state.checkpoint_state(row),
                                                             state.out / "checkpoints", group)))
            interval = Interval()
    finally:
        bar.close()
        metrics.close()
    return finish(state)


