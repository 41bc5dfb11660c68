"""bf16 on a CPU keeps no memory per new shape: oneDNN's primitive caches are bounded from ``import mathlora``
(unbounded, a packed-rows run grew by 50-85 MB a step and was OOM-killed)."""

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
