"""CLI: ``mathlora export mindformers|mindspore-ckpt``, ``mathlora import mindspore-ckpt``, ``mathlora publish``.

Heavy libraries (mindspore, transformers, s3fs) are imported inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.app.cliargs import (add_config_args, add_output, command_group, config_from_args, deprecated, flag,
                              guard_command_outputs, option, run_config_from_args)
from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.export.model_card import write_cards
from mathlora.run_dir.guards import RunLock
from mathlora.export.mindformers import export_mindformers
from mathlora.export.ms_ckpt import export_ckpt
from mathlora.export.ms_ckpt import import_ckpt
from mathlora.export import publish


def register(subparsers) -> None:
    ex, sub = command_group(subparsers, "export",
                            help="Ascend: MindFormers finetune YAML + MindRecord; HF -> MindSpore ckpt",
                            description="Export for Ascend: a run's recipe and tokens for MindFormers "
                                        "(mindformers), a HF model or adapter as a MindSpore checkpoint "
                                        "(mindspore-ckpt).")

    mf = sub.add_parser("mindformers", help="a run's recipe as a MindFormers LoRA finetune YAML, tokens as MindRecord",
                        description="Write finetune_mathlora.yaml (the run's recipe in MindFormers' keys), "
                                    "tokens.mindrecord (the run's tokens, padded to seq_length + 1) and "
                                    "run_finetune.py (the finetune with pip-installed MindFormers) into --output.")
    mf.add_argument("--run", required=True, help="run folder (config.yaml, tokens/)")
    add_output(mf, "output folder")
    mf.add_argument("--devices", type=int, default=None,
                    help="NPUs (data_parallel); the global batch is split over them (default 8, one Atlas 800T A2; "
                         "1 with --device-target cpu)")
    mf.add_argument("--mindformers", default=None, metavar="RELEASE",
                    help="the MindFormers release the YAML is for: 1.9 (default; MindSpore 2.9, the newest pair that "
                         "installs from PyPI), 1.6 to 1.8 (the same YAML), or 1.3 (the contest's: "
                         "FP32StateAdamWeightDecay, MindSpore 2.4)")
    mf.add_argument("--device-target", default="ascend", choices=["ascend", "cpu"],
                    help="ascend (default) or cpu: cpu writes float32, RoPE by slicing, no fused RMSNorm, flash "
                         "attention or dataset sink (a CPU trial run of the same recipe)")
    mf.add_argument("--load-checkpoint", default="",
                    help="base model .ckpt for load_checkpoint (from `mathlora export mindspore-ckpt`)")
    mf.add_argument("--dataset-dir", default=None,
                    help="MindRecord path as the Ascend machine sees it (default: the written file's absolute path)")
    flag(mf, "--mindrecord", default=True, help="also write tokens.mindrecord (needs MindSpore; --no-mindrecord: "
                                                "the YAML only)")
    mf.set_defaults(func=cmd_export_mindformers)

    ck = sub.add_parser("mindspore-ckpt", help="a HF Llama model (and/or LoRA adapter) as a MindSpore .ckpt",
                        description="Convert a HF Llama-family model to a MindSpore checkpoint with MindFormers' "
                                    "parameter names (bit-exact; tied embeddings stored once); --adapter adds "
                                    "its LoRA tensors under MindFormers' pet names.")
    ck.add_argument("--model", "-m", default=None,
                    help="HF folder, .gguf, smollm2-135m-instruct, tiny-random-llama, or a run folder (its merged/)")
    ck.add_argument("--adapter", default=None, help="peft LoRA adapter folder to include")
    add_output(ck, "output .ckpt file")
    ck.set_defaults(func=cmd_export_ckpt)

    im, isub = command_group(subparsers, "import", help="Ascend: MindSpore ckpt -> HF folder (+ peft adapter)",
                             description="Import from Ascend: a MindFormers llama checkpoint as a HF folder and "
                                         "a peft adapter (mindspore-ckpt).")
    ick = isub.add_parser("mindspore-ckpt", help="a MindFormers llama .ckpt as a HF folder (+ peft adapter)",
                          description="Convert a MindFormers llama checkpoint to a HF folder (config and tokenizer "
                                      "from --base). LoRA tensors become a peft adapter (OUTPUT/adapter, or "
                                      "--adapter-output); a LoRA-only checkpoint becomes the adapter at OUTPUT.")
    ick.add_argument("--ckpt", required=True, help="MindSpore .ckpt")
    ick.add_argument("--model", "-m", dest="base", default=None,
                     help="base model spec: gives config.json and the tokenizer (required)")
    deprecated(ick, "--base", new="--model", dest="base")
    add_output(ick, "output folder")
    ick.add_argument("--adapter-output", default=None, help="where the LoRA adapter goes (default OUTPUT/adapter)")
    ick.add_argument("--lora-alpha", type=float, default=None,
                     help="LoRA alpha (pet_config.lora_alpha) when the checkpoint does not record it")
    ick.set_defaults(func=cmd_import_ckpt)

    cards = subparsers.add_parser("cards", help="(re)write the model cards of a run's adapter and merged model",
                                  description="Write README.md (the model card: recipe, scores, usage) into a run "
                                              "folder's train/adapter/ and merged/, as the cards stage of "
                                              "`mathlora run` does.")
    cards.add_argument("--run", required=True, metavar="DIR", help="run folder (config.yaml, train/, merged/)")
    cards.set_defaults(func=cmd_cards)

    pb = subparsers.add_parser("publish", help="upload a run's adapters, merged models and report (S3, OBS, NFS)",
                               description="Publish a run folder to object storage or a file system through fsspec: "
                                           "resumable (skips files already there with the same sha256), verified "
                                           "by reading back, with publish_manifest.json and model cards.")
    option(pb, "--run", field="run_dir", metavar="DIR", help="run folder (its config.yaml is the default --config)")
    option(pb, "--to", field="publish.to", help="s3://bucket/prefix, hf://user/repo, file:///path or a path")
    option(pb, "--endpoint-url", field="publish.endpoint_url",
           help="S3-compatible endpoint, e.g. https://obs.cn-north-4.myhuaweicloud.com or http://minio:9000")
    option(pb, "--verify-all", field="publish.verify_all", action="store_true",
           help="also re-read the content of files already on the store")
    option(pb, "--replace", field="publish.replace", action="store_true",
           help="replace another run's publication at the destination (removes its files)")
    option(pb, "--private", field="publish.private", action="store_true",
           help="hf:// only: create the Hub repository private")
    flag(pb, "--dry-run", help="list what would go; touch nothing")
    add_config_args(pb)
    pb.set_defaults(func=cmd_publish)


def cmd_cards(args: argparse.Namespace) -> int:
    lay = RunLayout(args.run)
    if not lay.config.is_file():
        raise MathloraError(f"{args.run} is not a mathlora run folder (no config.yaml)")
    with RunLock(lay.root):
        counts = write_cards(lay.root)
    print(f"model cards: {counts['written']} written, {counts['unchanged']} unchanged")
    return 0


def cmd_export_mindformers(args: argparse.Namespace) -> int:
    guard_command_outputs(args, args.output, inputs=[("--run", args.run)])
    summary = export_mindformers(args.run, args.output, devices=args.devices, load_checkpoint=args.load_checkpoint,
                                 dataset_dir=args.dataset_dir, mindrecord=args.mindrecord,
                                 mindformers=args.mindformers, device_target=args.device_target)
    for note in summary["notes"]:
        print(f"note: {note}")
    if "mindrecord" in summary:
        print(f"wrote {summary['mindrecord']} ({summary['mindrecord_rows']} rows)")
    print(f"wrote {summary['yaml']}")
    print(f"wrote {summary['runner']} (runs the finetune where MindFormers is installed)")
    return 0


def cmd_export_ckpt(args: argparse.Namespace) -> int:
    guard_command_outputs(args, args.output, inputs=[("--model", args.model), ("--adapter", args.adapter)])
    summary = export_ckpt(args.model, args.output, adapter=args.adapter)
    what = []
    if summary["tensors"]:
        what.append(f"{summary['tensors']} weights" + (" (tied embeddings stored once)"
                                                       if summary["tied_embeddings"] else ""))
    if summary["lora_tensors"]:
        what.append(f"{summary['lora_tensors']} LoRA tensors (r={summary['lora_r']}, alpha={summary['lora_alpha']:g})")
    print(f"wrote {args.output}: {', '.join(what)}, {summary['bytes'] / 1e6:.1f} MB")
    return 0


def cmd_import_ckpt(args: argparse.Namespace) -> int:
    if not args.base:
        raise MathloraError("give --model BASE: the base model spec (its config.json and tokenizer)")
    guard_command_outputs(args, args.output, ("--adapter-output", args.adapter_output),
                          inputs=[("ckpt", args.ckpt), ("--model", args.base)])
    summary = import_ckpt(args.ckpt, args.base, args.output, adapter_output=args.adapter_output,
                          lora_alpha=args.lora_alpha)
    if "model" in summary:
        print(f"wrote HF model {summary['model']} ({summary['tensors']} tensors)")
    if "adapter" in summary:
        print(f"wrote peft adapter {summary['adapter']} ({summary['lora_tensors']} LoRA tensors)")
    if summary.get("skipped"):
        print(f"{summary['skipped']} training-state entries skipped (optimizer moments, step counters)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    run_arg = getattr(args, "cfg:run_dir", None)
    if args.config is None and run_arg and RunLayout(run_arg).config.is_file():
        cfg = run_config_from_args(args, run_arg)  # the run's own config: its publish section applies
    else:
        cfg = config_from_args(args)
    if not cfg.publish.to:
        raise MathloraError("give --to (or publish.to in the config): s3://bucket/prefix, hf://user/repo, "
                            "file:///path or a path")
    run = Path(cfg.run_dir)
    if not RunLayout(run).config.is_file():
        raise MathloraError(f"{run} is not a mathlora run folder (no config.yaml); give --run")
    publish.publish_run(run, cfg.publish.to, endpoint_url=cfg.publish.endpoint_url, dry_run=args.dry_run,
                verify_all=cfg.publish.verify_all, replace=cfg.publish.replace, private=cfg.publish.private)
    return 0
