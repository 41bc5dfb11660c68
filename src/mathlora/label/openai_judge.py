"""The openai judge: any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, SGLang, hosted).

``concurrency`` requests are in flight at once (asyncio + httpx). A request that times out, cannot
connect, gets 429 (``Retry-After`` honoured) or 5xx, or whose reply is malformed or holds no level
0..5, is retried with exponential backoff and jitter; after ``max_retries`` retries the record is
reported as failed with its last error. Other 4xx replies fail the record at once. Each verdict is
handed to ``on_result`` as soon as it is known. When the endpoint returns logprobs, the reply's
digit position gives ``difficulty_probs``; servers that refuse the ``logprobs`` option are asked
again without it. The API key is sent in the Authorization header only: never logged or stored (error
texts quoted from a server are scrubbed of it). ``timeout`` bounds each whole request (connect, send and
the complete reply), not each read, so a server dripping bytes cannot hold a request longer.
"""

from __future__ import annotations

import asyncio
import random
from typing import Callable, Sequence

from mathlora.errors import MathloraError
from mathlora.label.cache import Judgement
from mathlora.label.prompt import RubricPrompt
from mathlora.label.reply import parse_difficulty, probs_from_logprobs
# The client machinery is shared with the remote generation backend; these names stay importable from here.
from mathlora.modeling.openai_client import (  # noqa: F401
    RETRY_AFTER_CAP, AskAgain, FatalRequestError, GaveUp, RetryableError, RetryPolicy, auth_headers, check_base_url,
    endpoint_url, json_payload, parse_retry_after, post_json, run_pool, scrub, with_retries,
)


class LogprobsUnsupported(AskAgain):
    """The server refused the logprobs option: ask again without it (not counted as an attempt)."""


def chat_url(base_url: str) -> str:
    return endpoint_url(base_url, "chat/completions")


def read_completion(payload) -> tuple[int, list[float] | None]:
    """(level, probs) from a chat-completions JSON body; RetryableError when it holds no level."""
    try:
        choice = payload["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise RetryableError("malformed response: no choices[0].message.content") from None
    level, reason = parse_difficulty(text if isinstance(text, str) else None)
    if level is None:
        raise RetryableError(f"unusable reply ({reason})")
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return level, probs_from_logprobs(content if isinstance(content, list) else None)


class OpenAIJudge:
    def __init__(self, *, base_url: str, model: str, api_key: str, prompt: RubricPrompt, concurrency: int = 16,
                 timeout: float = 60.0, policy: RetryPolicy = RetryPolicy(), max_tokens: int = 8,
                 logprobs: bool = True, max_consecutive_failures: int = 200):
        self.url = chat_url(check_base_url(base_url, "label.endpoint.base_url"))
        self.model = model
        self._headers = auth_headers(api_key)
        self._secret = api_key
        self.prompt = prompt
        self.concurrency = concurrency
        self.timeout = timeout
        self.policy = policy
        self.max_tokens = max_tokens
        self.logprobs = logprobs
        self.max_consecutive_failures = max_consecutive_failures
        self._rng = random.Random()

    def body(self, record: dict) -> dict:
        body = {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                "messages": [{"role": "user",
                              "content": self.prompt.render(record["problem"], record.get("solution") or "")}]}
        if self.logprobs:
            body.update(logprobs=True, top_logprobs=10)
        return body

    async def ask_once(self, client, record: dict) -> tuple[int, list[float] | None]:
        response = await post_json(client, self.url, self.body(record), self._headers, self.timeout)
        if response.status_code == 400 and self.logprobs and "logprob" in response.text.lower():
            self.logprobs = False
            raise LogprobsUnsupported()
        return read_completion(json_payload(response))

    async def ask(self, client, record: dict) -> Judgement:
        """One record, with retries; never raises for a bad reply (it becomes a failed Judgement)."""
        try:
            (level, probs), attempts = await with_retries(lambda: self.ask_once(client, record), self.policy,
                                                          self._rng)
        except GaveUp as e:
            return Judgement(record["id"], error=scrub(str(e), self._secret), attempts=e.attempts)
        return Judgement(record["id"], difficulty=level, probs=probs, attempts=attempts)

    async def run(self, records: Sequence[dict], on_result: Callable[[Judgement], None]) -> None:
        state = {"failed_in_a_row": 0, "last_error": ""}

        async def handle(client, record) -> None:
            verdict = await self.ask(client, record)
            on_result(verdict)
            if verdict.ok:
                state["failed_in_a_row"] = 0
            else:
                state["failed_in_a_row"] += 1
                state["last_error"] = verdict.error
                if state["failed_in_a_row"] >= self.max_consecutive_failures:
                    raise MathloraError(
                        f"openai judge: {state['failed_in_a_row']} records failed in a row at {self.url} "
                        f"(last error: {state['last_error']}); finished labels are cached, rerun to resume")

        await run_pool(records, self.concurrency, self.timeout, handle)

    def judge(self, records: Sequence[dict], on_result: Callable[[Judgement], None]) -> None:
        if records:
            asyncio.run(self.run(records, on_result))
