"""CUDA checks of the training speed levers (``pytest -m gpu``; skipped without a GPU).

* the memory estimate against ``torch.cuda.max_memory_allocated`` for each recompute mode (8B widths, 2
  layers: the per-layer and LM-head terms at full size, in a few GB);
* ``mathlora.train`` on CUDA: the auto plan, fused AdamW, bf16, Liger when installed, CUDA graphs over
  fixed-shape rows; losses close to the plain eager run.
"""

import pytest
import torch

from mathlora.modeling.runtime import Runtime, cuda_available
from mathlora.train.memory import GIB, ModelShape, estimate_bytes

from .conftest import tiny_config, train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")]

WIDE = "tiny-random-llama:layers=2,hidden=4096,heads=32,kv_heads=8,inter=14336,vocab=128256"


def _peak_of_one_step(layers: int, selective: bool, rows: int = 16, seq: int = 256) -> tuple[int, ModelShape]:
    from mathlora.modeling.models import load_model
    from mathlora.train import speed
    from mathlora.train.config import LoraConfig
    from mathlora.train.lora import apply_lora
    from mathlora.train.loss import LearnableTokenLoss

    torch.cuda.empty_cache()
    model = apply_lora(load_model(WIDE, Runtime("cuda", "bf16")), LoraConfig(r=8))
    model.config.use_cache = False
    speed.apply_recompute(model.get_base_model(), layers=layers, selective=selective)
    loss_fn = LearnableTokenLoss(model).train()
    ids = torch.randint(3, 32000, (rows, seq), device="cuda")
    pos = torch.arange(seq, device="cuda").expand(rows, -1)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    loss, _ = loss_fn(ids, pos, torch.roll(ids, -1, 1))
    loss.backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    shape = speed.model_shape(model, dtype=torch.bfloat16)
    del model, loss_fn, loss
    torch.cuda.empty_cache()
    return peak, shape


@pytest.mark.parametrize("layers,selective", [(0, False), (0, True), (2, False)])
def test_memory_estimate_within_15_percent_of_the_measured_peak(layers, selective):
    peak, shape = _peak_of_one_step(layers, selective)
    est = estimate_bytes(shape, tokens=16 * 256, recompute_layers=layers, selective=selective)
    print(f"recompute layers={layers} selective={selective}: measured {peak / GIB:.2f} GiB, "
          f"estimated {est / GIB:.2f} GiB")
    assert abs(est - peak) / peak < 0.15


def test_cuda_training_levers_match_the_plain_run(tmp_path):
    from .conftest import arithmetic_pairs, write_tokens

    tokens = write_tokens(tmp_path / "tokens", arithmetic_pairs(48, seed=3))
    # the runtime comes from the gpu marker's pin (conftest): cuda, bf16
    base = dict(max_steps=4, global_batch_size=16, pack_length=64)
    plain = train(tiny_config(**base, micro_batch_size=4, liger=False), tokens, tmp_path / "plain", progress=False)
    auto = train(tiny_config(**base, gradient_checkpointing="auto", micro_batch_size="auto"), tokens,
                 tmp_path / "auto", progress=False)
    graphs = train(tiny_config(**base, micro_batch_size=4, liger=False, compile="reduce-overhead"), tokens,
                   tmp_path / "graphs", progress=False)
    assert plain["speed"]["fused_adamw"] and auto["speed"]["recompute"] == "none"
    assert auto["speed"]["micro_batch_size"] == 16
    for other in (auto, graphs):
        assert other["final_loss"] == pytest.approx(plain["final_loss"], rel=0.05)
    assert plain["flops"]["peak_tflops"] is None or plain["flops"]["mfu"] is not None
