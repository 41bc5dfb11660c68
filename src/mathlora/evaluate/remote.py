"""Generation through an OpenAI-compatible *completions* server (``eval.backend: openai``).

For ``mathlora predict`` and ``mathlora eval squad`` on a server such as vLLM serving the base model with
LoRA adapters::
    vllm serve /models/Meta-Llama-3-8B --enable-lora --lora-modules tuned=runs/x/train/adapter --port 8000
    mathlora predict --backend openai --base-url http://127.0.0.1:8000/v1 --server-model tuned ...

Each prompt is one ``POST /completions`` with the rendered prompt text (the server adds BOS like
``add_special_tokens=True`` does locally), ``temperature 0`` (greedy), ``max_tokens`` = the token budget,
and, when at least one new token is required (SQuAD), vLLM's ``min_tokens`` (dropped, and the request
repeated, if the server refuses the field; such a server may then answer with nothing). Requests run ``eval.endpoint.concurrency`` at once with the label judge's
client (retries with backoff on timeouts, connection errors, 429 with Retry-After, 5xx). A prompt whose
request still fails fails the command (predictions must be complete to be graded).

With ``eval.calculator`` each prompt is decoded in pieces that stop at ``=``, the calculator filling in every
``<<expr=`` (``mathlora.evaluate.remote_calculator``).

Differences from local generation: the budget is ``eval.max_new_tokens`` (the server's context length, not
``eval.max_length``, bounds prompt + completion), and the server's own stop rules apply (its EOS tokens).
"""

from __future__ import annotations

import asyncio
import random

from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.generation import Generation, cut_at_stop
from mathlora.modeling.openai_client import (
    AskAgain, GaveUp, RetryPolicy, auth_headers, check_base_url, endpoint_url, json_payload, post_json,
    public_url, run_pool, scrub, url_secrets, with_retries,
)
from mathlora.evaluate.remote_calculator import read_choice
from mathlora.evaluate.remote_calculator import CalculatorLoop


def served_model(cfg: EvalConfig, fallback: str | None) -> str:
    name = cfg.model or fallback
    if not name:
        raise MathloraError("eval.backend=openai needs the served model's name: --served-model NAME (eval.model)")
    return name


def server_info(cfg: EvalConfig, fallback: str | None) -> dict:
    """What prediction files record about where their completions came from."""
    return {"backend": "openai", "server": public_url(cfg.endpoint.base_url), "server_model": served_model(cfg, fallback)}


