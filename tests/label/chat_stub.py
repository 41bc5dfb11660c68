"""A loopback chat-completions server for tests and benchmarks, with fault injection.

Records are recognised by a ``[rec:<id>]`` marker in the prompt; the server counts requests per id
and answers ``expected_level(id)``, with top logprobs over the digits. Faults are chosen per
(id, attempt) from a hash, so the same record sees the same faults whatever the concurrency.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = re.compile(r"\[rec:([\w-]+)\]")
FAULTS = ("500", "429", "slow", "malformed", "nodigit", "outofrange")


def expected_level(record_id: str) -> int:
    return int(hashlib.sha256(record_id.encode()).hexdigest(), 16) % 6


def expected_probs(record_id: str) -> list[float]:
    level = expected_level(record_id)
    logits = [-abs(d - level) * 1.5 for d in range(6)]
    z = sum(math.exp(x) for x in logits)
    return [math.exp(x) / z for x in logits]


def _unit(*parts) -> float:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the default backlog of 5 drops connections at high concurrency
    daemon_threads = True


class ChatStub:
    def __init__(self, *, delay: float = 0.0, fault_rate: float = 0.0, faults=FAULTS, slow_seconds: float = 1.0,
                 retry_after: str = "0", logprobs: bool = True, reject_logprobs: bool = False,
                 status: int | None = None, seed: int = 0, block_after: int | None = None):
        """``block_after``: answer that many requests, then hold every later one until ``release()`` (so a
        test can kill a client at a known point: exactly ``block_after`` answers were delivered)."""
        self.delay, self.fault_rate, self.faults = delay, fault_rate, tuple(faults)
        self.block_after = block_after
        self.answered = 0
        self.blocked = threading.Event()    # set once a request is being held
        self._release = threading.Event()
        self.slow_seconds, self.retry_after, self.seed = slow_seconds, retry_after, seed
        self.logprobs, self.reject_logprobs, self.status = logprobs, reject_logprobs, status
        self.counts: Counter = Counter()
        self.auth_headers: set[str] = set()
        self.faults_served: Counter = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- what to answer -------------------------------------------------------------------------
    def fault_for(self, record_id: str, attempt: int) -> str | None:
        if _unit(self.seed, record_id, attempt, "fault?") >= self.fault_rate:
            return None
        return self.faults[int(_unit(self.seed, record_id, attempt, "which") * len(self.faults)) % len(self.faults)]

    def completion(self, record_id: str, content: str | None = None, with_logprobs: bool = True) -> dict:
        level = expected_level(record_id)
        choice = {"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": content if content is not None else str(level)}}
        if with_logprobs and content is None:
            top = [{"token": str(d), "logprob": math.log(p)} for d, p in enumerate(expected_probs(record_id))]
            top.sort(key=lambda t: -t["logprob"])
            choice["logprobs"] = {"content": [{"token": str(level), "logprob": top[0]["logprob"],
                                               "top_logprobs": top + [{"token": "Hello", "logprob": -20.0}]}]}
        return {"id": "cmpl", "object": "chat.completion", "choices": [choice]}

    def release(self) -> None:
        """Stop holding requests: held ones are answered (to whoever still listens), later ones too."""
        self.block_after = None
        self._release.set()

    def _hold(self) -> None:
        with self._lock:
            hold = self.block_after is not None and self.answered >= self.block_after
            if not hold:
                self.answered += 1
        if hold:
            self.blocked.set()
            self._release.wait(timeout=120)

    # -- server -----------------------------------------------------------------------------------
    def __enter__(self) -> "ChatStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK stall

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
                prompt = request["messages"][-1]["content"]
                found = MARKER.search(prompt)
                record_id = found.group(1) if found else "?"
                with stub._lock:
                    stub.counts[record_id] += 1
                    attempt = stub.counts[record_id]
                    stub.auth_headers.add(self.headers.get("Authorization", ""))
                stub._hold()
                if stub.delay:
                    time.sleep(stub.delay)
                if stub.status is not None:
                    return self._send(stub.status, b'{"error": "forced"}')
                if stub.reject_logprobs and request.get("logprobs"):
                    return self._send(400, b'{"error": "logprobs is not supported by this server"}')
                fault = stub.fault_for(record_id, attempt)
                if fault:
                    with stub._lock:
                        stub.faults_served[fault] += 1
                if fault == "500":
                    return self._send(500, b'{"error": "internal"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": stub.retry_after})
                if fault == "slow":
                    time.sleep(stub.slow_seconds)
                if fault == "malformed":
                    return self._send(200, b'{"choices": [ {"message": ')
                content = {"nodigit": "I cannot rate this problem.", "outofrange": "7"}.get(fault)
                body = stub.completion(record_id, content, with_logprobs=stub.logprobs and bool(request.get("logprobs")))
                return self._send(200, json.dumps(body).encode())

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def serve_in_child(**stub_options):
    """Run a ChatStub in a child process (so it does not share the caller's GIL); returns (base_url, stop)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    urls, stop = ctx.Queue(), ctx.Event()

    def serve():
        with ChatStub(**stub_options) as stub:
            urls.put(stub.base_url)
            stop.wait()

    child = ctx.Process(target=serve, daemon=True)
    child.start()

    def shutdown():
        stop.set()
        child.join(5)

    return urls.get(timeout=30), shutdown


def stub_records(n: int, prefix: str = "r") -> list[dict]:
    """Records whose problem text carries the id marker the stub reads back."""
    return [{"id": f"{prefix}{i:04d}", "problem": f"[rec:{prefix}{i:04d}] 计算 {i} + {2 * i} 等于多少？",
             "solution": f"{i} + {2 * i} = {3 * i}", "type": "addsub", "extra": i} for i in range(n)]
