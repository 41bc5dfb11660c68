"""A loopback OpenAI-compatible *completions* server for tests, with fault injection (500, 429, slow).

``respond(prompt) -> text`` decides the completion; faults are chosen per (prompt, attempt) from a hash, so
the same prompt sees the same faults whatever the concurrency. Every request body is kept for assertions.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def _unit(*parts) -> float:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class _Server(ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True


class CompletionsStub:
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
        self._server: ThreadingHTTPServer | None = None

    def fault_for(self, prompt: str, attempt: int) -> str | None:
        if _unit(self.seed, prompt, attempt, "fault?") >= self.fault_rate:
            return None
        return self.faults[int(_unit(self.seed, prompt, attempt, "which") * len(self.faults)) % len(self.faults)]

    def __enter__(self) -> "CompletionsStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/completions") or "prompt" not in request:
                    return self._send(404, b'{"error": "not a completions request"}')
                prompt = request["prompt"]
                with stub._lock:
                    stub.counts[prompt] += 1
                    attempt = stub.counts[prompt]
                    stub.bodies.append(request)
                    stub.auth_headers.add(self.headers.get("Authorization", ""))
                if stub.status is not None:
                    return self._send(stub.status, b'{"error": "forced"}')
                if stub.reject_min_tokens and "min_tokens" in request:
                    return self._send(400, b'{"error": "Unrecognized request argument supplied: min_tokens"}')
                fault = stub.fault_for(prompt, attempt)
                if fault:
                    with stub._lock:
                        stub.faults_served[fault] += 1
                if fault == "500":
                    return self._send(500, b'{"error": "internal"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": stub.retry_after})
                if fault == "slow":
                    time.sleep(stub.slow_seconds)
                text = stub.respond(prompt)
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
                return self._send(200, json.dumps(body).encode())

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
