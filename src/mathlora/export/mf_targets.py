"""What the MindFormers export targets: the MindFormers release (and the MindSpore it pairs with) and the device.

The release decides the optimizer's name; the device decides the switches MindFormers' llama needs off Ascend.
Each value is validated here, with a one-line error naming what is allowed.
"""

from __future__ import annotations

from mathlora.errors import MathloraError

# The MindFormers releases the YAML is written for, and the MindSpore each pairs with (MindFormers' own
# VERSION_MAP.json and its wheels' requirements). No 1.4 exists; 1.5 (MindSpore 2.6) is not on PyPI and not
# covered (its optimizer was not checked); 2.0 needs MindSpore 2.10 and hyper-parallel, which is not on PyPI; 2.1
# needs MindSpore 2.11, not published: neither installs.
MINDSPORE_FOR = {"1.3": "2.4", "1.6": "2.7.0", "1.7": "2.7.1", "1.8": "2.7.2", "1.9": "2.9.0"}
DEFAULT_MINDFORMERS = "1.9"
DEVICE_TARGETS = ("ascend", "cpu")
# Off Ascend, MindFormers' llama needs these (each found by running it on CPU): RoPE by slicing (the default's
# batched matmul does not broadcast on CPU), no fused RMSNorm and no flash attention (Ascend kernels), float32
# (no bfloat16 Gather on CPU), no dataset sink (the CPU has none: each sink epoch reran the data), one data worker
# (MindSpore refuses more than the machine's cores); run_finetune.py replaces the loss-scale overflow check.
CPU_SWITCHES = {"use_rope_slice": True, "fused_rms_norm": False, "use_flash_attention": False}


def mindformers_release(value: str | None) -> str:
    """``1.9`` from ``1.9``, ``1.9.0`` or ``v1.9``: a release the export covers, or a one-line error."""
    text = str(value if value is not None else DEFAULT_MINDFORMERS).strip().lstrip("vV")
    parts = text.split(".")
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        release = f"{int(parts[0])}.{int(parts[1])}"
        if release in MINDSPORE_FOR:
            return release
        if int(parts[0]) >= 2:
            raise MathloraError(f"mindformers {text} is not covered: 2.0 needs hyper-parallel (not on PyPI), 2.1 "
                                f"MindSpore 2.11 (not published); give 1.9 (MindSpore 2.9, the newest that installs) "
                                f"or 1.3 (the contest's)")
    raise MathloraError(f"mindformers {value!r}: give a release 1.3 (the contest's) or 1.6 to 1.9 "
                        f"(default {DEFAULT_MINDFORMERS})")


def device_target_of(value: str | None) -> str:
    target = str(value or "ascend").strip().lower()
    if target not in DEVICE_TARGETS:
        raise MathloraError(f"device target {value!r}: give ascend or cpu")
    return target


def check_devices(target: str, devices: int) -> None:
    if target == "cpu" and devices != 1:
        raise MathloraError(f"--device-target cpu runs one process; give --devices 1 (got {devices})")


def optimizer_type(release: str) -> str:
    """MindFormers' name of AdamW with float32 moments: its own class in 1.3, MindSpore's from 1.6 on."""
    return "FP32StateAdamWeightDecay" if release == "1.3" else "AdamWeightDecay"
