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
