"""Issue 31 for ``mathlora serve`` as a command: beyond loopback only with an API key (H3), the upstream's
credentials never printed or sent (H2), SIGTERM with unfinished work answers each request with an OpenAI
error and exits 0 without a traceback (M1). Only 127.0.0.1 is ever bound; client loops are bounded."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from serving import read_line
from tests.cli_helpers import assert_one_error, cli
from tests.loopback import LoopbackServer, send_json

from mathlora.errors import MathloraError
from mathlora.serve.commands import is_loopback, server_api_key


def test_listening_beyond_loopback_needs_an_api_key(capsys, monkeypatch):
    monkeypatch.delenv("MATHLORA_API_KEY", raising=False)
    for host in ("0.0.0.0", "::", "192.168.1.10"):
        assert_one_error(*cli(capsys, "serve", "--host", host, "--upstream", "http://127.0.0.1:9/v1",
                              "--served-model", "m")[::2], f"--host {host} listens beyond this machine",
                         "--api-key", "MATHLORA_API_KEY")
    monkeypatch.setenv("MATHLORA_API_KEY", "  ")
    assert_one_error(*cli(capsys, "serve", "--upstream", "http://127.0.0.1:9/v1", "--served-model", "m")[::2],
                     "MATHLORA_API_KEY is empty")
    monkeypatch.setenv("MATHLORA_API_KEY", "k-from-env-123")
    assert server_api_key(None, "0.0.0.0") == "k-from-env-123"
    assert server_api_key("k-given-456", "0.0.0.0") == "k-given-456"
    monkeypatch.delenv("MATHLORA_API_KEY")
    assert server_api_key(None, "127.0.0.1") is None and server_api_key(None, "localhost") is None
    assert is_loopback("::1") and is_loopback("127.0.0.2") and not is_loopback("0.0.0.0")
    with pytest.raises(MathloraError, match="listens beyond"):
        server_api_key(None, "0.0.0.0")


class Upstream(LoopbackServer):
    """Answers a prompt with 'STALL' in it after 20 s at most (longer than the grace), any other with a 401
    that echoes the credentials it received."""

    def __init__(self):
        self.got = []

    def on_post(self, handler, body):
        self.got.append(dict(handler.headers))
        if b"STALL" in body:
            time.sleep(20)
            return send_json(handler, 200, b'{"choices": [{"text": "late", "finish_reason": "stop"}]}')
        send_json(handler, 401, json.dumps({"error": f"bad: Authorization: {handler.headers.get('Authorization')}"})
                  .encode())



def test_a_keyed_proxy_hides_its_upstream_credentials_and_answers_unfinished_requests_on_sigterm():
    key, password = "k-serve-0123456789", "pa55word"
    with Upstream() as upstream:
        base = upstream.base_url.replace("http://", f"http://user:{password}@")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENAI_API_KEY": "sk-operator-key-123",
               "MATHLORA_API_KEY": key}
        proc = subprocess.Popen([sys.executable, "-m", "mathlora", "serve", "--upstream", base, "--served-model",
                                 "tuned", "--no-calculator", "--shutdown-grace", "1", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = read_line(proc, "serving", 120)
            url = line.split(" on ", 1)[1].split(" ", 1)[0]
            assert password not in line and "user:" not in line and f"proxy for {upstream.base_url}" in line
            assert "clients must send its API key" in line
            bare = httpx.post(f"{url}/completions", json={"prompt": "1 + 1"}, timeout=30)
            assert bare.status_code == 401 and not upstream.got  # nothing reached the upstream
            auth = {"Authorization": f"Bearer {key}"}
            refused = httpx.post(f"{url}/completions", json={"prompt": "1 + 1"}, headers=auth, timeout=30)
            assert refused.status_code == 401 and password not in refused.text and "cGE1NXdvcmQ" not in refused.text
            assert "dXNlcjpwYTU1d29yZA" not in refused.text and "sk-operator-key-123" not in refused.text
            replies = []
            clients = [threading.Thread(target=lambda: replies.append(httpx.post(
                f"{url}/completions", json={"prompt": "STALL"}, headers=auth, timeout=30))) for _ in range(2)]
            for c in clients:
                c.start()
            time.sleep(1.0)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            took = time.monotonic() - start
            for c in clients:
                c.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0 and "stopped (SIGTERM)" in out and "Traceback" not in err, err
    assert took < 10  # not the abandoned work's 20 s
    assert len(replies) == 2
    for r in replies:
        assert r.status_code == 503 and r.json()["error"]["code"] == "server_shutting_down"
    assert password not in out + err and "sk-operator-key-123" not in out + err
