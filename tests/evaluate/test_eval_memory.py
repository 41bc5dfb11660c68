"""eval.batch_size: auto: the KV-cache arithmetic and its CPU behaviour."""

from types import SimpleNamespace

from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.memory import auto_batch_size, kv_bytes_per_token, resolve_batch_size, sequence_bytes
from mathlora.evaluate.predict import predict_file
from mathlora.run_dir.records import read_jsonl, write_jsonl

SMOLLM2 = SimpleNamespace(num_hidden_layers=30, hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
                          intermediate_size=1536, vocab_size=49152)
LLAMA3_8B = SimpleNamespace(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                            intermediate_size=14336, vocab_size=128256)
GIB = 2**30


def test_kv_cache_bytes():
    assert kv_bytes_per_token(SMOLLM2, 2) == 2 * 30 * 3 * 64 * 2 == 23_040
    assert kv_bytes_per_token(LLAMA3_8B, 2) == 2 * 32 * 8 * 128 * 2 == 131_072
    assert sequence_bytes(LLAMA3_8B, 512, 2) == 131_072 * 512 + 512 * (3 * 14336 + 4 * 4096) * 2 + 128256 * 8


def test_auto_batch_size_by_memory():
    # 8B, 512 tokens per sequence (64 MiB KV + 58 MiB prefill), 50 GiB left after the weights: 416
    assert auto_batch_size(LLAMA3_8B, max_length=512, dtype_bytes=2, budget_bytes=50 * GIB, prompts=5000) == 416
    assert auto_batch_size(LLAMA3_8B, max_length=512, dtype_bytes=2, budget_bytes=50 * GIB, prompts=300) == 300
    assert auto_batch_size(SMOLLM2, max_length=512, dtype_bytes=2, budget_bytes=60 * GIB, prompts=10**6) == 3343
    assert auto_batch_size(SMOLLM2, max_length=512, dtype_bytes=2, budget_bytes=120 * GIB, prompts=10**6) == 4096
    assert auto_batch_size(SMOLLM2, max_length=512, dtype_bytes=2, budget_bytes=1, prompts=10) == 1
    assert auto_batch_size(SMOLLM2, max_length=512, dtype_bytes=2, budget_bytes=None, prompts=10) == 10
    assert auto_batch_size(SMOLLM2, max_length=512, dtype_bytes=2, budget_bytes=None, prompts=100) == 16


def test_auto_on_cpu_predicts_like_a_fixed_batch(tmp_path):
    from mathlora.evaluate.generation import load_inference_model

    from mathlora.modeling.runtime import Runtime

    lm, _ = load_inference_model("tiny-random-llama", None, Runtime("cpu", "fp32"))
    assert resolve_batch_size("auto", lm, max_length=64, prompts=3) == 3 and resolve_batch_size(5, lm, max_length=64,
                                                                                                prompts=3) == 5
    write_jsonl(tmp_path / "t.jsonl", [{"id": str(i), "problem": f"{i} + {i}"} for i in range(3)])
    a = predict_file(EvalConfig(batch_size="auto", max_new_tokens=4), Runtime.resolve(), "tiny-random-llama", None,
                     tmp_path / "t.jsonl", tmp_path / "a.jsonl", template="alpaca", progress=False)
    predict_file(EvalConfig(batch_size=1, max_new_tokens=4), Runtime.resolve(), "tiny-random-llama", None, tmp_path / "t.jsonl",
                 tmp_path / "b.jsonl", template="alpaca", progress=False)
    assert a["batch_size"] == 3
    assert [x["completion"] for x in read_jsonl(tmp_path / "a.jsonl")] == \
        [x["completion"] for x in read_jsonl(tmp_path / "b.jsonl")]
