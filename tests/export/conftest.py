"""Fixtures of the export tests: a small fake run folder, a loopback S3 server (moto), fake credentials."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

FAKE_KEY_ID = "AKIAMATHLORAFAKE7Q2X"
FAKE_SECRET = "mathloraFakeSecret/9f8e7d6c5b4a3210zyxw"


def make_run(root: Path, *, model: str = "tiny-random-llama", steps=(2, 4), merged_step: int | None = 4,
             extra_overrides: dict | None = None) -> Path:
    """A run folder with the files publish and export read (contents are small stand-ins, not real weights)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mathlora.app.config import dump_config, load_config

    root.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, {"model": model, "run_dir": str(root), "train.save_steps": 2, "train.epochs": 2,
                             **(extra_overrides or {})})
    (root / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    (root / "manifest.json").write_text(json.dumps({"stages": {}}), encoding="utf-8")

    def adapter(folder: Path, seed: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter_config.json").write_text(json.dumps(
            {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}))
        (folder / "adapter_model.safetensors").write_bytes(bytes((seed * 7 + i) % 256 for i in range(3000)))
        (folder / "README.md").write_text("peft's stub card\n")

    for s in steps:
        ck = root / "train" / "checkpoints" / f"step-{s}"
        adapter(ck, s)
        (ck / "trainer_state.json").write_text(json.dumps({"step": s}))
        (ck / "optimizer.safetensors").write_bytes(b"o" * 500)
        if s == merged_step:
            (ck / "merged").mkdir()
            (ck / "merged" / "config.json").write_text('{"model_type": "llama"}')
            (ck / "merged" / "model.safetensors").write_bytes(b"m" * 4000)
    (root / "train" / "checkpoints" / ".step-6.abc.tmp").mkdir(parents=True)
    (root / "train" / "checkpoints" / ".step-6.abc.tmp" / "junk").write_text("leftover")
    adapter(root / "train" / "adapter", 99)
    (root / "train" / "summary.json").write_text(json.dumps({"steps": 4, "ratio_line": "1024/100000=0.010240"}))
    (root / "merged").mkdir()
    (root / "merged" / "config.json").write_text('{"model_type": "llama"}')
    (root / "merged" / "model.safetensors").write_bytes(b"M" * 5000)
    (root / "report.html").write_text("<html>report</html>")
    (root / "report.md").write_text("# report\n")
    (root / "plots").mkdir()
    (root / "plots" / "loss.png").write_bytes(b"\x89PNG fake")
    for which, acc, f1, em in (("base", 0.25, 40.0, 30.0), ("tuned", 0.5, 39.0, 29.5)):
        (root / "eval" / which).mkdir(parents=True)
        (root / "eval" / which / "math.json").write_text(json.dumps({"accuracy": acc, "count": 16}))
        squad = {"f1": f1, "em": em, "count": 8}
        if which == "tuned":
            squad["retention"] = {"passed": True, "keep": 0.9}
        (root / "eval" / which / "squad.json").write_text(json.dumps(squad))
    tokens = root / "tokens"
    tokens.mkdir()
    rows = [[256, 65 + i, 66, 67, 257][: 3 + i % 3] for i in range(10)]
    labels = [[-100] + r[1:] for r in rows]
    schema = pa.schema([("id", pa.string()), ("input_ids", pa.list_(pa.int32())),
                        ("labels", pa.list_(pa.int32())), ("length", pa.int32())])
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(10)], "input_ids": rows, "labels": labels,
                             "length": [len(r) for r in rows]}, schema=schema), tokens / "tokens.parquet")
    (tokens / "stats.json").write_text(json.dumps({"records": 10, "kept": 10, "seq_length": 256}))
    return root


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path / "run")


@pytest.fixture
def fake_credentials(monkeypatch):
    """Fake AWS credentials in the environment, nothing else from the machine's AWS setup."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "HTTP_PROXY", "HTTPS_PROXY",
                 "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return FAKE_KEY_ID, FAKE_SECRET


@pytest.fixture(scope="module")
def moto_endpoint():
    """A moto S3 server on 127.0.0.1 (a free port), started in a thread and stopped after the module."""
    pytest.importorskip("s3fs")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(timeout=20)
    if starter.is_alive():
        pytest.fail("moto S3 server did not start within 20 s")
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=20)


@pytest.fixture
def s3(moto_endpoint, fake_credentials, request):
    """(endpoint, boto3 client, bucket) with a fresh bucket per test."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = "models-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    client.create_bucket(Bucket=bucket)
    return moto_endpoint, client, bucket
