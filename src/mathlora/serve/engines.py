"""What answers ``mathlora serve``'s requests: the local model with its adapter, or an upstream server.

* :class:`LocalEngine`: the model in this process, decoded by our batched greedy loop
  (``evaluate.generation.generate_greedy``, with the calculator when on). A request that finds the model idle
  waits ``gather`` seconds (``serve --gather-ms``, default 0) for others to join it, fewer once ``batch_size`` prompts are
  waiting; requests that arrive while a batch runs wait and go together in the next one (grouped by
  ``max_tokens``). Decoding runs in a worker thread, so the server keeps answering (``/v1/models``, bad
  requests) meanwhile.
* :class:`ProxyEngine`: an upstream OpenAI-compatible completions server (vLLM serving the base model with the
  adapter), through the shared client (retries, deadlines, ``concurrency`` requests in flight), with the
  calculator loop of ``evaluate.remote_calculator`` when on.

Both take rendered prompts (the app applies the template) and return :class:`Generation` objects cut at the
template's stop strings (its next section, as ``predict`` and ``eval`` cut them). Text from requests is
tokenized with ``split_special_tokens``: ``</s>`` written by a client is text, never a control token.
``cancel()`` (the server's shutdown grace is over) ends the batch in progress at its next decoding step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import re
import copy
import threading
import dataclasses

from mathlora.errors import MathloraError
from mathlora.evaluate.generation import Generation
from mathlora.evaluate.remote import CompletionsClient
from mathlora.modeling.openai_client import FatalRequestError, RetryableError
from mathlora.evaluate.generation import generate_greedy
from mathlora.evaluate.remote_calculator import CalculatorLoop
from mathlora.modeling.openai_client import GaveUp, parse_retry_after


class UpstreamError(MathloraError):
    """The upstream server failed a request (after its retries): ``status`` the matching client status when it
    refused the request (429 rate limited, 401/403 credentials refused, 400 any other 4xx: too long for its
    context, say), 504 past the deadline, else 502."""

    def __init__(self, message: str, status: int = 502, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def upstream_status(message: str) -> int:
    """The client status for an upstream failure whose message starts ``HTTP <code>``."""

    m = re.match(r"HTTP (\d{3})", message)
    code = int(m.group(1)) if m else 0
    if code in (401, 403, 429):
        return code
    return 400 if 400 <= code < 500 else 502


class Cancelled(Exception):
    """The server is shutting down: the batch in progress is abandoned."""


class _Cancellable:
    """``model`` whose forward pass raises :class:`Cancelled` once ``flag`` is set (checked every decoding
    step, in the worker thread)."""

    def __init__(self, model, flag):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_flag", flag)

    def __call__(self, *args, **kwargs):
        if self._flag.is_set():
            raise Cancelled()
        return self._model(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def get_base_model(self):  # what compat.cache_argument inspects (a class's forward, not this wrapper's)
        inner = self._model
        return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


@dataclass
class _Job:
    prompts: list[str]
    max_tokens: int
    done: asyncio.Future = field(default=None)  # type: ignore[assignment]


class LocalEngine:
    def __init__(self, model, tokenizer, *, max_length: int, batch_size: int, calculator: bool,
                 long_prompts: str = "skip", stop: tuple[str, ...] | list[str] = (), gather: float = 0.0):

        tokenizer.split_special_tokens = True  # '</s>' in a request is text, as in training (data.tokenize)
        self._cancelled = threading.Event()
        self.model, self.tokenizer = _Cancellable(model, self._cancelled), tokenizer
        self.stops = tuple(stop)  # the template's stop strings
        # requests are checked on the event loop while a batch decodes in the worker thread: a fast tokenizer
        # must not be used by two threads at once, so the checks have their own copy
        self._check_tokenizer = copy.deepcopy(tokenizer)
        self.max_length, self.batch_size, self.calculator = max_length, batch_size, calculator
        self.long_prompts = long_prompts
        self.gather = gather  # seconds the first request of a batch waits for others (0: none)
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def prompt_problem(self, prompt: str) -> str | None:
        """Why ``prompt`` cannot be answered (too many tokens for ``max_length``), or None."""
        n = len(self._check_tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if n >= self.max_length and self.long_prompts == "skip":
            return f"the prompt is {n} tokens; this server's max_length {self.max_length} leaves no room to answer"
        return None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    def cancel(self) -> None:
        """Stop work: the batch in progress ends at its next step, queued requests are never started."""
        self._cancelled.set()

    async def stop(self) -> None:
        self.cancel()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def complete(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        if self._cancelled.is_set():
            raise Cancelled()
        if self._queue is None:
            raise MathloraError("the engine is not started")
        job = _Job(prompts, max_tokens, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.done

    def _generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        return generate_greedy(self.model, self.tokenizer, prompts, max_new_tokens=max_tokens,
                               max_length=self.max_length, batch_size=self.batch_size, progress=False,
                               calculator=self.calculator, long_prompts=self.long_prompts, stop=self.stops)

    async def _gathered(self) -> list[_Job]:
        """The next batch's jobs: the first to come, those already waiting, and those that come within
        ``gather`` seconds of the first (no waiting once ``batch_size`` prompts are there)."""
        assert self._queue is not None
        jobs = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.gather
        while True:
            while not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            left = deadline - loop.time()
            if left <= 0 or sum(len(j.prompts) for j in jobs) >= self.batch_size:
                return jobs
            try:
                jobs.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                return jobs

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            jobs = await self._gathered()
            for budget in sorted({j.max_tokens for j in jobs}):
                group = [j for j in jobs if j.max_tokens == budget and not j.done.done()]
                if not group:
                    continue
                prompts = [p for j in group for p in j.prompts]
                try:
                    if self._cancelled.is_set():
                        raise Cancelled()
                    gens = await asyncio.to_thread(self._generate, prompts, budget)
                except Cancelled:
                    for j in group:
                        if not j.done.done():
                            j.done.set_exception(Cancelled())
                    continue
                except Exception as e:  # one failed batch fails its requests, not the server
                    for j in (j for j in group if not j.done.done()):
                        j.done.set_exception(MathloraError(f"generation failed: {type(e).__name__}: {e}"))
                    continue
                start = 0
                for j in group:
                    if not j.done.done():  # a request whose client went (its future cancelled) takes nothing
                        j.done.set_result(gens[start:start + len(j.prompts)])
                    start += len(j.prompts)


MAX_CHARS_PER_TOKEN = 32  # an upstream reply longer than max_tokens * this ignored max_tokens: cut


def proxy_client(**kw):
    """The upstream's completions client for the proxy: a 429 is passed to the client at once (with its
    Retry-After), never waited out while the client hangs on."""

    class ProxyClient(CompletionsClient):
        async def retry(self, call):
            async def once():
                try:
                    return await call()
                except RetryableError as e:
                    if getattr(e, "status", None) == 429:
                        raise FatalRequestError(str(e)) from None
                    raise
            return await super().retry(once)

    return ProxyClient(**kw)


class ProxyEngine:
    def __init__(self, client, *, calculator: bool, deadline: float = 120.0):
        self.client = client  # evaluate.remote.CompletionsClient
        self.calculator = calculator
        self.deadline = deadline  # seconds for one request's whole answer, retries included
        self.loop = CalculatorLoop(client)
        self._http = None
        self._slots: asyncio.Semaphore | None = None
        self._cancelled = False

    def prompt_problem(self, prompt: str) -> str | None:
        return None  # the upstream server knows its context length; its 4xx is passed on

    async def start(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.client.concurrency,
                              max_keepalive_connections=self.client.concurrency)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.client.timeout), limits=limits)
        self._slots = asyncio.Semaphore(self.client.concurrency)

    def cancel(self) -> None:
        self._cancelled = True  # requests in flight are cancelled by the app (their tasks)

    async def stop(self) -> None:
        self.cancel()
        if self._http is not None:
            await self._http.aclose()

    async def _one(self, prompt: str, max_tokens: int) -> Generation:


        assert self._slots is not None
        if self._cancelled:
            raise Cancelled()
        where = f"upstream {self.client.public_url}"
        try:
            async with asyncio.timeout(self.deadline):
                async with self._slots:
                    if self.calculator:
                        gen = await self.loop.complete(self._http, prompt, max_tokens)
                    else:
                        gen = await self.client.retry(lambda: self.client.ask_once(self._http, prompt, max_tokens, 0))
        except GaveUp as e:
            message = self.client.scrub(str(e))
            status = upstream_status(message)
            retry = None
            if status == 429:
                m = re.search(r"retry after ([0-9.]+)s", message)
                retry = parse_retry_after(m.group(1)) if m else None
            raise UpstreamError(f"{where}: {message} (after {e.attempts} attempt(s))", status, retry) from None
        except TimeoutError:
            raise UpstreamError(f"{where}: no complete answer within this server's deadline of {self.deadline:g}s",
                                504) from None
        if gen.generated_tokens > max_tokens:
            raise UpstreamError(f"{where} ignored max_tokens: asked for {max_tokens}, it sent "
                                f"{gen.generated_tokens} tokens", 502)
        if len(gen.completion) > max_tokens * MAX_CHARS_PER_TOKEN:  # no usage counts, but far too long
            gen = dataclasses.replace(gen, completion=gen.completion[:max_tokens * MAX_CHARS_PER_TOKEN],
                                      stopped=False)
        return gen

    async def complete(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        return list(await asyncio.gather(*(self._one(p, max_tokens) for p in prompts)))
