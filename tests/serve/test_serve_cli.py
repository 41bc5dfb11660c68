"""``mathlora serve`` as a command: the tiny model served from a subprocess, answered over loopback, stopped by
SIGTERM with exit status 0; its mistakes are one-line errors."""

import os
import signal
import socket
import subprocess
import sys

import httpx
import openai
from serving import read_line
from tests.cli_helpers import assert_one_error, cli


def _serve_then_sigterm(args: list[str], check) -> tuple[str, str, str]:
    """Start ``mathlora serve ARGS --port 0``, call ``check(ready line, /v1 URL)``, send SIGTERM; returns the
    ready line and what it printed, after asserting a clean exit."""
    proc = subprocess.Popen([sys.executable, "-m", "mathlora", "serve", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = read_line(proc, "serving", 120)
        check(line, line.split(" on ", 1)[1].split(" ", 1)[0])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped (SIGTERM)" in out and "Traceback" not in err
    return line, out, err


def test_serve_the_tiny_model_then_stop_on_sigterm():
    def check(line, url):
        assert "calculator on" in line and "template alpaca" in line and "http://127.0.0.1:" in line
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=60)
        reply = client.completions.create(model="tiny", prompt="计算 1.5 + 2.25 等于多少？")
        assert reply.usage.completion_tokens == 4 and reply.choices[0].finish_reason == "length"
        assert httpx.post(f"{url}/completions", json={"prompt": 3}, timeout=30).status_code == 400

    _serve_then_sigterm(["--model", "tiny-random-llama", "--set", "eval.max_new_tokens=4", "--name", "tiny"], check)


def test_serve_as_a_proxy_in_front_of_an_upstream_server():
    from calculator_model import ScriptServer, build_tokenizer

    def check(line, url):
        assert "'tuned'" in line and f"proxy for {upstream.base_url}" in line and "calculator on" in line
        reply = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=60).chat.completions.create(
            model="tuned", messages=[{"role": "user", "content": "计算 1.5 + 2.25 等于多少？"}])
        assert reply.choices[0].message.content == "<<1.5 + 2.25=3.75>>\n答案：3.75"

    with ScriptServer(build_tokenizer()) as upstream:
        _serve_then_sigterm(["--upstream", upstream.base_url, "--served-model", "tuned"], check)


def test_serve_mistakes_are_one_line_errors(capsys, tmp_path):
    assert_one_error(*cli(capsys, "serve", "--run", tmp_path / "nope")[::2], "run folder not found")
    assert_one_error(*cli(capsys, "serve", "--upstream", "ftp://x", "--served-model", "m")[::2], "http(s) URL")
    assert_one_error(*cli(capsys, "serve", "--upstream", "http://127.0.0.1:9/v1")[::2], "--served-model")
    assert_one_error(*cli(capsys, "serve", "--upstream", "http://127.0.0.1:9/v1", "--served-model", "m",
                          "--adapter", tmp_path)[::2], "upstream server applies the adapter")
    assert_one_error(*cli(capsys, "serve", "--port", "70000")[::2], "--port")
    assert_one_error(*cli(capsys, "serve", "--max-tokens-limit", "0")[::2], "--max-tokens-limit")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        assert_one_error(*cli(capsys, "serve", "--upstream", "http://127.0.0.1:9/v1", "--served-model", "m",
                              "--port", taken.getsockname()[1])[::2], "cannot listen")
    finally:
        taken.close()
