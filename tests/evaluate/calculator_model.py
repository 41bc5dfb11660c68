"""A deterministic calculator-style "model", three ways: a torch module for our decoding loop, a transformers
``PreTrainedModel`` for ``model.generate``, and a loopback completions server (vLLM's stop semantics).

The model knows each problem's worked solution (``mathlora.arith.worked.render`` of the real family's plan, in
``calculator`` style) and writes it character by character, except the values: after ``<<expr=`` it writes its
own wrong guess ``7`` unless the calculator filled the value in, and its final answer copies the last value
it sees. So with the calculator its answers are right, without it wrong: the behaviour of the demo's model.

The tokenizer is one token per character, with ``<<`` and ``>>`` single tokens (as in SmolLM2), so every way
of counting tokens agrees.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter

import torch

from mathlora.arith.calculator import CalculatorError
from mathlora.arith.families import recognise
from mathlora.modeling.templates import render_prompt
from mathlora.arith.worked import render
from tests.loopback import LoopbackServer, pick_fault, send_json

WRONG = "7"
MARKER = "### Response: "
PROBLEMS = ["计算 1.5 + 2.25 等于多少？", "计算 -3828.45 - 756.08 等于多少？", "计算 4204.22 * 3.5 等于多少？",
            "求以下数据的平均值：[74, 13, 94]", "计算 5636.97 的平方根？",
            "计算 -711.31 的 4 次方？", "解方程 -67x + -85 = 0", "计算 5 / 0 等于多少？", "写一首诗。"]
# a division by zero the calculator refuses; a problem the model does not know (it stops at once)
MANUAL = {"计算 5 / 0 等于多少？": f"<<5 / 0={WRONG}>>\n答案：{WRONG}"}


def solution(problem: str) -> str:
    if problem in MANUAL:
        return MANUAL[problem]
    found = recognise(problem)
    if found is None:
        return ""
    try:
        return render(found.plan(), "calculator")
    except CalculatorError:
        return ""


def _parts(text: str) -> list[tuple[str, str]]:
    """The solution as literal text and value slots; the last line's answer copies the last value."""
    parts: list[tuple[str, str]] = []
    body, _, last = text.rpartition("\n")
    pos = 0
    for m in re.finditer(r"<<[^<>=]*=([^<>]*)>>", body):
        parts += [("lit", body[pos:m.start(1)]), ("val", "")]
        pos = m.end(1)
    parts.append(("lit", body[pos:] + "\n" if body else ""))
    head = last.split("：", 1)
    parts += [("lit", head[0] + "："), ("ans", "")] if len(head) == 2 else [("lit", last)]
    return parts


def remainder(problem: str, written: str) -> str:
    """What the model writes after ``written``, up to where the next token is decided ('' = EOS)."""
    pos, last_value = 0, WRONG
    for kind, text in _parts(solution(problem)):
        if kind == "val":
            end = written.find(">>", pos)
            if end < 0:
                partial = written[pos:]
                return (WRONG[len(partial):] if WRONG.startswith(partial) else "") + ">>"
            last_value, pos = written[pos:end], end
            continue
        text = last_value if kind == "ans" else text
        rest = written[pos:]
        if rest.startswith(text):
            pos += len(text)
        elif text.startswith(rest):
            return text[len(rest):]
        else:
            return ""
    return ""


def split_prompt(text: str) -> tuple[str, str]:
    """(problem, text written after the template) of a rendered alpaca prompt + completion."""
    head, _, written = text.partition(MARKER)
    return head.split("### Instruction:\n", 1)[-1].rsplit("\n\n", 1)[0], written


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = set(map(chr, range(32, 127))) | {"\n"}
    for p in PROBLEMS:
        chars |= set(render_prompt("alpaca", p)) | set(solution(p))
    chars |= set("答案：√")
    vocab = {"</s>": 0, "<<": 1, ">>": 2, **{c: 3 + i for i, c in enumerate(sorted(chars))}}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[("<", "<"), (">", ">")]))
    raw.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="</s>", pad_token="</s>")


def next_token(tokenizer, text: str) -> int:
    """The model's greedy choice after ``text`` (prompt + completion so far)."""
    rest = remainder(*split_prompt(text))
    if not rest:
        return tokenizer.eos_token_id
    return tokenizer.convert_tokens_to_ids(rest[:2] if rest[:2] in ("<<", ">>") else rest[0])


