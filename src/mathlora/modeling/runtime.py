"""The runtime policy: which device, which precision, how deterministic. Decided once, passed to every stage
that touches a model (label's local judge, train, merge, predict, eval squad).

Resolution (``Runtime.resolve``), environment first so a launcher or a test harness can pin it:

* device: ``$MATHLORA_DEVICE``, else ``runtime.device``; ``auto`` is ``cuda`` when a CUDA device is
  available, else ``cpu``. Under torchrun every process takes ``cuda:<LOCAL_RANK>`` (``for_process``).
* precision: ``$MATHLORA_PRECISION``, else ``runtime.precision``; ``auto`` is ``bf16`` on CUDA and, on a CPU,
  what ``mathlora.modeling.cpu_precision`` measured there: ``bf16`` where the CPU has native bf16 kernels
  (AVX-512 BF16, AMX) and a probe matmul runs clearly faster in bf16, else ``fp32`` (bf16 is emulated, and
  slow, on other CPUs); cached per machine. ``precision_reason`` says why (in the run's first line and meta).
  Training keeps the LoRA weights and the optimizer state in fp32 whatever the base model's precision.
* deterministic: ``$MATHLORA_DETERMINISTIC`` (``1``/``0``), else ``runtime.deterministic``: deterministic
  kernels, no TF32, no cuDNN autotuning (``activate``).

Models are always *built* on the CPU (random weights from a seeded CPU generator, checkpoints read into host
memory) and then moved to ``device``, so the same seed gives the same model on every machine.

This is the only module that asks torch whether CUDA is available.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mathlora.errors import MathloraError
from mathlora.modeling import cpu_precision

DEVICE_ENV = "MATHLORA_DEVICE"
PRECISION_ENV = "MATHLORA_PRECISION"
DETERMINISTIC_ENV = "MATHLORA_DETERMINISTIC"
PRECISIONS = ("fp32", "bf16", "fp16")


class RuntimeConfig(BaseModel):
    """Config section ``runtime``."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field("auto", description="auto (cuda when available), cpu, cuda or cuda:N; "
                                            f"${DEVICE_ENV} overrides it")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 on CUDA; on a CPU bf16 where measured faster (AVX-512 BF16/AMX), "
                            f"else fp32; ${PRECISION_ENV} overrides it")
    deterministic: bool = Field(False, description="deterministic kernels, no TF32 (slower on GPUs)")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_auto_precision() -> tuple[str, str]:
    """What ``auto`` means on this machine's CPU, and why (measured once, then cached)."""
    choice = cpu_precision.choose()
    return choice.precision, choice.reason


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclasses.dataclass(frozen=True)
class Runtime:
    """A resolved runtime: ``device`` (``cpu``, ``cuda``, ``cuda:N``), ``precision`` (``fp32``, ``bf16``,
    ``fp16``), ``deterministic``; ``precision_auto`` tells whether the precision was left to the device,
    ``precision_reason`` why ``auto`` picked what it did (not compared: two runtimes that compute alike are equal)."""

    device: str = "cpu"
    precision: str = "fp32"
    deterministic: bool = False
    precision_auto: bool = False
    precision_reason: str = dataclasses.field(default="", compare=False)

    @classmethod
    def resolve(cls, cfg: RuntimeConfig | None = None) -> "Runtime":
        cfg = cfg or RuntimeConfig()
        device = (os.environ.get(DEVICE_ENV) or cfg.device).strip().lower()
        precision = (os.environ.get(PRECISION_ENV) or cfg.precision).strip().lower()
        deterministic = cfg.deterministic
        if os.environ.get(DETERMINISTIC_ENV):
            deterministic = os.environ[DETERMINISTIC_ENV].strip().lower() not in ("0", "false", "no", "")
        source = DEVICE_ENV if os.environ.get(DEVICE_ENV) else "runtime.device"
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        elif device.startswith("cuda"):
            index = device.partition(":")[2]
            if device != "cuda" and not (device.startswith("cuda:") and index.isdigit()):
                raise MathloraError(f"{source}={device!r}: expected auto, cpu, cuda or cuda:N")
            if not cuda_available():
                raise MathloraError(f"{source}={device} but no CUDA device is available (use cpu or auto)")
            if index and int(index) >= cuda_device_count():
                raise MathloraError(f"{source}={device} but only {cuda_device_count()} CUDA device(s) exist")
        elif device != "cpu":
            raise MathloraError(f"{source}={device!r}: expected auto, cpu, cuda or cuda:N")
        auto, reason = precision == "auto", ""
        if auto and device.startswith("cuda"):
            precision, reason = "bf16", "CUDA"
        elif auto:
            precision, reason = cpu_auto_precision()
        elif precision not in PRECISIONS:
            where = PRECISION_ENV if os.environ.get(PRECISION_ENV) else "runtime.precision"
            raise MathloraError(f"{where}={precision!r}: expected auto, {', '.join(PRECISIONS)}")
        return cls(device, precision, deterministic, auto, reason)

    @property
    def dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def replace(self, **changes) -> "Runtime":
        """A copy with some fields changed, e.g. ``runtime.replace(device="cpu")``."""
        return dataclasses.replace(self, **changes)

    def for_process(self, local_rank: int) -> "Runtime":
        """The runtime of one torchrun process: ``cuda`` becomes ``cuda:<local_rank>``."""
        if self.device == "cuda":
            return self.replace(device=f"cuda:{local_rank}")
        return self

    def activate(self) -> "Runtime":
        """Apply the process-wide settings (determinism, the current CUDA device); returns ``self``."""
        import torch

        if self.device.startswith("cuda:"):
            torch.cuda.set_device(int(self.device.partition(":")[2]))
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        return self

    def fingerprint(self) -> dict:
        """What of the runtime can change a result: the precision. The device cannot once the precision
        is fixed (with ``auto`` the device decides the precision, which is what is recorded)."""
        return {"precision": self.precision}

    def describe(self) -> str:
        why = f" (auto: {self.precision_reason})" if self.precision_auto and self.precision_reason else \
            " (auto)" if self.precision_auto else ""
        return f"{self.device} {self.precision}{why}" + (" deterministic" if self.deterministic else "")
