"""``summary.json``: what a finished training says about itself (written last: a rerun returns it)."""

from __future__ import annotations

from pathlib import Path

import torch

from mathlora.run_dir.atomic import write_json_atomic
from mathlora.train import speed
from mathlora.train.checkpoint import save_final_adapter
from mathlora.train.distributed import is_fsdp
from mathlora.train.outputs import SUMMARY
from mathlora.train.state import TrainState
from mathlora.modeling.models import param_ratio_line
from mathlora.train.flops import count_matmul_params, step_report
from mathlora.train.lora import attention_for


def finish(state: TrainState) -> dict:
    """Save the final adapter (with the tokenizer and the model card), then ``summary.json`` (last: a finished
    run returns it when rerun)."""

    group, plan, tc = state.group, state.plan, state.job.train
    final_adapter = state.out / "adapter"
    trainable, total = state.parameters
    save_final_adapter(state.peft_model, final_adapter, group, state.step, state.job,
                       ratio_line=param_ratio_line(trainable, total))
    n_layers = len(speed.decoder_layers(state.peft_model))
    summary = {
        "steps": state.step, "epochs": round(state.step / state.n_epoch, 4), "seconds": round(state.seconds_done, 3),
        "learnable_tokens": state.learnable_done,
        "tokens_per_s": state.learnable_done / state.seconds_done if state.seconds_done else 0.0,
        "final_loss": state.last_loss, "trainable": trainable, "total": total,
        "ratio_line": param_ratio_line(trainable, total),
        "checkpoints": sorted(set(state.checkpoints), key=lambda p: int(Path(p).name.split("-")[1])),
        "adapter": str(final_adapter), "records": len(state.records), "skipped_records": state.skipped,
        "world_size": group.world, "device": group.device, "dtype": str(state.job.runtime.dtype).removeprefix("torch."),
        "fingerprint": state.fingerprint,
        "speed": {"recompute": plan.mode, "recompute_layers": plan.recompute_layers,
                  "micro_batch_size": plan.micro_batch_size, "liger": state.use_liger, "compile": tc.compile,
                  "attention": attention_for(state.job) or "default",
                  "fused_adamw": bool(state.optimizer.defaults.get("fused")),
                  "distributed": ("fsdp2" if is_fsdp(state.wrapped) else "ddp") if group.distributed else None},
        **flops_summary(state, plan.recompute_layers / max(1, n_layers)),
    }
    if group.is_main:
        write_json_atomic(state.out / SUMMARY, summary)
    group.barrier()
    return summary


def flops_summary(state: TrainState, recomputed_fraction: float) -> dict:
    """Strict MFU/HFU figures for the summary (``mathlora.train.flops``); MFU only on a known device."""

    group, tokens, seconds = state.group, state.tokens_done, state.seconds_done
    if tokens is None or seconds <= 0:
        return {"tokens": tokens}
    name = torch.cuda.get_device_name(group.device) if group.device.startswith("cuda") else None
    report = step_report(count_matmul_params(state.peft_model), tokens=tokens, learnable_tokens=state.learnable_done,
                         seconds=seconds, device_name=name, recomputed_fraction=recomputed_fraction)
    if group.world > 1 and report["mfu"] is not None:  # figures are for all devices together
        report["mfu"] = round(report["mfu"] / group.world, 4)
        report["hfu"] = round(report["hfu"] / group.world, 4)
    return {"tokens": tokens, "flops": report}
