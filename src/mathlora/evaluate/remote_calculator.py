"""Calculator-assisted decoding through an OpenAI-compatible completions server (vLLM, SGLang, ...).

The GSM8K paper's sampling-time calculator, over HTTP. Each prompt is decoded in pieces:

1. ``POST /completions`` for prompt + text so far, greedy, ``stop: ["="]`` (with vLLM's
   ``include_stop_str_in_output``), ``max_tokens`` = what is left of the budget.
2. A piece that stopped at ``=`` closing an open ``<<expr``: the calculator's ``value>>`` is appended and the
   continuation requested. A ``=`` anywhere else is kept and decoding goes on. An expression the calculator
   refuses is left to the model, which writes its own value (counted as refused).
3. The model's own stop (EOS) or the token budget ends the completion.

The budget counts every token between the prompt and the end of the text, the calculator's included, as the
server counts them: the latest request's ``usage.prompt_tokens`` minus the first's, plus its
``usage.completion_tokens``. The calculator's text is not tokenized here, so a request asks for at most the
budget less that text's characters (never fewer tokens than it holds, for ASCII digits); a piece cut short by
that estimate is simply continued. A value that may not fit the budget is sent whole once: if the server's
count says it overflows, it is cut by characters and the completion ends. The completion is the one local
decoding gives (``evaluate.generation``), but for a budget ending inside a value where characters and
tokens part.

Where a piece stopped: a text ending in ``=`` (``include_stop_str_in_output``), else vLLM's ``stop_reason`` /
SGLang's ``matched_stop``. On a server that reports neither (and refused the field), a stop inside an open
annotation is its ``=``; any other stop is told apart by one more request for a single token without stop
strings: greedy decoding writes the ``=`` again, or stops again.

Each continuation's prompt is text, which the server tokenizes again: where the model wrote a token split that
tokenizing the text does not give, the continuation can differ from local decoding, and a merge across the
prompt's end (``Response: `` + ``<<``) counts one token fewer. On the demo's tuned SmolLM2 (40 held-out
problems, a transformers server with vLLM's stop semantics) 38 completions were identical, every
calculator-family one among them; the counts were one lower.

Each request goes through the shared client (``mathlora.modeling.openai_client``): retries with backoff, the per-request
deadline, ``Retry-After``; prompts run ``concurrency`` at once, their pieces one after another. A server with
prefix caching (vLLM's automatic prefix caching) reuses the KV cache of prompt + text so far, so a
continuation costs about its new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mathlora.evaluate.generation import Generation, cut_at_stop
from mathlora.modeling.openai_client import AskAgain, GaveUp, RetryableError, json_payload
from mathlora.arith import calculator as calculator_module
from mathlora.arith.calculator import CLOSE, EQUALS, CalculatorError, open_annotation

STOP = EQUALS  # a piece stops at the annotation's "="
_INCLUDE = "include_stop_str_in_output"
_NO_INFO = object()


def read_choice(payload) -> tuple[str, bool, int | None, int | None]:
    """(text, stopped at a stop token, completion tokens, prompt tokens) of a completions reply."""
    try:
        choice = payload["choices"][0]
        text = choice["text"]
    except (KeyError, IndexError, TypeError):
        raise RetryableError("malformed response: no choices[0].text") from None
    if not isinstance(text, str):
        raise RetryableError("malformed response: choices[0].text is not a string")
    usage = payload.get("usage") if isinstance(payload, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    completion_tokens = usage.get("completion_tokens")
    prompt_tokens = usage.get("prompt_tokens")
    return (text, choice.get("finish_reason") == "stop",
            completion_tokens if isinstance(completion_tokens, int) else None,
            prompt_tokens if isinstance(prompt_tokens, int) else None)


def open_expression(text: str) -> str | None:
    """The expression of an annotation that ``text`` closes with its last character, the ``=`` of
    ``<<expr=`` (the first ``=`` after the last ``<<``, no ``>>`` after it); else None."""
    found = open_annotation(text)
    return text[found[0]:-1] if found is not None and found[1] == len(text) - 1 else None


def inside_annotation(text: str) -> bool:
    """``text`` ends inside a ``<<`` that has neither its ``=`` nor its ``>>`` yet."""
    found = open_annotation(text)
    return found is not None and found[1] < 0


@dataclass(frozen=True)
class Piece:
    text: str                      # the piece, its '=' included when it stopped there
    at_stop: bool                  # stopped at the '=' stop string
    eos: bool                      # the model's own stop
    prompt_tokens: int | None
    completion_tokens: int | None
    unsure: bool = False           # a stop the server did not say the reason of (the '=' or the model's own)


def read_piece(payload, text_so_far: str) -> Piece:
    """Where one completions reply stopped (see the module docstring)."""
    text, stopped, completion_tokens, prompt_tokens = read_choice(payload)
    if not stopped:
        return Piece(text, False, False, prompt_tokens, completion_tokens)
    choice = payload["choices"][0]
    reason = choice.get("stop_reason", choice.get("matched_stop", _NO_INFO))
    if text.endswith(STOP):  # a stop at the first '=' keeps no other '=': this one is the stop string
        return Piece(text, True, False, prompt_tokens, completion_tokens)
    if reason == STOP or (reason is _NO_INFO and inside_annotation(text_so_far + text)):
        return Piece(text + STOP, True, False, prompt_tokens, completion_tokens)
    return Piece(text, False, True, prompt_tokens, completion_tokens, unsure=reason is _NO_INFO)


class CalculatorLoop:
    """Decodes prompts piece by piece through a :class:`~mathlora.evaluate.remote.CompletionsClient`."""

    def __init__(self, client, calculate: Callable[[str], str] | None = None):
        self.client = client
        self.calculate = calculate or calculator_module.calculate
        self.include_stop = True  # dropped (and the request repeated) if the server refuses the field

    async def _ask(self, http, prompt: str, text: str, max_tokens: int, min_tokens: int) -> Piece:
        body = {**self.client.body(prompt + text, max_tokens, min_tokens), "stop": [STOP]}
        if self.include_stop:
            body[_INCLUDE] = True
        response = await self.client.post(http, body)
        if response.status_code == 400 and _INCLUDE in body and _INCLUDE in response.text:
            self.include_stop = False
            raise AskAgain()
        return read_piece(json_payload(response), text)

    async def _stopped_at_equals(self, http, prompt: str, text: str) -> bool:
        """Whether the model's next token after ``text`` writes ``=`` (one token, no stop strings)."""
        async def ask() -> bool:
            response = await self.client.post(http, self.client.body(prompt + text, 1, 0))
            return read_choice(json_payload(response))[0].startswith(STOP)

        return await self.client.retry(ask)

    async def complete(self, http, prompt: str, max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        """One prompt's calculator-assisted completion; ``GaveUp`` when a piece's request keeps failing."""

        text, used, pending = "", 0, 0   # pending: characters the calculator appended since the last reply
        first: int | None = None
        fallback: str | None = None      # the text with the value cut by characters, should the whole not fit
        calls = refused = requests = 0
        stopped = False
        while True:
            if requests > 2 * max_new_tokens + 2:  # each piece adds text; a server whose counts never grow
                raise GaveUp("the server's usage counts do not grow; cannot keep the token budget", requests)
            room = max_new_tokens - used - pending
            if room <= 0 and not (pending and used < max_new_tokens):
                if fallback is not None:  # no room for any of the value's tokens
                    text, pending = fallback, max(0, max_new_tokens - used)
                break
            piece = await self.client.retry(
                lambda: self._ask(http, prompt, text, max(room, 1), min_new_tokens if not requests else 0))
            requests += 1
            if first is None:
                first = piece.prompt_tokens
            exact = None not in (first, piece.prompt_tokens, piece.completion_tokens)
            before = piece.prompt_tokens - first if exact else used + pending
            if before > max_new_tokens and fallback is not None:  # the whole value does not fit: cut it
                text, pending = fallback, max_new_tokens - used
                break
            if before >= max_new_tokens:  # the calculator's text filled the budget
                used, pending = before, 0
                break
            added = piece.completion_tokens if piece.completion_tokens is not None else len(piece.text) + piece.eos
            used, pending, fallback = before + added, 0, None
            text += piece.text
            text, cut = cut_at_stop(text, getattr(self.client, "stop", ()))
            if cut:  # a stop string (the template's next section): the completion ends before it
                stopped = True
                break
            if piece.unsure:
                requests += 1
                if await self._stopped_at_equals(http, prompt, text):
                    piece = Piece(STOP, True, False, None, None)
                    text += STOP
            if piece.eos:
                stopped = True
                break
            if not piece.at_stop:  # cut by max_tokens: go on while the budget lasts
                if not piece.text:
                    break
                continue
            expr = open_expression(text)
            if expr is None:
                continue
            try:
                value = self.calculate(expr)
            except CalculatorError:
                refused += 1
                continue
            calls += 1
            add, left = value + CLOSE, max_new_tokens - used
            if len(add) > left:  # it may not fit: the next reply's prompt_tokens says, else it is cut
                fallback = text + add[:max(left, 0)]
            text, pending = text + add, len(add)
        return Generation(text, [], used + pending, stopped, first or 0, calculator_calls=calls,
                          calculator_refused=refused, requests=requests)
