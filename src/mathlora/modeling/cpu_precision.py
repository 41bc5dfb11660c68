"""Which precision a CPU computes fastest in: what ``runtime.precision: auto`` takes on a CPU.

bf16 matmuls are fast on a CPU with native bf16 kernels (AVX-512 BF16, AMX) and slow elsewhere (emulated).
``choose()`` decides by measurement, once per machine:

* the CPU's flags (``/proc/cpuinfo``): without ``avx512_bf16`` or ``amx_bf16`` the answer is fp32, no probe;
* with one of them (or where the flags cannot be read), a short probe: the same matmul in fp32 and in bf16,
  interleaved, the best of a few (a few hundred milliseconds); bf16 when it is at least ``MIN_SPEEDUP`` faster.
  Under torchrun (``WORLD_SIZE`` > 1) without a cached answer the flags alone decide, so every process agrees;
* the answer is cached in ``$MATHLORA_CACHE/cpu_precision.json`` (default ``~/.cache/mathlora``), keyed by the
  CPU model, its bf16 flags, the torch version and the thread count; written atomically; a corrupt or
  unreadable cache is ignored (and replaced).

``Choice.reason`` says in a few words why, for the run's first line and its meta.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_SPEEDUP = 1.2  # bf16 must beat fp32 by this much: a tie is not worth the rounding
PROBE_SHAPE = (512, 576, 1536)  # rows x hidden x intermediate: an MLP projection of a small model
CACHE_NAME = "cpu_precision.json"


@dataclasses.dataclass(frozen=True)
class Choice:
    precision: str  # fp32 or bf16
    reason: str
    fp32_gflops: float | None = None
    bf16_gflops: float | None = None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform says."""
    for line in _cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_flags() -> list[str] | None:
    """The bf16-relevant flags of the CPU (``avx512_bf16``, ``amx_bf16``), or None where they cannot be read."""
    info = _cpuinfo()
    for line in info.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.partition(":")[2].split())
            return [f for f in BF16_FLAGS if f in flags]
    return None


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def probe(shape: tuple[int, int, int] = PROBE_SHAPE, repeats: int = 4) -> tuple[float, float]:
    """GFLOP/s of one ``m x k @ k x n`` matmul in fp32 and in bf16 (interleaved, best of ``repeats``)."""
    import torch

    m, k, n = shape
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    pairs = {torch.float32: (a, b), torch.bfloat16: (a.bfloat16(), b.bfloat16())}
    best = {dtype: float("inf") for dtype in pairs}
    for round_ in range(repeats + 1):  # round 0 warms up and is not counted
        for dtype, (x, y) in pairs.items():
            start = time.perf_counter()
            torch.mm(x, y)
            if round_:
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    flop = 2 * m * k * n / 1e9
    return flop / best[torch.float32], flop / best[torch.bfloat16]


def decide(flags: list[str] | None, measure=probe, *, processes: int = 1) -> Choice:
    """The choice from the CPU's flags and, where they allow bf16, a probe (``measure``). With several
    processes (torchrun on CPUs) the flags alone decide: probes could disagree between processes."""
    if flags == []:
        return Choice("fp32", f"no {'/'.join(BF16_FLAGS)} in the CPU flags")
    if processes > 1:
        if flags:
            return Choice("bf16", f"{'+'.join(flags)} (flags only: {processes} processes must agree, no probe)")
        return Choice("fp32", f"CPU flags unknown ({processes} processes must agree, no probe)")
    fp32, bf16 = measure()
    which = "+".join(flags) if flags else "CPU flags unknown"
    speedup = bf16 / fp32
    precision = "bf16" if speedup >= MIN_SPEEDUP else "fp32"
    return Choice(precision, f"{which}; probe matmul bf16 {speedup:.2f}x fp32 ({bf16:.1f} vs {fp32:.1f} GFLOP/s)",
                  round(fp32, 2), round(bf16, 2))


def cache_path() -> Path:
    return Path(os.environ.get("MATHLORA_CACHE", Path.home() / ".cache" / "mathlora")) / CACHE_NAME


def cache_key(flags: list[str] | None) -> str:
    import torch

    return f"{cpu_name()} | flags {','.join(flags) if flags is not None else '?'} | torch {torch.__version__} | " \
           f"{torch.get_num_threads()} threads"


def choose(measure=probe, path: Path | None = None) -> Choice:
    """The CPU's precision: from the cache when this machine was measured before, else measured and cached."""
    path = path or cache_path()
    flags = cpu_bf16_flags()
    key = cache_key(flags)
    entries = _read(path)
    hit = entries.get(key)
    if isinstance(hit, dict) and hit.get("precision") in ("fp32", "bf16") and isinstance(hit.get("reason"), str):
        return Choice(hit["precision"], f"{hit['reason']} (cached)", hit.get("fp32_gflops"), hit.get("bf16_gflops"))
    processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
    choice = decide(flags, measure, processes=processes)
    if processes == 1:  # only a measured answer is cached
        entries[key] = {**dataclasses.asdict(choice),
                        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _write(path, entries)
    return choice


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, entries: dict) -> None:
    """Atomically (a temporary file renamed over the old); a cache that cannot be written is left alone."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cpu_precision.", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