def script_logits(tokenizer, ids, mask) -> torch.Tensor:
    """(rows, vocab) logits: 10 for each row's choice after its unpadded ids, 0 elsewhere."""
    logits = torch.zeros(ids.shape[0], len(tokenizer))
    for row in range(ids.shape[0]):
        kept = [int(t) for t, m in zip(ids[row].tolist(), mask[row].tolist()) if m]
        logits[row, next_token(tokenizer, tokenizer.decode(kept))] = 10.0
    return logits


def script_model(tokenizer):
    """The model as a transformers ``PreTrainedModel``: our loop (KV cache: the ids ride in the cache's keys)
    and ``generate`` both decode it."""
    from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    # the output's cache field: ``cache`` in transformers 5, ``past_key_values`` before
    CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"

    class ScriptConfig(PretrainedConfig):
        model_type = "mathlora-script"

    class ScriptLM(PreTrainedModel, GenerationMixin):
        config_class = ScriptConfig

        def __init__(self, config):
            super().__init__(config)
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, use_cache=None,
                    logits_to_keep=None, **kwargs):
            ids = input_ids
            cache = cache if cache is not None else kwargs.get("past_key_values")
            if cache is not None and use_cache is not False:
                keys = input_ids[:, None, :, None].float()
                ids = cache.update(keys, keys, 0)[0][:, 0, :, 0].long()
            mask = attention_mask if attention_mask is not None else torch.ones_like(ids)
            logits = script_logits(tokenizer, ids, mask[:, -ids.shape[1]:])
            return CausalLMOutputWithPast(logits=logits[:, None, :], **{CACHE_FIELD: cache})

    config = ScriptConfig(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, num_hidden_layers=1)
    return ScriptLM(config).eval()


class ScriptServer(LoopbackServer):
    """The model behind an OpenAI-compatible completions endpoint, with vLLM's ``stop``,
    ``include_stop_str_in_output`` and ``stop_reason``; ``mode`` "refuse_include" answers 400 to that field,
    "no_info" ignores it and reports no ``stop_reason``. Faults per (prompt, attempt) as the other stubs."""

    def __init__(self, tokenizer, *, mode: str = "vllm", fault_rate: float = 0.0, faults=("500", "429"),
                 seed: int = 0):
        self.tokenizer, self.mode, self.fault_rate, self.faults, self.seed = tokenizer, mode, fault_rate, faults, seed
        self.retry_after, self.slow_seconds = "0", 0.5
        self.counts: Counter = Counter()
        self.faults_served: Counter = Counter()
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # a fast tokenizer is not to be shared between threads

    def on_post(self, handler, raw: bytes) -> None:
        request = json.loads(raw or b"{}")
        prompt = request.get("prompt")
        if not handler.path.endswith("/completions") or not isinstance(prompt, str):
            return send_json(handler, 404, b'{"error": "not a completions request"}')
        with self._lock:
            self.bodies.append(request)
            self.counts[prompt] += 1
            attempt = self.counts[prompt]
        if self.mode == "refuse_include" and "include_stop_str_in_output" in request:
            return send_json(handler, 400, b'{"error": "unknown field include_stop_str_in_output"}')
        if self.serve_fault(handler, pick_fault(self.seed, prompt, attempt, self.fault_rate, self.faults)):
            return None
        with self._model_lock:
            text, finish, reason, count = self.decode(prompt, request)
            prompt_tokens = len(self.tokenizer(prompt)["input_ids"])
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        if self.mode != "no_info":
            choice["stop_reason"] = reason
        body = {"id": "cmpl-script", "object": "text_completion", "model": request.get("model"), "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": count}}
        return send_json(handler, 200, json.dumps(body).encode())

    def decode(self, prompt: str, request: dict) -> tuple[str, str, str | None, int]:
        stops = request.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        include = bool(request.get("include_stop_str_in_output")) and self.mode == "vllm"
        ids: list[int] = []
        for _ in range(int(request.get("max_tokens") or 16)):
            token = next_token(self.tokenizer, prompt + self.tokenizer.decode(ids))
            if token == self.tokenizer.eos_token_id:
                return self.tokenizer.decode(ids), "stop", None, len(ids) + 1
            ids.append(token)
            text = self.tokenizer.decode(ids)
            for stop in stops:
                at = text.find(stop)
                if at >= 0:
                    return text[:at + len(stop)] if include else text[:at], "stop", stop, len(ids)
        return self.tokenizer.decode(ids), "length", None, len(ids)
