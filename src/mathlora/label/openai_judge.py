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
import email.utils
import random
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Sequence
from urllib.parse import urlsplit

from mathlora.errors import MathloraError
from mathlora.label.cache import Judgement
from mathlora.label.prompt import RubricPrompt
from mathlora.label.reply import parse_difficulty, probs_from_logprobs

RETRY_AFTER_CAP = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Backoff before retry number ``attempt`` (1-based): base * 2^(attempt-1), capped, jittered x0.5-1.5."""
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.5)


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class LogprobsUnsupported(Exception):
    """The server refused the logprobs option: ask again without it (not counted as an attempt)."""


class FatalRequestError(Exception):
    """A reply that asking again will not fix (4xx other than 429)."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, min(RETRY_AFTER_CAP, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(RETRY_AFTER_CAP, when.timestamp() - time.time()))


def check_base_url(base_url: str) -> str:
    """``base_url`` when it is a usable http(s) URL with a host and a valid port; a one-line error otherwise."""
    try:
        parts = urlsplit(base_url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as e:
        raise MathloraError(f"label.base_url {base_url!r} is not a usable URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MathloraError(f"label.base_url {base_url!r} must be an http(s) URL with a host, "
                            "e.g. http://127.0.0.1:8000/v1")
    if port == 0:
        raise MathloraError(f"label.base_url {base_url!r}: port 0 is not a server port")
    return base_url


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (an API key) replaced by ``***``."""
    if secret and len(secret) >= 4 and secret != "EMPTY":
        text = text.replace(secret, "***")
    return text


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


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
        self.url = chat_url(check_base_url(base_url))
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"}
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
        import httpx

        try:
            response = await asyncio.wait_for(client.post(self.url, json=self.body(record), headers=self._headers),
                                              self.timeout)
        except (httpx.TimeoutException, asyncio.TimeoutError):
            raise RetryableError(f"timeout: no complete reply within {self.timeout:g}s") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise FatalRequestError(f"bad URL {self.url}: {e}") from None
        except httpx.TransportError as e:
            raise RetryableError(f"connection error: {type(e).__name__}: {e}") from None
        status = response.status_code
        if status == 429:
            raise RetryableError("HTTP 429 rate limited", parse_retry_after(response.headers.get("retry-after")))
        if status >= 500:
            raise RetryableError(f"HTTP {status}: {response.text[:120]}")
        if status != 200:
            if status == 400 and self.logprobs and "logprob" in response.text.lower():
                self.logprobs = False
                raise LogprobsUnsupported()
            raise FatalRequestError(f"HTTP {status}: {response.text[:160]}")
        try:
            payload = response.json()
        except ValueError:
            raise RetryableError("malformed response: body is not JSON") from None
        return read_completion(payload)

    async def ask(self, client, record: dict) -> Judgement:
        """One record, with retries; never raises for a bad reply (it becomes a failed Judgement)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                level, probs = await self.ask_once(client, record)
                return Judgement(record["id"], difficulty=level, probs=probs, attempts=attempt)
            except LogprobsUnsupported:
                attempt -= 1
            except FatalRequestError as e:
                return Judgement(record["id"], error=scrub(str(e), self._secret), attempts=attempt)
            except RetryableError as e:
                if attempt > self.policy.max_retries:
                    return Judgement(record["id"], error=scrub(str(e), self._secret), attempts=attempt)
                wait = e.retry_after if e.retry_after is not None else self.policy.delay(attempt, self._rng)
                await asyncio.sleep(wait)

    async def run(self, records: Sequence[dict], on_result: Callable[[Judgement], None]) -> None:
        import httpx

        queue: asyncio.Queue = asyncio.Queue()
        for record in records:
            queue.put_nowait(record)
        state = {"failed_in_a_row": 0, "last_error": ""}

        async def worker(client) -> None:
            while True:
                try:
                    record = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
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

        # One client (one keep-alive connection) per worker: httpcore's shared pool scans every
        # connection on each request, which costs more CPU than the requests themselves at 32+.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        tls = ssl.create_default_context()  # built once: loading CA certificates takes ~30 ms
        clients = [httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), limits=limits, verify=tls)
                   for _ in range(min(self.concurrency, len(records)))]
        workers = [asyncio.create_task(worker(client)) for client in clients]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for client in clients:
                await client.aclose()

    def judge(self, records: Sequence[dict], on_result: Callable[[Judgement], None]) -> None:
        if records:
            asyncio.run(self.run(records, on_result))
