"""openai_client: secrets never stored, a timeout bounds the whole request."""

from __future__ import annotations

import json
import time

import pytest
from tests.cli_helpers import Server, assert_one_error, cli, completion, drip, records, write_lines
from tests.conftest import single_torch_thread
from tests.loopback import send_json


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def test_an_api_key_echoed_by_the_server_is_never_stored(tmp_path, capsys, monkeypatch):
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    def echo(handler, body):
        send_json(handler, 401, json.dumps({"error": f"invalid key: {handler.headers['Authorization']}"}).encode())

    src = write_lines(tmp_path / "in.jsonl", records(3))
    with Server(echo) as server:
        rc, _, err = cli(capsys, "label", "--input", src, "--output", tmp_path / "out.jsonl", "--judge", "openai",
                         "--model", "m", "--base-url", server.base_url, "--quiet")
    assert_one_error(rc, err, "HTTP 401")
    assert secret not in err
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

    from mathlora.openai_client import EndpointConfig, RetryPolicy

    end = EndpointConfig(max_retries=2, retry_base_delay=0.1, retry_max_delay=1.0, api_key_env="MY_KEY")
    assert end.policy() == RetryPolicy(2, 0.1, 1.0)
    monkeypatch.delenv("MY_KEY", raising=False)
    assert end.api_key() == "EMPTY"
    monkeypatch.setenv("MY_KEY", "sk-1")
    assert end.api_key() == "sk-1"
    with pytest.raises(ValidationError, match="port 0 is not a server port"):
        EndpointConfig(base_url="http://127.0.0.1:0/v1")
