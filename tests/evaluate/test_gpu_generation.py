"""Generation on a CUDA device: batched predict equals one prompt at a time. Skipped without CUDA;
``make test-gpu`` runs them.

In fp32 the greedy tokens must be identical (a wrong padding mask, position or cache row changes them). In
bf16 a left-padded batch takes other kernels than a single row, so near-ties may flip a greedy token; there
the first-step logits are compared with a bf16 tolerance (sized on CPU, where they differ by < 4e-3).
"""

from __future__ import annotations

import pytest
import torch

from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.generation import _left_pad, load_inference_model
from mathlora.evaluate.predict import predict_file
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.modeling.runtime import PRECISION_ENV, Runtime

TINY = "tiny-random-llama"
PROMPTS = ["1 + 1 =", "A much longer prompt about 4204.22 + -2369.17, please compute it", "x",
           "面积为多少平方厘米？", "Compute 183.94^5 and give the answer", "7 * 8"]
pytestmark = pytest.mark.gpu


def test_batched_predict_equals_one_at_a_time_in_fp32(tmp_path, monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    runtime = Runtime.resolve()
    assert runtime.is_cuda
    write_jsonl(tmp_path / "test.jsonl", [{"id": str(i), "problem": p} for i, p in enumerate(PROMPTS)])
    summaries = {}
    for batch in (4, 1):
        cfg = EvalConfig(batch_size=batch, max_new_tokens=12)
        summaries[batch] = predict_file(cfg, runtime, TINY, None, tmp_path / "test.jsonl", tmp_path / f"b{batch}.jsonl",
                                        template="alpaca", progress=False)
    assert summaries[4]["device"].startswith("cuda") and summaries[4]["dtype"] == "float32"
    batched, single = (list(read_jsonl(tmp_path / f"b{b}.jsonl")) for b in (4, 1))
    assert [x["completion"] for x in batched] == [x["completion"] for x in single]
    assert [x["generated_tokens"] for x in batched] == [x["generated_tokens"] for x in single]


def test_batched_first_step_logits_match_one_at_a_time_in_bf16():
    model, tok = load_inference_model(TINY, None, Runtime.resolve())
    assert next(model.parameters()).dtype == torch.bfloat16
    encoded = [tok(p)["input_ids"] for p in PROMPTS]
    ids, mask = _left_pad(encoded, tok.pad_token_id, model.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()
        for row, e in enumerate(encoded):
            single = model(input_ids=torch.tensor([e], device=model.device)).logits[0, -1].float()
            assert (batched[row] - single).abs().max() < 3e-2, PROMPTS[row]
