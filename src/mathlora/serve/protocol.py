"""The OpenAI wire format ``mathlora serve`` speaks: validated requests and the replies built from them.

Requests are checked before any decoding: a body of at most ``Limits.body_bytes``, JSON, the fields' types,
``max_tokens`` within the server's limit, prompts within ``Limits.prompt_chars`` characters and at most
``Limits.prompts`` per request, one choice (``n: 1``), no ``echo`` or ``logprobs``. Anything else is a
:class:`RequestError` with its HTTP status (400, 404, 413) and one line saying why. Sampling fields
(``temperature``, ``top_p``, ``seed``, ...) are accepted and ignored: the server decodes greedily.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mathlora.evaluate.generation import cut_at_stop
from mathlora.arith.answers import extract_prediction_answer


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    max_tokens: int = 512          # the most new tokens a request may ask for
    default_max_tokens: int = 160  # when a request does not say
    prompt_chars: int = 4000       # per prompt (the problem, before the template)
    prompts: int = 32              # prompts per completions request
    body_bytes: int = 1_000_000
    body_seconds: float = 30.0     # the whole body must arrive within this


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stop: str | list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=2)


class CompletionRequest(_Request):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = None


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_Part] | None = None


class ChatRequest(_Request):
    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None


def parse_body(raw: bytes, limits: Limits) -> dict:
    if len(raw) > limits.body_bytes:
        raise RequestError(413, f"request body over {limits.body_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "request body is not JSON") from None
    except RecursionError:
        raise RequestError(400, "request body is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError(400, "request body must be a JSON object")
    return data


def validate(model: type[BaseModel], data: dict):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise RequestError(400, f"{where}: {first['msg']}", param=where) from None


def check_common(req: _Request, served: str, limits: Limits, max_tokens: int | None) -> tuple[int, list[str]]:
    """(max_tokens, stop strings) of a valid request; ``RequestError`` otherwise."""
    if req.model is not None and req.model != served:
        raise RequestError(404, f"model {req.model!r} is not served here (this server serves {served!r})",
                           "model", "model_not_found")
    if req.n != 1:
        raise RequestError(400, "n must be 1: the server decodes greedily, one choice per prompt", "n")
    budget = limits.default_max_tokens if max_tokens is None else max_tokens
    if budget > limits.max_tokens:
        raise RequestError(400, f"max_tokens {budget} is over this server's limit of {limits.max_tokens}",
                           "max_tokens")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
        raise RequestError(400, "stop: at most 4 strings of 1-64 characters", "stop")
    return budget, stops


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with each lone surrogate (``"\\ud800"`` in JSON: half of a UTF-16 pair, not a character, which
    no tokenizer takes) replaced by U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def check_prompt(text: str, limits: Limits, param: str) -> str:
    text = clean_text(text)
    if not text.strip():
        raise RequestError(400, f"{param} is empty", param)
    if len(text) > limits.prompt_chars:
        raise RequestError(400, f"{param} is {len(text)} characters, over this server's limit of "
                                f"{limits.prompt_chars}", param)
    return text


def completion_prompts(req: CompletionRequest, limits: Limits) -> list[str]:
    if req.echo:
        raise RequestError(400, "echo is not supported", "echo")
    if req.logprobs is not None:
        raise RequestError(400, "logprobs are not supported", "logprobs")
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if not prompts or len(prompts) > limits.prompts:
        raise RequestError(400, f"prompt: give 1 to {limits.prompts} prompts", "prompt")
    return [check_prompt(p, limits, "prompt") for p in prompts]


def chat_problem(req: ChatRequest, limits: Limits) -> str:
    """The problem of a chat: the last user message's text (the model answers one question at a time)."""
    if req.logprobs:
        raise RequestError(400, "logprobs are not supported", "logprobs")
    users = [m for m in req.messages if m.role == "user"]
    if not users:
        raise RequestError(400, "messages: no user message to answer", "messages")
    content = users[-1].content
    if isinstance(content, list):
        if any(part.type != "text" for part in content):
            raise RequestError(400, "messages: only text content is supported", "messages")
        content = "".join(part.text or "" for part in content)
    return check_prompt(content or "", limits, "messages")


def choice_fields(gen, stops: list[str], scope: str) -> dict:
    """text, finish_reason and mathlora's extras (the final answer, the calculator's counts) of one choice."""

    text, cut = cut_at_stop(gen.completion, stops)
    answer = extract_prediction_answer(text, scope)
    return {"text": text, "finish_reason": "stop" if gen.stopped or cut else "length",
            "answer": answer.text if answer is not None else None,
            "calculator": {"calls": gen.calculator_calls, "refused": gen.calculator_refused}}


def usage(gens) -> dict:
    prompt = sum(g.prompt_tokens for g in gens)
    completion = sum(g.generated_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_reply(gens, served: str, stops: list[str], scope: str) -> dict:
    choices = [{"index": i, "logprobs": None, **choice_fields(g, stops, scope)} for i, g in enumerate(gens)]
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": served, "choices": choices, "usage": usage(gens)}


def chat_reply(gen, served: str, stops: list[str], scope: str) -> dict:
    fields = choice_fields(gen, stops, scope)
    choice = {"index": 0, "message": {"role": "assistant", "content": fields.pop("text")}, "logprobs": None,
              **fields}
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": served, "choices": [choice], "usage": usage([gen])}


def stream_events(reply: dict) -> list[bytes]:
    """A finished reply as server-sent events: one chunk per choice, then ``[DONE]`` (the text is decoded
    whole, then sent)."""
    chat = reply["object"] == "chat.completion"
    events = []
    for choice in reply["choices"]:
        piece = dict(choice)
        if chat:
            piece["delta"] = piece.pop("message")
        chunk = {**reply, "object": "chat.completion.chunk" if chat else "text_completion", "choices": [piece]}
        chunk.pop("usage", None)
        events.append(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    return events
