"""``mathlora.evaluate.calculator_hf``: greedy ``model.generate`` with the calculator's LogitsProcessor gives the token
ids of our own calculator-assisted loop (``generate_greedy(calculator=True)``)."""

import pytest
import torch
from calculator_model import PROBLEMS, build_tokenizer, script_model
from transformers import LogitsProcessorList

from mathlora.evaluate.calculator_hf import CalculatorLogitsProcessor
from mathlora.evaluate.generation import generate_greedy, load_inference_model
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.templates import render_prompt


def _loop(model, tok, prompts, budget):
    return generate_greedy(model, tok, prompts, max_new_tokens=budget, max_length=4096, progress=False,
                           calculator=True)


def _hf(model, tok, prompts, budget, processor, batched=True):
    """Generated ids per prompt (up to the first EOS, as our loop keeps them)."""
    tok.padding_side = "left"
    groups = [prompts] if batched else [[p] for p in prompts]
    ids, calls = [], []
    for group in groups:
        enc = tok(group, return_tensors="pt", padding=True, add_special_tokens=True, return_token_type_ids=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=budget, do_sample=False, num_beams=1,
                                 pad_token_id=tok.pad_token_id, logits_processor=LogitsProcessorList([processor]))
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            ids.append(row[:row.index(tok.eos_token_id)] if tok.eos_token_id in row else row)
        calls += processor.calls
    return ids, calls


def test_generate_with_the_processor_gives_our_loops_ids_on_a_calculator_style_stub():
    tok = build_tokenizer()
    model = script_model(tok)
    prompts = [render_prompt("alpaca", p) for p in PROBLEMS]
    for budget in (15, 160):   # 15: the budget ends inside annotations
        loop = _loop(model, tok, prompts, budget)
        processor = CalculatorLogitsProcessor(tok)
        ids, calls = _hf(model, tok, prompts, budget, processor)
        assert ids == [g.token_ids for g in loop]
        assert calls == [g.calculator_calls for g in loop]
        assert processor.refused == [g.calculator_refused for g in loop]
    assert sum(calls) >= 6 and sum(processor.refused) == 1 and loop[0].completion.endswith("答案：3.75")
    # without the processor, generate writes the model's own (wrong) values
    plain = model.generate(**tok([prompts[0]], return_tensors="pt", return_token_type_ids=False), max_new_tokens=60,
                           do_sample=False,
                           pad_token_id=tok.pad_token_id)
    assert "答案：7" in tok.decode(plain[0], skip_special_tokens=True)


@pytest.fixture(scope="module")
def tiny():
    """tiny-random-llama with a bias on its output layer (0 at first): a real KV cache and left padding."""
    model, tok = load_inference_model("tiny-random-llama", None, Runtime.resolve())
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
    model.lm_head = biased.eval()
    return model, tok


@pytest.mark.parametrize("equals_bias", [0.0, 0.5])
@pytest.mark.parametrize("batched", [False, True])
def test_generate_with_the_processor_gives_our_loops_ids_on_the_tiny_model(tiny, batched, equals_bias):
    """The random model never opens an annotation itself (the calculator's forcing is the stub's test above);
    with a bias on '=' every token it writes is one the processor must look at and leave alone."""
    model, tok = tiny
    with torch.no_grad():
        model.lm_head.bias[tok.convert_tokens_to_ids("=")] = equals_bias
    prompts = ["1 + 1 =", "计算 1.5 + 2.25 等于多少？", "x", "<<12*3", "a longer prompt about 4204.22 + -2369.17"]
    loop = _loop(model, tok, prompts, 16)
    processor = CalculatorLogitsProcessor(tok)
    ids, calls = _hf(model, tok, prompts, 16, processor, batched=batched)
    assert ids == [g.token_ids for g in loop]
    assert calls == [g.calculator_calls for g in loop] == [0] * len(prompts)
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, return_token_type_ids=False)
    plain = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
    if batched:  # without the processor: the same ids (it changed nothing)
        assert [row[:row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
                for row in plain[:, enc["input_ids"].shape[1]:].tolist()] == ids
    if equals_bias:
        assert sum(g.completion.count("=") for g in loop) >= 8 * len(prompts)