class CompletionsClient:
    def __init__(self, *, base_url: str, model: str, api_key: str, concurrency: int = 64, timeout: float = 120.0,
                 policy: RetryPolicy = RetryPolicy(), stop: tuple[str, ...] | list[str] = ()):
        self.url = endpoint_url(check_base_url(base_url, "eval.endpoint.base_url"), "completions")
        self.model = model
        self._headers = auth_headers(api_key)
        self._secrets = (api_key, *url_secrets(base_url))  # the key, and the URL's user info if it has one
        self.public_url = public_url(self.url)  # what messages show: no user info
        self.concurrency = concurrency
        self.timeout = timeout
        self.policy = policy
        self.min_tokens_supported = True
        self.stop = tuple(stop)  # strings that end a completion: the server stops there, the text is cut before
        self._rng = random.Random()

    def body(self, prompt: str, max_tokens: int, min_tokens: int) -> dict:
        body = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "n": 1}
        if min_tokens > 0 and self.min_tokens_supported:
            body["min_tokens"] = min_tokens
        return body

    async def post(self, client, body: dict):
        """POST ``body`` to the completions URL; ``AskAgain`` (the field dropped) if the server refuses
        ``min_tokens``."""
        response = await post_json(client, self.url, body, self._headers, self.timeout)
        if response.status_code == 400 and "min_tokens" in body and "min_tokens" in response.text:
            self.min_tokens_supported = False
            raise AskAgain()
        return response

    def scrub(self, text: str) -> str:
        """``text`` without the API key, the URL's credentials or any credential form a server echoes."""
        return scrub(text, *self._secrets)

    async def retry(self, call):
        """``await call()`` under the retry policy; ``GaveUp`` when it keeps failing."""
        result, _ = await with_retries(call, self.policy, self._rng)
        return result

    async def ask_once(self, client, prompt: str, max_tokens: int, min_tokens: int) -> Generation:
        body = self.body(prompt, max_tokens, min_tokens)
        if self.stop:
            body["stop"] = list(self.stop)
        response = await self.post(client, body)
        text, stopped, completion_tokens, prompt_tokens = read_choice(json_payload(response))
        text, cut = cut_at_stop(text, self.stop)  # a server that returns the stop string too
        return Generation(text, [], completion_tokens if completion_tokens is not None else 0, stopped or cut,
                          prompt_tokens or 0, requests=1)

    def completer(self, max_tokens: int, min_tokens: int = 0, calculator: bool = False):
        """``async (client, prompt) -> Generation``: one plain request, or the calculator loop
        (``mathlora.evaluate.remote_calculator``); ``GaveUp`` when requests keep failing."""
        if calculator:
            loop = CalculatorLoop(self)
            return lambda client, prompt: loop.complete(client, prompt, max_tokens, min_tokens)
        return lambda client, prompt: self.retry(lambda: self.ask_once(client, prompt, max_tokens, min_tokens))

    async def _run(self, prompts: list[str], complete, on_done) -> list:
        results: list = [None] * len(prompts)
        errors: list[tuple[int, str]] = []

        async def handle(client, index: int) -> None:
            try:
                results[index] = await complete(client, prompts[index])
            except GaveUp as e:
                errors.append((index, f"{self.scrub(str(e))} (after {e.attempts} attempt(s))"))
            on_done()

        await run_pool(list(range(len(prompts))), self.concurrency, self.timeout, handle)
        if errors:
            index, message = min(errors)
            raise MathloraError(f"{len(errors)} of {len(prompts)} completion request(s) to {self.public_url} failed "
                                f"(first: prompt {index}: {message})")
        return results

    def generate(self, prompts: list[str], *, max_new_tokens: int, min_new_tokens: int = 0, calculator: bool = False,
                 progress: bool = True, desc: str = "generate") -> list[Generation]:
        """Greedy completions in input order (``calculator``: calculator-assisted, piece by piece)."""
        from tqdm import tqdm

        if not prompts:
            return []
        complete = self.completer(max_new_tokens, min_new_tokens, calculator)
        bar = tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress, dynamic_ncols=True)
        try:
            return asyncio.run(self._run(prompts, complete, lambda: bar.update(1)))
        finally:
            bar.close()


def completions_client(cfg: EvalConfig, fallback_model: str | None, stop=()) -> CompletionsClient:
    end = cfg.endpoint
    return CompletionsClient(base_url=end.base_url, model=served_model(cfg, fallback_model), api_key=end.api_key(),
                             concurrency=end.concurrency, timeout=end.timeout, policy=end.policy(), stop=stop)


def remote_generate(cfg: EvalConfig, prompts: list[str], *, fallback_model: str | None, max_new_tokens: int,
                    min_new_tokens: int = 0, calculator: bool = False, progress: bool = True,
                    desc: str = "generate", stop=()) -> list[Generation]:
    return completions_client(cfg, fallback_model, stop).generate(
        prompts, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, calculator=calculator,
        progress=progress, desc=desc)


def require_no_adapter(adapter) -> None:
    if adapter is not None:
        raise MathloraError("with eval.backend=openai the server applies the adapter: serve it (e.g. vllm serve "
                            "BASE --enable-lora --lora-modules NAME=ADAPTER_DIR) and pass --server-model NAME "
                            "instead of --adapter")
