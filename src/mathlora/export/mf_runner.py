"""Run the MindFormers finetune that ``mathlora export mindformers`` wrote, with pip-installed MindFormers.

    python run_finetune.py                       # the finetune_mathlora.yaml beside this file
    python run_finetune.py --config X.yaml --load_checkpoint BASE.ckpt --output_dir out

What MindFormers' ``run_mindformer.py`` does for a finetune config (that script is in MindFormers' source tree,
not in its wheel): ``MindFormerConfig`` -> ``build_context`` -> ``Trainer(config).finetune`` from
``load_checkpoint`` (the base model; the LoRA tensors start fresh). Under msrun on several NPUs, the same. The
MindFormers API it uses is in 1.3.2 and 1.9.0 alike (read from both wheels; run with 1.9.0).

On a CPU target (``context.device_target: CPU``, written by ``--device-target cpu``) MindSpore's loss-scale
overflow check of ``MFTrainOneStepCell`` uses Ascend-only operators (``NPUGetFloatStatusV2``); it is replaced by a
check that every gradient is finite (the loss scale is 1 and the compute float32 there, so nothing else changes).

This file is copied next to the YAML by the export and runs where MindFormers is installed: it imports nothing
from mathlora (MindFormers 1.x pins pyarrow 19, which mathlora's datasets cannot use, so the two live in
separate environments).
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_CONFIG = "finetune_mathlora.yaml"


def patch_cpu_overflow_check() -> None:
    """``MFTrainOneStepCell`` without the Ascend/GPU overflow operators: overflow = some gradient not finite."""
    from mindspore import Tensor, ops
    from mindspore import dtype as mstype
    from mindformers.wrapper.wrapper import MFTrainOneStepCell

    def start_overflow_check(self, pre_cond, compute_input):
        return Tensor([0] * 8, mstype.int32), compute_input

    def get_overflow_status(self, status, compute_output):
        finite = ops.stack([ops.isfinite(g).all() for g in compute_output]).all()
        return ops.logical_not(finite)

    MFTrainOneStepCell.start_overflow_check = start_overflow_check
    MFTrainOneStepCell.get_overflow_status = get_overflow_status


def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="MindFormers LoRA finetune from a mathlora export")
    parser.add_argument("--config", default=os.path.join(here, DEFAULT_CONFIG), help="the exported YAML")
    parser.add_argument("--load_checkpoint", default=None, help="base model .ckpt (default: the YAML's)")
    parser.add_argument("--output_dir", default=None, help="checkpoints and logs (default: the YAML's)")
    args = parser.parse_args(argv)

    from mindformers import MindFormerConfig, Trainer, build_context

    config = MindFormerConfig(os.path.abspath(args.config))
    if args.load_checkpoint is not None:
        config.load_checkpoint = args.load_checkpoint
    if args.output_dir is not None:
        config.output_dir = args.output_dir
    if str(config.context.device_target).upper() == "CPU":
        patch_cpu_overflow_check()
    build_context(config)
    trainer = Trainer(config)
    # finetune() without a checkpoint argument drops config.load_checkpoint; pass it (the base, not a resume:
    # resume_training stays the YAML's false)
    trainer.finetune(resume_from_checkpoint=config.load_checkpoint or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
