"""A loopback OpenAI-compatible *completions* server for tests, with fault injection (500, 429, slow).

``respond(prompt) -> text`` decides the completion; faults are chosen per (prompt, attempt) from a hash, so
the same prompt sees the same faults whatever the concurrency. Every request body is kept for assertions.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Callable

from tests.loopback import LoopbackServer, pick_fault, send_json


class CompletionsStub(LoopbackServer):
    def __init__(self, respond: Callable[[str], str], *, fault_rate: float = 0.0, faults=("500", "429"),
                 retry_after: str = "0", reject_min_tokens: bool = False, status: int | None = None,
                 slow_seconds: float = 1.0, seed: int = 0):
        self.respond, self.fault_rate, self.faults = respond, fault_rate, tuple(faults)
        self.retry_after, self.reject_min_tokens, self.status = retry_after, reject_min_tokens, status
        self.slow_seconds, self.seed = slow_seconds, seed
        self.counts: Counter = Counter()
        self.faults_served: Counter = Counter()
        self.bodies: list[dict] = []
        self.auth_headers: set[str] = set()
        self._lock = threading.Lock()

    def fault_for(self, prompt: str, attempt: int) -> str | None:
        return pick_fault(self.seed, prompt, attempt, self.fault_rate, self.faults)

    def on_post(self, handler, raw: bytes) -> None:
        request = json.loads(raw or b"{}")
        if not handler.path.endswith("/completions") or "prompt" not in request:
            return send_json(handler, 404, b'{"error": "not a completions request"}')
        prompt = request["prompt"]
        with self._lock:
            self.counts[prompt] += 1
            attempt = self.counts[prompt]
            self.bodies.append(request)
            self.auth_headers.add(handler.headers.get("Authorization", ""))
        if self.status is not None:
            return send_json(handler, self.status, b'{"error": "forced"}')
        if self.reject_min_tokens and "min_tokens" in request:
            return send_json(handler, 400, b'{"error": "Unrecognized request argument supplied: min_tokens"}')
        fault = self.fault_for(prompt, attempt)
        if self.serve_fault(handler, fault):
            return None
        text = self.respond(prompt)
        words = text.split()
        budget = int(request.get("max_tokens") or 16)
        finish = "stop"
        if len(words) > budget:  # one "token" per word, enough for the tests
            words, finish = words[:budget], "length"
            text = " ".join(words)
        body = {"id": "cmpl-stub", "object": "text_completion", "model": request.get("model"),
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words) + (finish == "stop"),
                          "total_tokens": 0}}
        return send_json(handler, 200, json.dumps(body).encode())
