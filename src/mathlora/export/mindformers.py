"""``mathlora export mindformers``: a run's recipe as a MindFormers LoRA finetune YAML, plus its MindRecord tokens.

Reads the run folder (``config.yaml``: the resolved recipe; ``tokens/``: ``stats.json`` and ``tokens.parquet``)
and the base model's HF config, and writes into the output folder::
    finetune_mathlora.yaml   run_mode finetune, LlamaForCausalLM with pet_config (LoRA), the recipe's optimizer,
                             schedule, batch, epochs, seed, checkpointing and recompute
    tokens.mindrecord(.db)   input_ids/labels padded to seq_length + 1 (MindFormers drops the last position)
    run_finetune.py          the finetune with pip-installed MindFormers (``mf_runner``; no MindFormers checkout)

Two targets choose what is written: the MindFormers release (``--mindformers``: 1.9 by default, the newest that
installs from PyPI, with MindSpore 2.9; 1.6 to 1.8 read the same YAML; 1.3 is the contest's, whose optimizer was
``FP32StateAdamWeightDecay``, gone by 1.6) and the device (``--device-target``: ascend by default; cpu writes the
switches MindFormers needs off Ascend: ``mf_targets``). Checked against the real MindFormers 1.9.0 on CPU by
``tests/export/test_mindformers_real.py`` (``make test-ascend``).

Keys are spelled as MindFormers reads them (``configs/llama2/lora_llama2_7b.yaml``,
``research/llama3/llama3_8b/finetune_llama3_8b.yaml``, ``LlamaConfig``, ``pet_config.LoraConfig``,
``AdamWeightDecay`` (``FP32StateAdamWeightDecay`` for 1.3), ``CosineWithWarmUpLR``, ``MFTrainOneStepCell``,
``CheckpointMonitor``).

Mapping notes (MindFormers has no exact counterpart for everything):

* global batch = ``runner_config.batch_size`` x ``parallel_config.data_parallel`` x
  ``runner_config.gradient_accumulation_steps``; ``--devices`` sets data_parallel;
* ``runner_config.epochs`` is a whole number: fractional ``train.epochs`` round up, ``train.max_steps`` sets
  ``lr_schedule.total_steps`` (MindFormers still runs whole epochs; stop it there or lower epochs);
* ``train.save_steps`` as a list becomes its greatest common divisor (a superset of the recipe's checkpoints),
  ``keep_checkpoint_max`` keeps all of them; no ``save_steps`` saves once, at the last step;
* MindFormers pads, it does not pack: ``train.packing`` has no counterpart (a note says so); it drops each
  epoch's last partial batch (``drop_remainder``), where mathlora trains on it;
* data parallel only, optimizer not sharded: each rank's checkpoint is complete (``mathlora import`` reads one).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any
import shutil
import tempfile

import yaml

from mathlora.errors import MathloraError
from mathlora.export import mf_runner, ms_names
from mathlora.export.mf_targets import (CPU_SWITCHES, DEFAULT_MINDFORMERS, MINDSPORE_FOR, check_devices,
                                        device_target_of, mindformers_release, optimizer_type)
from mathlora.export.recipe import RunRecipe
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.tokens import IGNORE
from mathlora.export.ms_ckpt import hf_config
from mathlora.train.schedule import total_steps
from mathlora.data.tokenize import read_tokens, write_mindrecord
from mathlora.modeling.models import load_tokenizer
from mathlora.run_dir.atomic import write_text_atomic
from mathlora.export.ms_ckpt import require_mindspore

YAML_NAME = "finetune_mathlora.yaml"
MINDRECORD_NAME = "tokens.mindrecord"
RUNNER_NAME = "run_finetune.py"
COMPUTE_DTYPE = {"bf16": "bfloat16", "auto": "bfloat16", "fp16": "float16", "fp32": "float32"}

class _NoAliasDumper(yaml.SafeDumper):
    """Plain YAML (no &id001 anchors) so a reader sees every value where it is used."""

    def ignore_aliases(self, data):
        return True


def dump_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def load_run(run_dir) -> tuple[RunRecipe, dict]:
    """(the run's recipe, tokens stats) of a run folder."""
    root = Path(run_dir)
    cfg = RunRecipe.read(root)
    stats_path = RunLayout(root).tokens_stats
    if not stats_path.is_file():
        raise MathloraError(f"{root} has no tokens/stats.json; run the pipeline through tokenize first "
                            f"(mathlora run --stop-after tokenize)")
    stats = read_json_document(stats_path, "tokens stats")
    if not isinstance(stats, dict):
        raise MathloraError(f"{stats_path} is not a JSON object")
    return cfg, stats


def base_config_dict(spec: str) -> dict:
    """The base model's HF config as a dict (no weights loaded)."""

    return hf_config(spec).to_dict()


def _int_id(value, fallback: int | None) -> int | None:
    if isinstance(value, list):
        return fallback if fallback in value else (value[0] if value else fallback)
    return value if value is not None else fallback


def batch_layout(global_batch: int, micro_batch: int, devices: int) -> tuple[int, int]:
    """(per-device batch_size, gradient_accumulation_steps) giving ``global_batch`` over ``devices``."""
    if devices < 1:
        raise MathloraError("--devices must be at least 1")
    if global_batch % devices:
        raise MathloraError(f"train.global_batch_size {global_batch} is not a multiple of --devices {devices}")
    per_device = global_batch // devices
    batch = max(d for d in range(1, min(per_device, micro_batch) + 1) if per_device % d == 0)
    return batch, per_device // batch


def recompute_flags(gradient_checkpointing) -> dict:
    """``train.gradient_checkpointing`` as the booleans MindFormers reads: ``selective`` is its
    ``select_recompute``; ``auto`` (a CUDA memory plan, none on Ascend) recomputes every layer."""
    if gradient_checkpointing == "selective":
        return {"recompute": False, "select_recompute": True}
    return {"recompute": gradient_checkpointing in (True, "auto"), "select_recompute": False}


def checkpoint_interval(save_steps, total: int) -> int:
    """MindFormers saves every N steps: the recipe's interval, the gcd of its list, or the last step."""
    if save_steps is None:
        return total
    if isinstance(save_steps, int):
        return max(1, min(save_steps, total))
    steps = [s for s in save_steps if 1 <= s <= total] or [total]
    return max(1, math.gcd(*steps))


def mindformers_config(cfg, hf: dict, stats: dict, *, dataset_dir: str, devices: int = 8,
                       load_checkpoint: str = "", pad_token_id: int | None = None,
                       bos_token_id: int | None = None, eos_token_id: int | None = None,
                       mindformers: str = DEFAULT_MINDFORMERS, device_target: str = "ascend") -> dict:
    """The MindFormers finetune config (a dict) for a mathlora recipe ``cfg`` and base HF config ``hf``, for
    MindFormers release ``mindformers`` on ``device_target`` (ascend or cpu)."""
    release, target = mindformers_release(mindformers), device_target_of(device_target)
    cpu = target == "cpu"
    check_devices(target, devices)
    if hf.get("model_type") != "llama":
        raise MathloraError(f"base model {cfg.model} is a {hf.get('model_type')!r} model; the MindFormers export "
                            f"covers Llama-family models (model_type 'llama')")
    tc, lc = cfg.train, cfg.lora
    if lc.init_from:
        raise MathloraError(f"lora.init_from ({lc.init_from}) is not carried to MindFormers, whose finetune starts "
                            "LoRA afresh: export a run that trains from fresh LoRA weights")
    records = int(stats.get("kept") or 0)
    if records < 1:
        raise MathloraError("tokens/stats.json counts no kept record")
    total = total_steps(records, tc.global_batch_size, tc.epochs, tc.max_steps)
    # MindFormers plans no memory: ``auto`` (the CUDA memory plan's choice) becomes one row a pass
    batch, accumulation = batch_layout(tc.global_batch_size, 1 if tc.micro_batch_size == "auto" else
                                       tc.micro_batch_size, devices)
    interval = checkpoint_interval(tc.save_steps, total)
    rope = hf.get("rope_parameters") or {}
    theta = hf.get("rope_theta") or rope.get("rope_theta") or 10000.0
    compute = "float32" if cpu else COMPUTE_DTYPE[cfg.runtime.precision]
    params = "float32" if compute == "float32" else compute
    hidden, heads = hf["hidden_size"], hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, hidden // heads):
        raise MathloraError(f"base model head_dim {hf['head_dim']} != hidden_size / num_attention_heads; "
                            f"MindFormers' llama derives it from those")
    if devices == 1 and accumulation > 1:
        # one device is MindFormers' stand_alone mode, where it sets gradient_accumulation_steps to 1 (it
        # accumulates only under semi/auto parallel): the whole global batch goes in one step's batch
        batch, accumulation = batch * accumulation, 1
    dataset = {
        "data_loader": {"type": "MindDataset", "dataset_dir": dataset_dir, "shuffle": True},
        "input_columns": ["input_ids", "labels"],
        "num_parallel_workers": 1 if cpu else 8,
        "python_multiprocessing": False,
        "drop_remainder": True,
        "batch_size": batch,
        "repeat": 1,
        "numa_enable": False,
        "prefetch_size": 1,
    }
    return {
        "seed": cfg.seed,
        "output_dir": "./output",
        "load_checkpoint": load_checkpoint,
        "src_strategy_path_or_dir": "",
        "auto_trans_ckpt": devices > 1,  # a complete checkpoint sliced for the distributed layout
        "only_save_strategy": False,
        "resume_training": False,
        "run_mode": "finetune",
        "trainer": {"type": "CausalLanguageModelingTrainer", "model_name": "llama_lora_mathlora"},
        "runner_config": {
            "epochs": max(1, math.ceil(tc.epochs)),
            "batch_size": batch,
            "sink_mode": not cpu,
            "sink_size": 1,
            "gradient_accumulation_steps": accumulation,
        },
        "runner_wrapper": {
            "type": "MFTrainOneStepCell",
            "scale_sense": 1.0,
            "use_clip_grad": tc.max_grad_norm is not None,
            "max_grad_norm": tc.max_grad_norm if tc.max_grad_norm is not None else 1.0,
        },
        "optimizer": {
            "type": optimizer_type(release),
            "beta1": tc.betas[0],
            "beta2": tc.betas[1],
            "eps": tc.eps,
            "weight_decay": tc.weight_decay,
            "learning_rate": tc.lr,
        },
        "lr_schedule": {
            "type": "CosineWithWarmUpLR",
            "learning_rate": tc.lr,
            "lr_end": tc.lr_end,
            "warmup_ratio": tc.warmup_ratio,
            "total_steps": tc.max_steps if tc.max_steps is not None else -1,  # -1: from the dataset and epochs
        },
        "train_dataset": dataset,
        "train_dataset_task": {"type": "CausalLanguageModelDataset", "dataset_config": dict(dataset)},
        "do_eval": False,
        "use_parallel": devices > 1,
        "parallel": {
            "parallel_mode": 1,
            "gradients_mean": False,
            "enable_alltoall": False,
            "full_batch": True,
            "search_mode": "sharding_propagation",
            # pure data parallel without optimizer sharding: every rank holds (and saves) complete weights, so
            # any rank's checkpoint imports back; LoRA's optimizer state is small enough not to shard
            "enable_parallel_optimizer": False,
            "strategy_ckpt_save_file": "./ckpt_strategy.ckpt",
            "parallel_optimizer_config": {"gradient_accumulation_shard": False,
                                          "parallel_optimizer_threshold": 64},
        },
        "parallel_config": {
            "data_parallel": devices,
            "model_parallel": 1,
            "pipeline_stage": 1,
            "use_seq_parallel": False,
            "micro_batch_num": 1,
            "vocab_emb_dp": True,
            "gradient_aggregation_group": 4,
        },
        "micro_batch_interleave_num": 1,
        "recompute_config": {
            **recompute_flags(tc.gradient_checkpointing),
            "parallel_optimizer_comm_recompute": False,
            "mp_comm_recompute": True,
            "recompute_slice_activation": True,
        },
        "callbacks": [
            {"type": "MFLossMonitor"},
            {"type": "CheckpointMonitor", "prefix": "mathlora", "save_checkpoint_steps": interval,
             "keep_checkpoint_max": total // interval + 1, "integrated_save": False, "async_save": False},
        ],
        "context": {
            "mode": 0,
            "device_target": "CPU" if cpu else "Ascend",
            "max_call_depth": 10000,
            **({} if cpu else {"max_device_memory": "58GB"}),
            "save_graphs": False,
            "save_graphs_path": "./graph",
            "device_id": 0,
        },
        "model": {
            "model_config": {
                "type": "LlamaConfig",
                "batch_size": batch,
                "seq_length": cfg.tokenize.seq_length,
                "hidden_size": hidden,
                "num_layers": hf["num_hidden_layers"],
                "num_heads": heads,
                "n_kv_heads": hf.get("num_key_value_heads") or heads,
                "vocab_size": hf["vocab_size"],
                "intermediate_size": hf["intermediate_size"],
                "max_position_embedding": hf.get("max_position_embeddings") or cfg.tokenize.seq_length,
                "rms_norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
                "theta": float(theta),
                "bos_token_id": _int_id(hf.get("bos_token_id"), bos_token_id),
                "eos_token_id": _int_id(hf.get("eos_token_id"), eos_token_id),
                "pad_token_id": pad_token_id if pad_token_id is not None else _int_id(hf.get("pad_token_id"), 0),
                "ignore_token_id": IGNORE,
                "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False)),
                "qkv_has_bias": bool(hf.get("attention_bias", False)),
                "compute_dtype": compute,
                "layernorm_compute_type": "float32",
                "softmax_compute_type": "float32",
                "rotary_dtype": "float32",
                "param_init_type": params,
                "embedding_init_type": params,
                "use_past": False,
                "scaling_factor": 1.0,
                "extend_method": "None",
                "use_flash_attention": True,
                **(CPU_SWITCHES if cpu else {}),
                "offset": 0,
                "checkpoint_name_or_path": "",
                "repetition_penalty": 1,
                "max_decode_length": 512,
                "top_k": 1,
                "top_p": 1,
                "do_sample": False,
                "pet_config": {
                    "pet_type": "lora",
                    "lora_rank": lc.r,
                    "lora_alpha": lc.alpha,
                    "lora_dropout": lc.dropout,
                    "param_init_type": "float32",
                    "compute_dtype": compute,
                    "target_modules": ms_names.target_modules_regex(list(lc.target_modules)),
                },
            },
            "arch": {"type": "LlamaForCausalLM"},
        },
    }


def export_mindformers(run_dir, output_dir, *, devices: int | None = None, load_checkpoint: str = "",
                       dataset_dir: str | None = None, mindrecord: bool = True,
                       mindformers: str | None = None, device_target: str | None = None) -> dict:
    """Write the finetune YAML, ``run_finetune.py`` (and, with MindSpore installed, the MindRecord tokens) into
    ``output_dir``. ``devices``: 8 on Ascend (one Atlas 800T A2), 1 on CPU."""
    release, target = mindformers_release(mindformers), device_target_of(device_target)
    if devices is None:
        devices = 1 if target == "cpu" else 8
    check_devices(target, devices)
    cfg, stats = load_run(run_dir)
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise MathloraError(f"output {out} exists and is a file; expected a folder path")
    if mindrecord:
        require_mindspore("the MindRecord tokens of export mindformers (or give --no-mindrecord)")
    tokens_dir = RunLayout(run_dir).tokens
    table = read_tokens(tokens_dir) if mindrecord else None
    tok = load_tokenizer(cfg.model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    hf = base_config_dict(cfg.model)
    record_path = out / MINDRECORD_NAME
    data = mindformers_config(cfg, hf, stats, dataset_dir=dataset_dir or str(record_path.resolve()),
                              devices=devices, load_checkpoint=load_checkpoint, pad_token_id=pad,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                              mindformers=release, device_target=target)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"yaml": str(out / YAML_NAME), "records": int(stats.get("kept") or 0)}
    if table is not None:
        rows = list(zip(table.column("input_ids").to_pylist(), table.column("labels").to_pylist()))
        tmp = Path(tempfile.mkdtemp(prefix=".mindrecord.", suffix=".tmp", dir=out))
        try:
            write_mindrecord(tmp / MINDRECORD_NAME, rows, cfg.tokenize.seq_length + 1, pad)
            for f in sorted(tmp.iterdir()):  # tokens.mindrecord and its .db index
                os.replace(f, out / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        summary["mindrecord"] = str(record_path)
        summary["mindrecord_rows"] = len(rows)
    base_arg = "" if load_checkpoint else " --load_checkpoint BASE.ckpt"
    header = (f"# MindFormers LoRA finetune config written by `mathlora export mindformers` from run {run_dir}\n"
              f"# for MindFormers {release} (with MindSpore {MINDSPORE_FOR[release]}), device target {target}\n"
              f"# base model: {cfg.model}; data: {summary['records']} records, seq_length "
              f"{cfg.tokenize.seq_length} (MindRecord rows are seq_length + 1)\n"
              f"# run: python {out.resolve() / RUNNER_NAME}{base_arg}\n"
              f"#   (or MindFormers' run_mindformer.py --config this file, in its source tree; BASE.ckpt from "
              f"`mathlora export mindspore-ckpt --model {cfg.model} --output BASE.ckpt`; several NPUs: msrun)\n")
    write_text_atomic(out / YAML_NAME, header + dump_yaml(data))
    write_text_atomic(out / RUNNER_NAME, Path(mf_runner.__file__).read_text(encoding="utf-8"))
    summary["runner"] = str(out / RUNNER_NAME)
    notes = []
    if cfg.train.packing:
        notes.append("train.packing has no MindFormers counterpart: every record is its own row, padded to "
                     f"seq_length {cfg.tokenize.seq_length} (same records per step)")
    if target == "cpu":
        notes.append("device target cpu: float32, no flash attention or fused RMSNorm, RoPE by slicing, no dataset "
                     "sink; run_finetune.py checks gradients are finite in place of the Ascend overflow check")
    micro, runner = cfg.train.micro_batch_size, data["runner_config"]
    if devices == 1 and runner["batch_size"] > (1 if micro == "auto" else micro):
        notes.append(f"one device: MindFormers accumulates gradients only in parallel mode, so batch_size is the "
                     f"global batch {runner['batch_size']} (train.micro_batch_size {micro} has no counterpart)")
    elif micro == "auto":
        notes.append(f"train.micro_batch_size auto -> batch_size 1 with gradient_accumulation_steps "
                     f"{runner['gradient_accumulation_steps']} (MindFormers plans no memory; set "
                     f"train.micro_batch_size for more rows a pass)")
    if cfg.train.gradient_checkpointing == "auto":
        notes.append("train.gradient_checkpointing auto -> recompute: true (every layer; MindFormers plans no memory)")
    if tc_fraction(cfg.train.epochs):
        notes.append(f"train.epochs {cfg.train.epochs} rounds up to {math.ceil(cfg.train.epochs)} "
                     f"(runner_config.epochs is whole)")
    if cfg.train.max_steps is not None:
        notes.append(f"train.max_steps {cfg.train.max_steps} sets lr_schedule.total_steps; "
                     f"MindFormers still runs whole epochs")
    if cfg.train.save_steps is not None and not isinstance(cfg.train.save_steps, int):
        notes.append("train.save_steps list -> save_checkpoint_steps "
                     f"{data['callbacks'][1]['save_checkpoint_steps']} (their gcd)")
    summary["notes"] = notes
    return summary


def tc_fraction(epochs: float) -> bool:
    return float(epochs) != math.floor(float(epochs))
