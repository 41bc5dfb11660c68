"""Shared async client for OpenAI-compatible endpoints (vLLM, SGLang, Ollama, hosted): retries, backoff,
``Retry-After``, and a pool of workers with one keep-alive connection each.

Used by the difficulty judge (chat completions, ``mathlora.label.openai_judge``) and by the remote
generation backend of ``predict`` / ``eval squad`` (completions, ``mathlora.evaluate.remote``).

A request that times out, cannot connect, gets 429 (``Retry-After`` honoured) or 5xx, or whose reply is
unusable (the caller raises ``RetryableError``) is retried with exponential backoff and jitter; after
``max_retries`` retries the item fails with its last error. ``FatalRequestError`` (4xx other than 429)
fails it at once; ``AskAgain`` repeats the request without counting an attempt (e.g. the server refused an
optional field that the caller has now dropped). ``timeout`` bounds each whole request (connect, send and the
complete reply), not each read. The API key goes in the Authorization header only; ``scrub`` takes it out of
any server text that is kept.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import urlsplit
import base64
from urllib.parse import unquote
import json
import sys
import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mathlora.errors import MathloraError
from mathlora.run_dir.same_result import NOT_RESULT

RETRY_AFTER_CAP = 600.0
MAX_REPLY_BYTES = 16 << 20  # a reply (after decompression) larger than this is refused, not read on


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Backoff before retry number ``attempt`` (1-based): base * 2^(attempt-1), capped, jittered x0.5-1.5."""
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.5)


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # the HTTP status that caused it, if any


class AskAgain(Exception):
    """Ask again at once, not counted as an attempt (the caller changed the request)."""


class FatalRequestError(Exception):
    """A reply that asking again will not fix (4xx other than 429)."""


