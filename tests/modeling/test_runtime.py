"""The runtime policy: resolved once, from the environment or the config; the tiny model is the same model
whatever the device and dtype; nothing but mathlora.modeling.runtime asks torch about CUDA."""

from pathlib import Path

import pytest
import torch

from mathlora.modeling import runtime as rt
from mathlora.app.config import load_config
from mathlora.errors import MathloraError
from mathlora.modeling.models import load_model
from mathlora.modeling.runtime import Runtime, RuntimeConfig

SRC = Path(__file__).resolve().parents[2] / "src" / "mathlora"


@pytest.fixture
def fake_cuda(monkeypatch):
    """Resolution as on a 2-GPU box (nothing is placed on a device)."""
    monkeypatch.setattr(rt, "cuda_available", lambda: True)
    monkeypatch.setattr(rt, "cuda_device_count", lambda: 2)


def test_the_environment_pins_the_test_runtime():
    assert Runtime.resolve(RuntimeConfig(device="auto", precision="bf16")) == Runtime("cpu", "fp32")


def test_auto_is_cuda_bf16_with_a_gpu_and_what_the_cpu_measured_without(monkeypatch, fake_cuda):
    monkeypatch.delenv(rt.DEVICE_ENV)
    monkeypatch.delenv(rt.PRECISION_ENV)
    cpu_choice = ("fp32", "no avx512_bf16/amx_bf16 in the CPU flags")
    monkeypatch.setattr(rt, "cpu_auto_precision", lambda: cpu_choice)
    assert Runtime.resolve() == Runtime("cuda", "bf16", precision_auto=True)
    assert Runtime.resolve(RuntimeConfig(device="cpu")) == Runtime("cpu", "fp32", precision_auto=True)
    assert Runtime.resolve(RuntimeConfig(device="cuda:1", precision="fp32")) == Runtime("cuda:1", "fp32")
    monkeypatch.setattr(rt, "cuda_available", lambda: False)
    assert Runtime.resolve() == Runtime("cpu", "fp32", precision_auto=True)
    assert Runtime.resolve().describe() == "cpu fp32 (auto: no avx512_bf16/amx_bf16 in the CPU flags)"
    cpu_choice = ("bf16", "avx512_bf16; probe matmul bf16 2.00x fp32")
    runtime = Runtime.resolve()
    assert runtime == Runtime("cpu", "bf16", precision_auto=True) and runtime.precision_reason == cpu_choice[1]
    assert runtime.describe() == "cpu bf16 (auto: avx512_bf16; probe matmul bf16 2.00x fp32)"
    # an explicit precision (config or environment) wins over the measurement
    assert Runtime.resolve(RuntimeConfig(precision="fp32")) == Runtime("cpu", "fp32")
    monkeypatch.setenv(rt.PRECISION_ENV, "fp32")
    assert Runtime.resolve(RuntimeConfig(precision="auto")).describe() == "cpu fp32"


def test_the_environment_overrides_the_config(monkeypatch, fake_cuda):
    monkeypatch.setenv(rt.DEVICE_ENV, "cuda")
    monkeypatch.delenv(rt.PRECISION_ENV)
    assert Runtime.resolve(RuntimeConfig(device="cpu", precision="fp16")) == Runtime("cuda", "fp16")
    monkeypatch.setenv(rt.DETERMINISTIC_ENV, "1")
    assert Runtime.resolve().deterministic
    monkeypatch.setenv(rt.DETERMINISTIC_ENV, "0")
    assert not Runtime.resolve(RuntimeConfig(deterministic=True)).deterministic


@pytest.mark.parametrize("device, message", [
    ("cuda", "no CUDA device is available"), ("cuda:0", "no CUDA device is available"),
    ("gpu", "expected auto, cpu, cuda or cuda:N"), ("cuda:x", "expected auto, cpu, cuda or cuda:N"),
])
def test_bad_devices_name_their_source(monkeypatch, device, message):
    monkeypatch.setattr(rt, "cuda_available", lambda: False)
    monkeypatch.delenv(rt.DEVICE_ENV)
    with pytest.raises(MathloraError, match=f"runtime.device={device!r}|runtime.device={device}"):
        Runtime.resolve(RuntimeConfig(device=device))
    with pytest.raises(MathloraError, match=message):
        Runtime.resolve(RuntimeConfig(device=device))
    monkeypatch.setenv(rt.DEVICE_ENV, device)
    with pytest.raises(MathloraError, match=rt.DEVICE_ENV):
        Runtime.resolve()


def test_a_device_index_beyond_the_gpus_and_a_bad_precision_are_refused(monkeypatch, fake_cuda):
    monkeypatch.delenv(rt.DEVICE_ENV)
    with pytest.raises(MathloraError, match="only 2 CUDA device"):
        Runtime.resolve(RuntimeConfig(device="cuda:2"))
    monkeypatch.setenv(rt.PRECISION_ENV, "fp8")
    with pytest.raises(MathloraError, match=rt.PRECISION_ENV):
        Runtime.resolve()


def test_processes_fingerprint_and_dtype():
    assert Runtime("cuda", "bf16").for_process(3).device == "cuda:3"
    assert Runtime("cpu", "fp32").for_process(3).device == "cpu"
    # what can change a result is the precision, not the device
    assert Runtime("cpu", "bf16").fingerprint() == Runtime("cuda:1", "bf16").fingerprint() != Runtime().fingerprint()
    assert Runtime(precision="bf16").dtype == torch.bfloat16 and Runtime().dtype == torch.float32


def test_moved_config_keys_say_where_they_went():
    for key, new in [("train.precision", "runtime.precision"), ("train.device", "runtime.device"),
                     ("eval.precision", "runtime.precision"), ("label.device", "runtime.device")]:
        with pytest.raises(MathloraError, match=f"{key}: moved to {new}"):
            load_config(None, {key: "cpu"})
    assert load_config(None, {"runtime.precision": "bf16"}).runtime.precision == "bf16"


def test_the_tiny_model_depends_on_its_seed_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model = load_model("tiny-random-llama", Runtime.resolve())
    assert torch.equal(torch.rand(3), expected)  # building it leaves the caller's generator alone
    again = load_model("tiny-random-llama", Runtime())
    bf16 = load_model("tiny-random-llama", Runtime(precision="bf16"))
    other = load_model("tiny-random-llama:seed=1", Runtime.resolve())
    params = dict(model.named_parameters())
    for name, p in again.named_parameters():
        assert torch.equal(p, params[name]), name
    for name, p in bf16.named_parameters():
        assert p.dtype == torch.bfloat16 and torch.equal(p, params[name].detach().to(torch.bfloat16)), name
    assert not torch.equal(other.model.embed_tokens.weight, model.model.embed_tokens.weight)
    # recorded on this machine: the same numbers on any machine, device or transformers version
    weight = model.model.layers[0].self_attn.q_proj.weight.detach()
    assert weight[0, :3].tolist() == pytest.approx(GOLDEN_Q_PROJ, abs=1e-7)
    assert float(weight.std()) == pytest.approx(0.02, rel=0.05)
    assert float(model.model.embed_tokens.weight.detach()[model.config.pad_token_id].abs().sum()) == 0


GOLDEN_Q_PROJ = [0.0262287724763155, 0.011709130369126797, 0.016445685178041458]


def test_only_the_runtime_asks_torch_about_cuda():
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "cuda.is_available" in p.read_text(encoding="utf-8") and p.name != "runtime.py"]
    assert offenders == []
