"""A threaded HTTP server on 127.0.0.1 for tests: the plumbing the OpenAI-compatible stubs share.

Subclasses answer each POST in ``on_post(handler, body)``; ``send_json`` writes a reply. The port is chosen by
the OS; ``base_url`` ends in ``/v1`` as a client would be configured.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the default backlog of 5 drops connections at high concurrency
    daemon_threads = True


def send_json(handler, status: int, body: bytes, headers: dict | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(body)


def pick_fault(seed: int, key: str, attempt: int, rate: float, faults: tuple[str, ...]) -> str | None:
    """The fault (or None) for ``key``'s ``attempt``-th request: from a hash, so the same key sees the same faults
    whatever the concurrency; about ``rate`` of the attempts get one."""
    def unit(*parts) -> float:
        return int(hashlib.sha256("|".join(map(str, (seed, key, attempt, *parts))).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    if unit("fault?") >= rate:
        return None
    return faults[int(unit("which") * len(faults)) % len(faults)]


class LoopbackServer:
    _server: ThreadingHTTPServer | None = None

    def on_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    def serve_fault(self, handler, fault: str | None) -> bool:
        """Count ``fault`` and answer the faults both stubs share: ``500``, ``429`` (``self.retry_after``);
        ``slow`` sleeps ``self.slow_seconds`` and lets the caller answer. True when a reply was sent. Needs the
        subclass's ``faults_served``, ``_lock``, ``retry_after`` and ``slow_seconds``."""
        if not fault:
            return False
        with self._lock:
            self.faults_served[fault] += 1
        if fault == "500":
            send_json(handler, 500, b'{"error": "internal"}')
            return True
        if fault == "429":
            send_json(handler, 429, b'{"error": "slow down"}', {"Retry-After": self.retry_after})
            return True
        if fault == "slow":
            time.sleep(self.slow_seconds)
        return False

    def __enter__(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK stall

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    owner.on_post(self, body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: nothing to answer
                    pass

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
