"""A CPU run keeps no memory per new shape: oneDNN's primitive caches are bounded from ``import mathlora``
(unbounded, a packed-rows bf16 run grew by 50-85 MB a step and was OOM-killed), and the trainer hands the
heap's free pages back at each host sync."""

import os
import subprocess
import sys

import pytest

# every step a new token count, as packed rows of varying length give; in-use heap bytes (glibc) after the caches
# filled, against 400 shapes later
PROBE = """
import ctypes, mathlora, torch
torch.set_num_threads(1)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
info = ctypes.CDLL("libc.so.6").mallinfo2
info.restype = Info
def in_use():
    m = info()
    return m.uordblks + m.hblkhd
w = torch.randn(512, 256, dtype=torch.bfloat16)
for t in range(200, 600):
    if t == 300:
        before = in_use()
    x = torch.randn(1, t, 256, dtype=torch.bfloat16, requires_grad=True)
    torch.nn.functional.linear(x, w).float().sum().backward()
print((in_use() - before) / 2**20)
"""


def grown_mb(**env) -> float:
    clean = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, "OMP_NUM_THREADS": "1", **env},
                          capture_output=True, text=True, timeout=300)
    if "mallinfo2" in done.stderr:
        pytest.skip("glibc without mallinfo2")
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[-1])


def test_new_bf16_shapes_do_not_grow_the_heap():
    if not __import__("torch").backends.mkldnn.is_available():
        pytest.skip("torch without oneDNN")
    # measured on the 2-core dev box: 0.3 MB with the bound, 318 MB with oneDNN's defaults (1024 entries each)
    assert grown_mb() < 30
    assert grown_mb(ONEDNN_PRIMITIVE_CACHE_CAPACITY="1024", LRU_CACHE_CAPACITY="1024") > 60  # a set value wins


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_trim_hands_the_heaps_free_pages_back_on_a_cpu_only():
    from mathlora.train import speed

    chunks = [b"x" * 65536 for _ in range(2000)]  # 128 MB of heap chunks (under glibc's mmap threshold)
    last = chunks[-1]  # kept: the heap's top stays in use, so freeing the rest leaves free holes inside it
    del chunks
    before = rss_mb()
    assert speed.trim_host_heap("cuda:0") is False and rss_mb() > before - 20
    if not speed.trim_host_heap("cpu"):
        pytest.skip("no glibc malloc_trim")
    assert rss_mb() < before - 60, (before, rss_mb())
    assert len(last) == 65536


def test_the_trainer_trims_at_each_host_sync(tmp_path, tokens_dir, monkeypatch):
    from mathlora.modeling.runtime import Runtime
    from mathlora.train import speed, trainer
    from .conftest import tiny_config

    calls = []
    steps = []
    step = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda state, n: (steps.append(n), step(state, n))[1])
    monkeypatch.setattr(speed, "trim_host_heap", lambda device: calls.append((len(steps), device)))
    cfg = tiny_config(max_steps=5, log_every=2, report_to="none")
    trainer.train(cfg.train, Runtime("cpu", "fp32"), tokens_dir, tmp_path / "run", lora=cfg.lora, seed=cfg.seed,
                  progress=False)
    assert calls == [(2, "cpu"), (4, "cpu"), (5, "cpu")]
