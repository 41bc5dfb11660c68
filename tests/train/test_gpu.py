"""Training on a CUDA device in bf16 (the runtime's auto precision there): the golden loss, resume, merge,
packing and DDP contracts hold with bf16 tolerances. Skipped without CUDA; ``make test-gpu`` runs them.

Tolerances were sized on CPU in bf16 (loss within 3e-4 of the fp32 goldens, merged-vs-adapter logits within
4e-3, packed == solo exactly) and leave room for CUDA kernels; each test also checks that what it compares
differs by far more than its tolerance when the contract is broken.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch

from mathlora.modeling.models import load_model, load_tokenizer
from mathlora.modeling.runtime import DETERMINISTIC_ENV, Runtime, cuda_device_count
from mathlora.train.data import TokenRecord, collate, pack_rows
from mathlora.train.merge import merge_adapter

from .conftest import tiny_config, torchrun_train, train
from .test_trainer import GOLDEN_LOSSES, adapter, metrics

pytestmark = pytest.mark.gpu
TINY = "tiny-random-llama"


def relative_difference(a: dict, b: dict) -> float:
    """||a - b|| / ||a|| over all adapter tensors. In bf16 an element whose gradient is ~0 can take Adam's step
    in either direction (a 2 * lr jump), so element-wise maxima are no measure; the norm is (calibrated on CPU
    in bf16: 2 gloo processes vs 1 differ by 0.004, by 2e-7 in fp32)."""
    assert a.keys() == b.keys()
    num = sum(float(((a[k].float() - b[k].float()) ** 2).sum()) for k in a)
    den = sum(float((a[k].float() ** 2).sum()) for k in a)
    return (num / den) ** 0.5


@pytest.fixture
def deterministic(monkeypatch):
    """Deterministic CUDA kernels for the duration of a test (process-wide torch flags, restored after)."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    monkeypatch.setenv(DETERMINISTIC_ENV, "1")
    runtime = Runtime.resolve().activate()
    yield runtime
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32) = saved[2:]


def test_the_runtime_picks_cuda_and_bf16():
    runtime = Runtime.resolve()
    assert runtime.device == "cuda" and runtime.precision == "bf16" and runtime.precision_auto


def test_the_tiny_model_on_cuda_is_the_cpu_model_rounded_to_bf16():
    cpu = dict(load_model(TINY, Runtime()).named_parameters())
    for name, p in load_model(TINY, Runtime.resolve()).named_parameters():
        assert p.is_cuda and p.dtype == torch.bfloat16
        assert torch.equal(p.cpu(), cpu[name].detach().to(torch.bfloat16)), name


def test_golden_loss_curve_in_bf16(tmp_path, tokens_dir):
    summary = train(tiny_config(save_steps=2), tokens_dir, tmp_path / "run", progress=False)
    assert summary["device"].startswith("cuda") and summary["dtype"] == "bfloat16"
    assert [r["loss"] for r in metrics(tmp_path / "run")] == pytest.approx(GOLDEN_LOSSES, abs=1e-2)


def test_resume_from_a_middle_checkpoint_equals_the_uninterrupted_run(tmp_path, tokens_dir, deterministic):
    out = tmp_path / "run"
    summary = train(tiny_config(save_steps=2), tokens_dir, out, progress=False)
    reference, losses = adapter(out / "adapter"), [r["loss"] for r in metrics(out)]
    for name in ("step-4", "step-6"):
        shutil.rmtree(out / "checkpoints" / name)
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    resumed = train(tiny_config(save_steps=2), tokens_dir, out, progress=False)
    assert relative_difference(reference, adapter(out / "adapter")) < 1e-2
    assert [r["loss"] for r in metrics(out)] == pytest.approx(losses, abs=1e-3)
    assert resumed["final_loss"] == pytest.approx(summary["final_loss"], abs=1e-3)


def test_merged_model_on_cuda_equals_base_plus_adapter(tmp_path, tokens_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    runtime = Runtime.resolve()
    train(tiny_config(max_steps=3, lr=0.05), tokens_dir, tmp_path / "run", progress=False)
    merged_dir = merge_adapter(runtime, TINY, tmp_path / "run" / "adapter", tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=runtime.dtype).to(runtime.device).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    tok = load_tokenizer(TINY)
    ids = torch.tensor([tok.encode("Q: 12 + 30 = ?\nA: ", add_special_tokens=False)], device=runtime.device)
    base = load_model(TINY, runtime)
    with torch.no_grad():
        plain = base(input_ids=ids).logits.float()
        with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapter")).eval()(
            input_ids=ids).logits.float()
        merged_logits = merged(input_ids=ids).logits.float()
    assert (with_adapter - plain).abs().max() > 0.1  # the adapter changes the model
    assert (merged_logits - with_adapter).abs().max() < 3e-2


ATTENTION = ["sdpa", "eager", "flash_attention_2"]


@pytest.mark.parametrize("attention", ATTENTION)
def test_packed_record_logits_equal_its_logits_alone(attention):
    """Packing relies on transformers masking attention per record from the restarting position ids."""
    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash-attn is not installed")
    model = load_model(TINY, Runtime.resolve()).eval()
    model.set_attn_implementation(attention)
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randint(0, 256, (n,), generator=g).tolist() for n in (7, 5, 9))
    row = collate(pack_rows([TokenRecord("a", a, a), TokenRecord("b", b, b)], 16)
                  + pack_rows([TokenRecord("c", c, c)], 16), 0, packed=True)
    row = {k: v.to(model.device) for k, v in row.items()}

    def hidden(ids, positions=None):
        return model.model(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state.float()

    with torch.no_grad():
        packed = hidden(row["input_ids"], row["position_ids"])
        alone = {k: hidden(torch.tensor([v], device=model.device))[0] for k, v in {"a": a, "b": b, "c": c}.items()}
        leaky = hidden(torch.tensor([a + b], device=model.device))[0]  # b attending to a
    tolerance = 5e-2
    assert (packed[0, :7] - alone["a"]).abs().max() < tolerance
    assert (packed[0, 7:12] - alone["b"]).abs().max() < tolerance
    assert (packed[1, :9] - alone["c"]).abs().max() < tolerance
    assert (leaky[7:12] - alone["b"]).abs().max() > 10 * tolerance


@pytest.mark.skipif(cuda_device_count() < 2, reason="needs 2 CUDA devices")
def test_two_nccl_processes_equal_one_process(tmp_path, tokens_dir):
    from safetensors.torch import load_file

    cfg = tiny_config(max_steps=3, save_steps=2, micro_batch_size=1)
    torchrun_train(cfg, tokens_dir, tmp_path / "ddp", timeout=600)
    single = train(cfg, tokens_dir, tmp_path / "one", progress=False)
    ddp = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp["world_size"] == 2 and ddp["device"] == "cuda:0" and ddp["learnable_tokens"] == single["learnable_tokens"]
    assert ddp["final_loss"] == pytest.approx(single["final_loss"], abs=1e-3)
    a = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors"))
    assert relative_difference(a, b) < 5e-2
