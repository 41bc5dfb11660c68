"""Helpers of the tests that drive the CLI: run a command and read what it printed, small inputs, a tiny
adapter, a tokens file, a loopback server."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.loopback import LoopbackServer

from mathlora.app.cli import main

# A whole `mathlora run` on the tiny model in a few seconds.
SMALL = ["model=tiny-random-llama", "label.judge=heuristic", "synth.count=60", "synth.test_count=4",
         "synth.squad_paragraphs=2", "sample.total=24", "train.max_steps=2", "train.global_batch_size=8",
         "train.micro_batch_size=8", "train.save_steps=1", "eval.max_new_tokens=2", "eval.batch_size=8",
         "eval.squad_max_new_tokens=2", "tokenize.seq_length=320"]


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run ``mathlora ARGS`` in-process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def assert_one_error(rc: int, err: str, *needles: str) -> str:
    """rc 2, exactly one ``error:`` line containing every needle, no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = error_lines(err)
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def records(n: int = 6) -> list[dict]:
    return [{"id": f"r{i}", "problem": f"What is {i} + {i + 1}?", "solution": f"{i} + {i + 1} = {2 * i + 1}",
             "type": "addsub"} for i in range(n)]


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def strict_json_lines(path: Path) -> list:
    """Parse a JSON-lines file refusing NaN/Infinity (what any other JSON reader would do)."""
    def refuse(name):
        raise ValueError(f"{name} in {path}")
    return [json.loads(x, parse_constant=refuse) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def tiny_adapter(folder: Path) -> Path:
    """A fresh LoRA adapter of tiny-random-llama (peft format), without training."""
    from mathlora.app.config import load_config
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.checkpoint import save_adapter
    from mathlora.train.distributed import adapter_state
    from mathlora.train.job import TrainJob
    from mathlora.train.lora import build_model

    cfg = load_config(None, {"model": "tiny-random-llama"})
    runtime = Runtime.resolve()
    model = build_model(TrainJob(cfg.train, cfg.lora, cfg.seed, cfg.model, 64, runtime), runtime)
    save_adapter(model, adapter_state(model), folder)
    return folder


def write_tokens(folder: Path, n: int = 16) -> Path:
    """A tokenize-stage style ``tokens.parquet`` for the tiny byte tokenizer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mathlora.modeling.models import load_tokenizer

    tok = load_tokenizer("tiny-random-llama")
    ids, inputs, labels = [], [], []
    for i in range(n):
        p = tok.encode(f"Q: {i} + {3 * i} = ?\nA: ", add_special_tokens=False)
        r = tok.encode(f"{4 * i}", add_special_tokens=False) + [tok.eos_token_id]
        ids.append(f"r{i:03d}")
        inputs.append(p + r)
        labels.append([-100] * len(p) + r)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": pa.array(ids, pa.string()), "input_ids": pa.array(inputs, pa.list_(pa.int32())),
                             "labels": pa.array(labels, pa.list_(pa.int32())),
                             "length": pa.array([len(x) for x in inputs], pa.int32())}), folder / "tokens.parquet")
    (folder / "stats.json").write_text(json.dumps({"model": "tiny-random-llama", "seq_length": 64}) + "\n")
    return folder


class Server(LoopbackServer):
    """A loopback HTTP server answering every POST with ``respond(handler, body)``."""

    def __init__(self, respond):
        self.respond = respond

    def on_post(self, handler, body: bytes) -> None:
        self.respond(handler, body)


def completion(level: int = 2) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": str(level)}}]}).encode()


def drip(handler, body: bytes, every: float) -> None:
    """Send the headers, then ``body`` one byte every ``every`` seconds."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.flush()
    for i in range(len(body)):
        handler.wfile.write(body[i:i + 1])
        handler.wfile.flush()
        time.sleep(every)
