"""What answers ``mathlora serve``'s requests: the local model with its adapter, or an upstream server.

* :class:`LocalEngine`: the model in this process, decoded by our batched greedy loop
  (``evaluate.generation.generate_greedy``, with the calculator when on). Requests that arrive while a batch
  runs wait and go together in the next one (grouped by ``max_tokens``); decoding runs in a worker thread, so
  the server keeps answering (``/v1/models``, bad requests) meanwhile.
* :class:`ProxyEngine`: an upstream OpenAI-compatible completions server (vLLM serving the base model with the
  adapter), through the shared client (retries, deadlines, ``concurrency`` requests in flight), with the
  calculator loop of ``evaluate.remote_calculator`` when on.

Both take rendered prompts (the app applies the template) and return :class:`Generation` objects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mathlora.errors import MathloraError
from mathlora.evaluate.generation import Generation


class UpstreamError(MathloraError):
    """The upstream server failed a request (after its retries): ``status`` 400 when it refused the request
    (a 4xx: too long for its context, say), else 502."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    prompts: list[str]
    max_tokens: int
    done: asyncio.Future = field(default=None)  # type: ignore[assignment]


class LocalEngine:
    def __init__(self, model, tokenizer, *, max_length: int, batch_size: int, calculator: bool,
                 long_prompts: str = "skip"):
        import copy

        self.model, self.tokenizer = model, tokenizer
        # requests are checked on the event loop while a batch decodes in the worker thread: a fast tokenizer
        # must not be used by two threads at once, so the checks have their own copy
        self._check_tokenizer = copy.deepcopy(tokenizer)
        self.max_length, self.batch_size, self.calculator = max_length, batch_size, calculator
        self.long_prompts = long_prompts
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

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def complete(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        if self._queue is None:
            raise MathloraError("the engine is not started")
        job = _Job(prompts, max_tokens, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.done

    def _generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        from mathlora.evaluate.generation import generate_greedy

        return generate_greedy(self.model, self.tokenizer, prompts, max_new_tokens=max_tokens,
                               max_length=self.max_length, batch_size=self.batch_size, progress=False,
                               calculator=self.calculator, long_prompts=self.long_prompts)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            jobs = [await self._queue.get()]
            while not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            for budget in sorted({j.max_tokens for j in jobs}):
                group = [j for j in jobs if j.max_tokens == budget and not j.done.done()]
                prompts = [p for j in group for p in j.prompts]
                try:
                    gens = await asyncio.to_thread(self._generate, prompts, budget)
                except Exception as e:  # one failed batch fails its requests, not the server
                    for j in group:
                        j.done.set_exception(MathloraError(f"generation failed: {type(e).__name__}: {e}"))
                    continue
                start = 0
                for j in group:
                    j.done.set_result(gens[start:start + len(j.prompts)])
                    start += len(j.prompts)


class ProxyEngine:
    def __init__(self, client, *, calculator: bool):
        from mathlora.evaluate.remote_calculator import CalculatorLoop

        self.client = client  # evaluate.remote.CompletionsClient
        self.calculator = calculator
        self.loop = CalculatorLoop(client)
        self._http = None
        self._slots: asyncio.Semaphore | None = None

    def prompt_problem(self, prompt: str) -> str | None:
        return None  # the upstream server knows its context length; its 400 is passed on

    async def start(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.client.concurrency,
                              max_keepalive_connections=self.client.concurrency)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.client.timeout), limits=limits)
        self._slots = asyncio.Semaphore(self.client.concurrency)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def _one(self, prompt: str, max_tokens: int) -> Generation:
        from mathlora.openai_client import GaveUp

        assert self._slots is not None
        async with self._slots:
            try:
                if self.calculator:
                    return await self.loop.complete(self._http, prompt, max_tokens)
                return await self.client.retry(lambda: self.client.ask_once(self._http, prompt, max_tokens, 0))
            except GaveUp as e:
                refused = str(e).startswith("HTTP 4")  # not retried: asking again would not help
                raise UpstreamError(f"upstream {self.client.url}: {self.client.scrub(str(e))} "
                                    f"(after {e.attempts} attempt(s))", 400 if refused else 502) from None

    async def complete(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        return list(await asyncio.gather(*(self._one(p, max_tokens) for p in prompts)))
