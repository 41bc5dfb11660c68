"""openai_client: secrets never stored, a timeout bounds the whole request."""

from __future__ import annotations

import json
import time

import pytest
from tests.cli_helpers import Server, assert_one_error, cli, completion, drip, records, write_lines
from tests.conftest import single_torch_thread
from tests.loopback import send_json


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def _label_against(tmp_path, capsys, respond, n: int = 3) -> tuple[int, str]:
    """``mathlora label --judge openai`` of ``n`` records against a server answering with ``respond``."""
    src = write_lines(tmp_path / "in.jsonl", records(n))
    with Server(respond) as server:
        rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "out.jsonl", "--judge", "openai",
                         "--model", "m", "--base-url", server.base_url, "--quiet")
    return rc, err


@pytest.mark.parametrize("ending", ["", "\r\n"], ids=["plain", "crlf"])
def test_an_api_key_echoed_by_the_server_is_never_stored_in_any_form(tmp_path, capsys, monkeypatch, ending):
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret + ending)

    def echo(handler, body):  # the key as sent, and as a library prints it escaped
        key = handler.headers["Authorization"].removeprefix("Bearer ")
        send_json(handler, 401, json.dumps({"error": f"invalid key: {key} / {key + chr(13)!r}"}).encode())

    rc, err = _label_against(tmp_path, capsys, echo)
    assert_one_error(rc, err, "HTTP 401")
    assert secret not in err and ("stripped" in err) == bool(ending)
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f
    assert "***" in (tmp_path / "label_failures.jsonl").read_text()


def test_timeout_bounds_the_whole_request(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", records(1))
    with Server(lambda h, b: drip(h, completion(3), 0.5)) as server:
        start = time.perf_counter()
        rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "out.jsonl", "--judge", "openai",
                         "--model", "m", "--base-url", server.base_url, "--timeout", "1", "--max-retries", "0",
                         "--quiet")
        elapsed = time.perf_counter() - start
    assert_one_error(rc, err, "timeout")
    assert elapsed < 4, elapsed


def test_an_endpoint_gives_its_retry_policy_and_key_and_refuses_a_bad_url(monkeypatch):
    from pydantic import ValidationError

    from mathlora.modeling.openai_client import EndpointConfig, RetryPolicy

    end = EndpointConfig(max_retries=2, retry_base_delay=0.1, retry_max_delay=1.0, api_key_env="MY_KEY")
    assert end.policy() == RetryPolicy(2, 0.1, 1.0)
    monkeypatch.delenv("MY_KEY", raising=False)
    assert end.api_key() == "EMPTY"
    monkeypatch.setenv("MY_KEY", "sk-1")
    assert end.api_key() == "sk-1"
    with pytest.raises(ValidationError, match="port 0 is not a server port"):
        EndpointConfig(base_url="http://127.0.0.1:0/v1")


def test_scrub_covers_the_escaped_forms_of_a_key():
    from mathlora.modeling.openai_client import scrub

    key = "sk-abc123\r"
    for text in (f"key {key}", f"header {('Bearer ' + key).encode()!r}", json.dumps({"k": key}),
                 f"{key.strip()} rejected", f"{key!r}"):
        assert "sk-abc123" not in scrub(text, key), text


def test_a_non_ascii_key_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-clé-0123456789")
    rc, err = _label_against(tmp_path, capsys, lambda h, b: send_json(h, 200, completion(2)), n=2)
    line = assert_one_error(rc, err, "OPENAI_API_KEY", "non-ASCII")
    assert "clé" not in line


def _post(server, max_bytes: int):
    import asyncio

    import httpx

    from mathlora.modeling.openai_client import post_json

    async def go():
        async with httpx.AsyncClient() as client:
            return await post_json(client, server.base_url + "/completions", {}, {}, 10.0, max_bytes=max_bytes)

    return asyncio.run(go())


def test_replies_are_bounded_in_bytes_after_decompression():
    import gzip

    from mathlora.modeling.openai_client import FatalRequestError

    big = b'{"x": "' + b"a" * 50_000 + b'"}'
    bomb = gzip.compress(b" " * (20 << 20), compresslevel=9)
    with Server(lambda h, b: send_json(h, 200, big)) as server:
        assert len(_post(server, 100_000).content) == len(big)
        with pytest.raises(FatalRequestError, match="larger than 10000 bytes"):
            _post(server, 10_000)
    with Server(lambda h, b: send_json(h, 200, bomb, {"Content-Encoding": "gzip"})) as server:
        with pytest.raises(FatalRequestError, match="after decompression"):
            _post(server, 1 << 20)


def test_deep_json_and_lone_surrogates_in_a_reply():
    from mathlora.modeling.openai_client import Reply, RetryableError, json_payload

    with pytest.raises(RetryableError, match="malformed"):
        json_payload(Reply(200, {}, b"[" * 200_000 + b"]" * 200_000))
    obj = json_payload(Reply(200, {}, b'{"choices": [{"text": "a\\ud800b \\ud83d\\ude00"}]}'))
    assert obj["choices"][0]["text"] == "a\ufffdb \U0001F600"
    json.dumps(obj, ensure_ascii=False).encode("utf-8")  # writable as UTF-8


def test_retry_after_is_capped_by_the_longest_backoff():
    import asyncio
    import random

    from mathlora.modeling.openai_client import RetryableError, RetryPolicy, with_retries

    calls = []

    async def call():
        calls.append(time.perf_counter())
        if len(calls) == 1:
            raise RetryableError("HTTP 429 rate limited", retry_after=600.0)
        return "ok"

    start = time.perf_counter()
    assert asyncio.run(with_retries(call, RetryPolicy(3, 0.01, 0.05), random.Random(0))) == ("ok", 2)
    assert time.perf_counter() - start < 5
