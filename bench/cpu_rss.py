"""RSS of a tiny-model LoRA run on a CPU, every 10 optimizer steps (the bf16 per-step growth hunt).

    cd <worktree> && OMP_NUM_THREADS=1 PYTHONPATH=src:. nice -n 19 python bench/cpu_rss.py bf16 rows vary 200

Arguments: precision (bf16|fp32), attention (rows = the CPU default with packing, or sdpa|eager), shapes (vary:
records of 10-200 tokens packed into rows of up to 512, so every micro-batch has a new token count; fixed: every
row exactly 400 tokens), steps. Prints VmRSS and glibc's heap in use / free (mallinfo2). The model is
tiny-random-llama with 4 layers, hidden 256; 16 records a step in micro-batches of 4 rows; metrics every step
(``LOG_EVERY`` to change), so the trainer's host-sync trim runs each step.
"""

import ctypes
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from mathlora.app.config import load_config
from mathlora.modeling.runtime import Runtime
from mathlora.train import trainer
from tests.train.conftest import write_tokens

MODEL = "tiny-random-llama:layers=4,hidden=256,heads=4,kv_heads=2,inter=512"


class _Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def heap() -> str:
    info = ctypes.CDLL("libc.so.6").mallinfo2
    info.restype = _Info
    m = info()
    return f"heap in use {(m.uordblks + m.hblkhd) >> 20} MB, free {m.fordblks >> 20} MB"


def rss_mb() -> int:
    return next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmRSS"))


def main(precision: str, attention: str, shapes: str, steps: int) -> None:
    import torch

    torch.set_num_threads(1)
    rng = random.Random(0)
    lengths = [rng.randint(10, 200) if shapes == "vary" else 100 for _ in range(4000)]
    root = Path(tempfile.mkdtemp(prefix="cpu_rss-"))
    tokens = write_tokens(root / "tokens", [("Q" * (n // 2), "A" * (n - n // 2)) for n in lengths], model=MODEL,
                          seq_length=512)
    step, start = trainer.train_step, time.time()

    def watched(state, n):
        result = step(state, n)
        if n == 0 or (n + 1) % 10 == 0:
            print(f"step {n + 1}: RSS {rss_mb()} MB, {heap()}, {time.time() - start:.0f} s", flush=True)
        return result

    trainer.train_step = watched
    overrides = {"model": MODEL, "seed": 7, "train.global_batch_size": 16, "train.micro_batch_size": 4,
                 "train.max_steps": steps, "train.gradient_checkpointing": False, "train.report_to": "none",
                 "train.log_every": int(os.environ.get("LOG_EVERY", 1)), "train.lr": 1e-4}
    if attention != "rows":
        overrides["train.attn_implementation"] = attention
    if shapes == "fixed":
        overrides["train.pack_length"] = 400
    cfg = load_config(None, overrides)
    print(f"start: RSS {rss_mb()} MB", flush=True)
    trainer.train(cfg.train, Runtime("cpu", precision), tokens, root / "out", lora=cfg.lora, seed=cfg.seed,
                  progress=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