class GaveUp(Exception):
    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


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


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` + ``/path`` unless it already ends with it (``/v1`` -> ``/v1/completions``)."""
    base = base_url.rstrip("/")
    return base if base.endswith("/" + path) else f"{base}/{path}"


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def check_base_url(base_url: str, setting: str = "base_url") -> str:
    """``base_url`` when it is a usable http(s) URL with a host and a valid port; a one-line error otherwise."""
    shown = public_url(base_url)  # a message never shows the user info
    try:
        parts = urlsplit(base_url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as e:
        raise MathloraError(f"{setting} {shown!r} is not a usable URL ({scrub(e, *url_secrets(base_url))})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MathloraError(f"{setting} {shown!r} must be an http(s) URL with a host, "
                            "e.g. http://127.0.0.1:8000/v1")
    if port == 0:
        raise MathloraError(f"{setting} {shown!r}: port 0 is not a server port")
    return base_url


def public_url(url: str) -> str:
    """``url`` without its user info (``http://user:pass@host/v1`` -> ``http://host/v1``): the form that is
    printed, logged, recorded or sent to a client."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub("", url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def url_secrets(url: str) -> tuple[str, ...]:
    """The credential forms a URL's user info gives away: the password (as written and percent-decoded),
    ``user:password`` and its base64 (what an HTTP client sends as Basic auth)."""

    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    info = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if not info:
        return ()
    user, _, password = info.partition(":")
    forms = {info, unquote(info)}
    if password:
        forms |= {password, unquote(password)}
    for pair in (f"{unquote(user)}:{unquote(password)}", info):
        forms.add(base64.b64encode(pair.encode("utf-8", "replace")).decode("ascii"))
    return tuple(f for f in forms if len(f) >= 4)


_USERINFO = re.compile(r"(?<=://)[^/@\s\\\"'<>]+@")
# an Authorization header's value in any form a server may echo: 'Authorization: Basic dXNlcjpwYXNz',
# '"authorization": "Bearer sk-..."', 'Bearer sk-...' alone
_AUTH_HEADER = re.compile(r"((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                          r"(?:(?:bearer|basic|token|digest|apikey)\s+)?[^\s\"',}]+", re.I)
_AUTH_SCHEME = re.compile(r"\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=:-]{6,}", re.I)
_KEY_FIELD = re.compile(r"\b((?:api[_-]?key|x-api-key|password|passwd|secret|token)[\"']?\s*[:=]\s*[\"']?)"
                        r"[^\s\"',}&]{4,}", re.I)


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` without credentials: every occurrence of each of ``secrets`` (an API key, a URL's password)
    replaced by ``***`` -- as given, stripped of whitespace, and in the escaped forms that Python, JSON and
    HTTP libraries print (``sk-1\\r``) --, and every credential form a server may echo whatever the value:
    an ``Authorization`` header (Bearer, Basic and its base64), a ``Bearer``/``Basic`` token, a URL's user
    info (``http://user:pass@`` -> ``http://***@``), an ``api_key``/``password`` field."""

    text = str(text)
    forms = set()
    for secret in secrets:
        if not secret or secret == "EMPTY":
            continue
        for key in {secret, secret.strip()}:
            if len(key) >= 4:
                forms |= {key, repr(key)[1:-1], json.dumps(key)[1:-1], key.encode("unicode_escape").decode("ascii"),
                          repr(key.encode("utf-8", "replace"))[2:-1]}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    text = _USERINFO.sub("***@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + "***", text)
    text = _AUTH_SCHEME.sub(lambda m: m.group(1) + m.group(2) + "***", text)
    return _KEY_FIELD.sub(lambda m: m.group(1) + "***", text)


def checked_api_key(value: str | None, variable: str) -> str:
    """The key in ``$variable`` ready for an HTTP header: surrounding whitespace (a key file with CRLF) is
    stripped with a warning; a non-ASCII character or whitespace inside is one error line (never shown)."""

    if not value or not value.strip():
        return "EMPTY"
    key = value.strip()
    if key != value:
        print(f"warning: ${variable} ends or starts with whitespace (a key file with CRLF?); using it stripped",
              file=sys.stderr)
    bad = next((i for i, c in enumerate(key) if not (33 <= ord(c) < 127)), None)
    if bad is not None:
        what = "a non-ASCII character" if ord(key[bad]) >= 127 else "whitespace or a control character"
        raise MathloraError(f"${variable} holds {what} at position {bad + 1}, which an HTTP header cannot carry; "
                            "check the key")
    return key


class Reply:
    """A read reply: status, headers and the body (at most ``MAX_REPLY_BYTES``); ``secrets``: the credentials
    the request carried (its key, its URL's user info), which ``excerpt`` never shows."""

    def __init__(self, status_code: int, headers, content: bytes, secrets: tuple[str, ...] = ()):
        self.status_code, self.headers, self.content, self.secrets = status_code, headers, content, secrets

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def excerpt(response, limit: int) -> str:
    """The start of a reply's body for a message: scrubbed of every credential form first, then cut (cut first,
    a credential could be left half shown)."""
    return scrub(response.text, *getattr(response, "secrets", ()))[:limit]


def request_secrets(url: str, headers: dict) -> tuple[str, ...]:
    """The credentials a request carries: its URL's user info and its Authorization header's value."""
    values = [v.partition(" ")[2] or v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")]
    return (*url_secrets(url), *values)


async def _read_reply(client, url: str, body: dict, headers: dict, max_bytes: int) -> Reply:
    async with client.stream("POST", url, json=body, headers=headers) as response:
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():  # decompressed: a gzip bomb stops at the cap too
            size += len(chunk)
            if size > max_bytes:
                raise FatalRequestError(f"reply larger than {max_bytes} bytes (after decompression); refused")
            chunks.append(chunk)
        return Reply(response.status_code, response.headers, b"".join(chunks), request_secrets(url, headers))


async def post_json(client, url: str, body: dict, headers: dict, timeout: float, *,
                    max_bytes: int = MAX_REPLY_BYTES) -> Reply:
    """POST ``body``; returns the reply for status 200 and other 4xx (the caller decides); raises
    ``RetryableError`` for a timeout, a connection error, 429 or 5xx, ``FatalRequestError`` for a reply over
    ``max_bytes``."""
    import httpx

    try:  # the deadline covers the whole request (a server dripping bytes cannot stretch it)
        response = await asyncio.wait_for(_read_reply(client, url, body, headers, max_bytes), timeout)
    except (httpx.TimeoutException, asyncio.TimeoutError):
        raise RetryableError(f"timeout: no complete reply within {timeout:g}s") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        raise FatalRequestError(f"bad URL {public_url(url)}: {scrub(e)}") from None
    except httpx.TransportError as e:
        raise RetryableError(f"connection error: {type(e).__name__}: {scrub(e)}") from None
    except httpx.DecodingError as e:
        raise RetryableError(f"reply could not be decompressed: {e}") from None
    status = response.status_code
    if status == 429:
        wait = parse_retry_after(response.headers.get("retry-after"))
        raise RetryableError("HTTP 429 rate limited" + (f" (retry after {wait:g}s)" if wait is not None else ""),
                             wait, 429)
    if status >= 500:
        raise RetryableError(f"HTTP {status}: {excerpt(response, 120)}", status=status)
    return response


def _replace_surrogates(obj: Any) -> Any:
    if isinstance(obj, str):
        return _LONE_SURROGATE.sub("\ufffd", obj)
    if isinstance(obj, list):
        return [_replace_surrogates(v) for v in obj]
    if isinstance(obj, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in obj.items()}
    return obj


def json_payload(response) -> Any:
    """The JSON body of a 200 reply (``FatalRequestError`` for other statuses, retryable if not JSON or nested
    deeper than Python can read). A lone surrogate (``\\ud800``, not a character) becomes U+FFFD here, so
    it can never fail a later write."""

    if response.status_code != 200:
        raise FatalRequestError(f"HTTP {response.status_code}: {excerpt(response, 160)}")
    try:
        obj = json.loads(response.content)
        return _replace_surrogates(obj) if _SURROGATE_ESCAPE.search(response.content) else obj
    except RecursionError:
        raise RetryableError("malformed response: JSON nested too deeply") from None
    except ValueError:
        raise RetryableError("malformed response: body is not JSON") from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def with_retries(call: Callable[[], Awaitable[Any]], policy: RetryPolicy, rng: random.Random):
    """``(await call(), attempts)``; ``GaveUp`` after a fatal error or ``policy.max_retries`` retries."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call(), attempt
        except AskAgain:
            attempt -= 1
        except FatalRequestError as e:
            raise GaveUp(str(e), attempt) from None
        except RetryableError as e:
            if attempt > policy.max_retries:
                raise GaveUp(str(e), attempt) from None
            # a server's Retry-After is honoured up to the policy's longest delay, never beyond
            wait = min(e.retry_after, policy.max_delay) if e.retry_after is not None else policy.delay(attempt, rng)
            await asyncio.sleep(wait)


async def run_pool(items: Sequence, concurrency: int, timeout: float,
                   handle: Callable[[Any, Any], Awaitable[None]]) -> None:
    """``await handle(client, item)`` for every item, ``concurrency`` at once; an exception from ``handle``
    stops the pool and propagates."""
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker(client) -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await handle(client, item)

    # One client (one keep-alive connection) per worker: httpcore's shared pool scans every
    # connection on each request, which costs more CPU than the requests themselves at 32+.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # built once: loading CA certificates takes ~30 ms
    clients = [httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits, verify=tls)
               for _ in range(max(1, min(concurrency, len(items))))]
    workers = [asyncio.create_task(worker(client)) for client in clients]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for client in clients:
            await client.aclose()


class EndpointConfig(BaseModel):
    """Where an OpenAI-compatible server is and how requests to it go: ``label.endpoint`` (the judge) and
    ``eval.endpoint`` (the openai generation backend). Only the URL can change a result: the key's variable,
    concurrency, timeout and retries never do (``NOT_RESULT``)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("http://127.0.0.1:8000/v1", description="the server's /v1 URL")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key",
                             json_schema_extra=NOT_RESULT)
    concurrency: int = Field(16, ge=1, description="requests in flight", json_schema_extra=NOT_RESULT)
    timeout: float = Field(60.0, gt=0, description="seconds per whole request", json_schema_extra=NOT_RESULT)
    max_retries: int = Field(5, ge=0, json_schema_extra=NOT_RESULT)
    retry_base_delay: float = Field(0.5, ge=0, description="first backoff delay in seconds (doubles each retry)",
                                    json_schema_extra=NOT_RESULT)
    retry_max_delay: float = Field(30.0, ge=0, description="longest backoff delay in seconds (Retry-After aside)",
                                   json_schema_extra=NOT_RESULT)

    @field_validator("base_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        try:
            return check_base_url(value, "base_url")
        except MathloraError as e:
            raise ValueError(str(e)) from None

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_retries, self.retry_base_delay, self.retry_max_delay)

    def api_key(self) -> str:
        """The key from the environment (``EMPTY`` for servers that need none), checked (``checked_api_key``)."""

        return checked_api_key(os.environ.get(self.api_key_env), self.api_key_env)


FLAT_ENDPOINT_KEYS = tuple(EndpointConfig.model_fields)  # where they were before ``endpoint``: label.*, eval.*
