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

from tests.loopback import LoopbackServer, pick_fault, send_json

MARKER = re.compile(r"\[rec:([\w-]+)\]")
FAULTS = ("500", "429", "slow", "malformed", "nodigit", "outofrange")


def expected_level(record_id: str) -> int:
    return int(hashlib.sha256(record_id.encode()).hexdigest(), 16) % 6


def expected_probs(record_id: str) -> list[float]:
    level = expected_level(record_id)
    logits = [-abs(d - level) * 1.5 for d in range(6)]
    z = sum(math.exp(x) for x in logits)
    return [math.exp(x) / z for x in logits]


class ChatStub(LoopbackServer):
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

    # -- what to answer -------------------------------------------------------------------------
    def fault_for(self, record_id: str, attempt: int) -> str | None:
        return pick_fault(self.seed, record_id, attempt, self.fault_rate, self.faults)

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
    def on_post(self, handler, raw: bytes) -> None:
        request = json.loads(raw or b"{}")
        prompt = request["messages"][-1]["content"]
        found = MARKER.search(prompt)
        record_id = found.group(1) if found else "?"
        with self._lock:
            self.counts[record_id] += 1
            attempt = self.counts[record_id]
            self.auth_headers.add(handler.headers.get("Authorization", ""))
        self._hold()
        if self.delay:
            time.sleep(self.delay)
        if self.status is not None:
            return send_json(handler, self.status, b'{"error": "forced"}')
        if self.reject_logprobs and request.get("logprobs"):
            return send_json(handler, 400, b'{"error": "logprobs is not supported by this server"}')
        fault = self.fault_for(record_id, attempt)
        if self.serve_fault(handler, fault):
            return None
        if fault == "malformed":
            return send_json(handler, 200, b'{"choices": [ {"message": ')
        content = {"nodigit": "I cannot rate this problem.", "outofrange": "7"}.get(fault)
        body = self.completion(record_id, content, with_logprobs=self.logprobs and bool(request.get("logprobs")))
        return send_json(handler, 200, json.dumps(body).encode())

    def __exit__(self, *exc) -> None:
        self._release.set()
        super().__exit__(*exc)


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
