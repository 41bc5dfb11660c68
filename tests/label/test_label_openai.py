import json
import time
from collections import Counter

import pytest
from chat_stub import ChatStub, expected_level, expected_probs, stub_records

from mathlora.errors import MathloraError
from mathlora.label.config import LabelConfig
from mathlora.label.openai_judge import RetryPolicy, chat_url, parse_retry_after, read_completion
from mathlora.label.run import label_file
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.modeling.openai_client import EndpointConfig

FAST = dict(judge="openai", model="stub", timeout=0.3, retry_base_delay=0.005, retry_max_delay=0.02)


def label_config(**flat) -> LabelConfig:
    """A LabelConfig from one flat set of settings (the endpoint's go into ``endpoint``)."""
    endpoint = {k: flat.pop(k) for k in list(flat) if k in EndpointConfig.model_fields}
    return LabelConfig(**flat, endpoint=endpoint)


def _label(tmp_path, stub, records, **cfg):
    src = tmp_path / "in.jsonl"
    if not src.exists():
        write_jsonl(src, records)
    cfg = label_config(**{**FAST, "base_url": stub.base_url, **cfg})
    return label_file(cfg, None, src, tmp_path / "out.jsonl", base_model="unused", progress=False)


def test_every_record_labeled_or_failed_once_with_30_percent_faults(tmp_path):
    records = stub_records(150)
    with ChatStub(fault_rate=0.3, slow_seconds=0.6, seed=1) as stub:
        summary = _label(tmp_path, stub, records, concurrency=8, max_retries=2)
    assert set(stub.faults_served) == {"500", "429", "slow", "malformed", "nodigit", "outofrange"}
    out = list(read_jsonl(tmp_path / "out.jsonl"))
    failed = list(read_jsonl(tmp_path / "label_failures.jsonl"))
    labeled_ids = [r["id"] for r in out]
    failed_ids = [r["id"] for r in failed]
    assert len(labeled_ids) == len(set(labeled_ids)) and len(failed_ids) == len(set(failed_ids))
    assert sorted(labeled_ids + failed_ids) == sorted(r["id"] for r in records)
    assert labeled_ids == [r["id"] for r in records if r["id"] in set(labeled_ids)]  # input order
    assert summary["labeled"] == len(out) and summary["failed"] == len(failed) > 0
    for row in out:
        assert row["difficulty"] == expected_level(row["id"])
        assert row["difficulty_probs"] == pytest.approx(expected_probs(row["id"]))
        assert row["difficulty_source"] == "openai:stub" and "extra" in row
    # a failed record was asked exactly 1 + max_retries times, and every fault really was retried
    for row in failed:
        assert stub.counts[row["id"]] == row["attempts"] == 3
    for rid in labeled_ids:
        assert all(stub.fault_for(rid, a) for a in range(1, stub.counts[rid]))


def test_retry_failed_asks_only_the_failed_again(tmp_path):
    records = stub_records(40)
    with ChatStub(fault_rate=0.5, faults=("500",), seed=2) as stub:
        first = _label(tmp_path, stub, records, max_retries=0)
        asked_first = Counter(stub.counts)
        again = _label(tmp_path, stub, records, max_retries=0)
        assert stub.counts == asked_first  # failures are not retried without --retry-failed
        assert again["failed"] == first["failed"] > 0 and again["from_cache"] == first["labeled"]
        failed = {r["id"] for r in read_jsonl(tmp_path / "label_failures.jsonl")}
        stub.fault_rate = 0.0  # the endpoint has recovered
        final = _label(tmp_path, stub, records, max_retries=0, retry_failed=True)
    assert {rid for rid in stub.counts if stub.counts[rid] > asked_first[rid]} == failed
    assert all(stub.counts[rid] == asked_first[rid] + 1 for rid in failed)
    assert final["failed"] == 0 and final["from_cache"] == first["labeled"]
    assert len(list(read_jsonl(tmp_path / "out.jsonl"))) == 40
    assert list(read_jsonl(tmp_path / "label_failures.jsonl")) == []


def test_retry_after_is_honoured(tmp_path):
    with ChatStub(fault_rate=1.0, faults=("429",), retry_after="0.4") as stub:
        start = time.perf_counter()
        summary = _label(tmp_path, stub, stub_records(1), max_retries=2, retry_max_delay=1.0)
    elapsed = time.perf_counter() - start
    assert stub.counts["r0000"] == 3 and summary["failed"] == 1
    assert elapsed >= 0.8  # two waits of 0.4 s (within retry_max_delay), although the backoff alone is a few ms
    assert "429" in next(read_jsonl(tmp_path / "label_failures.jsonl"))["error"]


def test_client_errors_fail_at_once_and_a_dead_endpoint_stops_the_run(tmp_path):
    with ChatStub(status=401) as stub:
        summary = _label(tmp_path, stub, stub_records(3), max_retries=5)
    assert summary["failed"] == 3 and set(stub.counts.values()) == {1}
    assert "HTTP 401" in next(read_jsonl(tmp_path / "label_failures.jsonl"))["error"]

    with ChatStub() as dead:
        url = dead.base_url
    with pytest.raises(MathloraError, match="failed in a row"):
        label_file(label_config(**{**FAST, "base_url": url, "max_retries": 0, "max_consecutive_failures": 3,
                               "cache": str(tmp_path / "dead.sqlite")}),
                   None, tmp_path / "in.jsonl", tmp_path / "dead.jsonl", base_model="x", progress=False)
    assert not (tmp_path / "dead.jsonl").exists()


def test_servers_without_logprobs_are_asked_again_without_them(tmp_path):
    with ChatStub(reject_logprobs=True) as stub:
        summary = _label(tmp_path, stub, stub_records(5), concurrency=1, max_retries=0)
    assert summary["failed"] == 0
    rows = list(read_jsonl(tmp_path / "out.jsonl"))
    assert all("difficulty_probs" not in r for r in rows)
    assert [r["difficulty"] for r in rows] == [expected_level(r["id"]) for r in rows]


def test_api_key_is_sent_but_never_written(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret-123")
    with ChatStub() as stub:
        _label(tmp_path, stub, stub_records(3), api_key_env="MY_JUDGE_KEY")
    assert stub.auth_headers == {"Bearer sk-secret-123"}
    for f in tmp_path.iterdir():
        assert b"sk-secret-123" not in f.read_bytes()


def test_openai_judge_needs_a_model(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", stub_records(1))
    with pytest.raises(MathloraError, match="needs a model"):
        label_file(LabelConfig(judge="openai"), None, tmp_path / "in.jsonl", tmp_path / "o.jsonl", base_model="x")


def test_small_helpers():
    assert chat_url("http://h/v1/") == "http://h/v1/chat/completions"
    assert chat_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    import random
    policy = RetryPolicy(max_retries=9, base_delay=1.0, max_delay=5.0)
    delays = [policy.delay(a, random.Random(0)) for a in range(1, 6)]
    assert 0.5 <= delays[0] <= 1.5 and 1.0 <= delays[1] <= 3.0 and all(d <= 7.5 for d in delays)
    assert read_completion({"choices": [{"message": {"content": "Difficulty: 2"}}]}) == (2, None)
    assert json.dumps(read_completion(ChatStub().completion("r1"))[1]) == json.dumps(expected_probs("r1"))
