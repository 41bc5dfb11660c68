"""Calculator-assisted decoding: forced tokens after ``<<expr=``, other rows untouched, refusals counted."""

import pytest
import torch

from mathlora.arith.calculator import CalculatorError
from mathlora.evaluate.generation import CalculatorHook, generate_greedy, load_inference_model
from mathlora.modeling.runtime import Runtime

CHARS = list("0123456789+-*/=.abcdefghijklmnopqrstuvwxyzXYZ ")


@pytest.fixture(scope="module")
def tokenizer():
    """A small BPE tokenizer where ``<<`` and ``>>`` are single tokens (as in SmolLM2's vocabulary)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"</s>": 0, "<": 1, ">": 2, "<<": 3, ">>": 4, **{c: 5 + i for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("<", "<"), (">", ">")]))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="</s>")


class BigramLM(torch.nn.Module):
    """A deterministic 'model': the next token is a fixed function of the last one (KV cache not needed)."""

    def __init__(self, tokenizer, chains: list[str]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        size = len(tokenizer)
        table = torch.zeros(size, dtype=torch.long)  # default: EOS (id 0)
        for chain in chains:
            ids = [tokenizer.convert_tokens_to_ids(t) for t in chain.split("|")]
            for a, b in zip(ids, ids[1:]):
                table[a] = b
        self.register_buffer("table", table)
        self.size = size

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=True,
                logits_to_keep=None):
        nxt = self.table[input_ids]
        logits = torch.nn.functional.one_hot(nxt, self.size).float() * 10

        class Out:
            pass

        out = Out()
        out.logits = logits
        return out


# X starts the calculator chain (the model writes a wrong 9 itself); Y a chain without annotations.
CHAINS = ["X|<<|2|+|3|=|9|>>|</s>", "Y|a|b|c|</s>"]


def _generate(model, tokenizer, prompts, **kw):
    return generate_greedy(model, tokenizer, prompts, max_new_tokens=12, max_length=64, progress=False, **kw)


def test_open_annotation_gets_the_calculator_result_and_other_rows_are_unchanged(tokenizer):
    model = BigramLM(tokenizer, CHAINS)
    prompts = ["1 X", "zz Y", "Y"]
    plain = _generate(model, tokenizer, prompts)
    calc = _generate(model, tokenizer, prompts, calculator=True)
    assert plain[0].completion == "<<2+3=9>>"
    assert calc[0].completion == "<<2+3=5>>"
    assert (calc[0].calculator_calls, calc[0].calculator_refused) == (1, 0)
    for p, c in zip(plain[1:], calc[1:]):
        assert c.token_ids == p.token_ids and c.completion == "abc"
        assert (c.calculator_calls, c.calculator_refused) == (0, 0)


def test_refused_expression_leaves_the_row_to_the_model(tokenizer, monkeypatch):
    def refuse(expr):
        raise CalculatorError("no")

    model = BigramLM(tokenizer, CHAINS)
    hook = CalculatorHook(tokenizer, calculate=refuse)
    ids = tokenizer("<<2+3", add_special_tokens=False)["input_ids"]
    assert hook.intercept(ids, tokenizer.convert_tokens_to_ids("=")) is CalculatorHook.REFUSED
    monkeypatch.setattr("mathlora.arith.calculator.calculate", refuse)
    plain = _generate(model, tokenizer, ["X", "Y"])
    calc = _generate(model, tokenizer, ["X", "Y"], calculator=True)
    assert [c.token_ids for c in calc] == [p.token_ids for p in plain]
    assert (calc[0].calculator_calls, calc[0].calculator_refused) == (0, 1)


def test_hook_triggers_only_inside_an_open_annotation(tokenizer):
    hook = CalculatorHook(tokenizer)

    def emitted(text, next_token="="):
        got = hook.intercept(tokenizer(text, add_special_tokens=False)["input_ids"],
                             tokenizer.convert_tokens_to_ids(next_token))
        return None if got is None else tokenizer.decode(got)

    assert emitted("a <<12*3") == "=36>>"
    assert emitted("<<1+1=2>> then 4") is None           # closed annotation: plain '=' is not a call
    assert emitted("x") is None
    assert emitted("<<a=b") is None                       # the expression's '=' came earlier
    assert emitted("<<12*3", "3") is None                 # only a token with '=' can close it


def test_a_merged_equals_token_takes_the_calculators_sign():
    """SmolLM2 writes '=-' as one token: the model's sign is replaced by the calculator's whole result."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"</s>": 0, "<": 1, ">": 2, "<<": 3, ">>": 4, "=": 5, "-": 6, "=-": 7,
             **{c: 8 + i for i, c in enumerate("0123456789+ ")}}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[("<", "<"), (">", ">"), ("=", "-")]))
    raw.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="</s>", pad_token="</s>")
    hook = CalculatorHook(tok)
    ids = tok("<<2 - 5", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(hook.intercept(ids, vocab["=-"])) == ["=-", "3", ">>"]
    ids = tok("<<5 - 2", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(hook.intercept(ids, vocab["=-"])) == ["=", "3", ">>"]


def test_tiny_model_with_calculator_equals_without_when_it_never_opens_an_annotation():
    model, tok = load_inference_model("tiny-random-llama", None, Runtime.resolve())
    prompts = ["1 + 1 =", "A longer prompt about 4204.22 + -2369.17", "x"]
    plain = generate_greedy(model, tok, prompts, max_new_tokens=10, max_length=128, progress=False)
    calc = generate_greedy(model, tok, prompts, max_new_tokens=10, max_length=128, progress=False, calculator=True)
    for p, c in zip(plain, calc):
        if c.calculator_calls == 0 and c.calculator_refused == 0:
            assert c.token_ids == p.token_ids
