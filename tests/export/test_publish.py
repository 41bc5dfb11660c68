"""``mathlora publish`` against a real S3 server on 127.0.0.1 (moto) and a plain folder (file://)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mathlora.app.cli import main
from mathlora.errors import MathloraError
from mathlora.export import publish
from mathlora.export.publish import MANIFEST_NAME, plan, publish_run, scrub

from .conftest import FAKE_KEY_ID, FAKE_SECRET

EXPECTED = {
    "train/checkpoints/step-2/adapter_config.json", "train/checkpoints/step-2/adapter_model.safetensors",
    "train/checkpoints/step-2/README.md",
    "train/checkpoints/step-4/adapter_config.json", "train/checkpoints/step-4/adapter_model.safetensors",
    "train/checkpoints/step-4/README.md",
    "train/checkpoints/step-4/merged/config.json", "train/checkpoints/step-4/merged/model.safetensors",
    "train/adapter/adapter_config.json", "train/adapter/adapter_model.safetensors", "train/adapter/README.md",
    "merged/config.json", "merged/model.safetensors", "report.html", "report.md", "plots/loss.png",
}


def _objects(client, bucket, prefix):
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix) + 1:]] = body
    return out


def _manifest(client, bucket, prefix):
    return json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST_NAME}")["Body"].read())


def test_plan_lists_adapters_merged_and_report_with_cards(run_dir):
    items = plan(run_dir)
    paths = [i.path for i in items]
    assert set(paths) == EXPECTED and len(paths) == len(set(paths))
    assert not any("optimizer" in p or "trainer_state" in p or ".tmp" in p for p in paths)
    # peft's stub card is never published: a run without mathlora's cards gets them made from the run folder
    card = next(i for i in items if i.path == "train/adapter/README.md").data.decode()
    assert card.startswith("---\n") and "stub" not in card
    front = yaml.safe_load(card.split("---\n")[1])
    assert "base_model" not in front and front["library_name"] == "peft"  # tiny-random-llama is no Hub id
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.5
    assert "| LoRA r / alpha / dropout | 8 / 16 / 0 |" in card and "q_proj, v_proj" in card
    assert "| base | 25.0% |" in card and "| fine-tuned | 50.0% |" in card and "| F1 | 40.0 | 39.0 |" in card
    assert "Retention" in card and "PASSED" in card
    step_card = next(i for i in items if i.path == "train/checkpoints/step-2/README.md").data.decode()
    assert "checkpoint at step 2" in step_card
    for i in items:
        if i.data is None:
            assert i.sha256 == hashlib.sha256(i.source.read_bytes()).hexdigest() and i.size == i.source.stat().st_size
    # the run folder itself is untouched (its fingerprints must not change)
    assert (run_dir / "train" / "adapter" / "README.md").read_text() == "peft's stub card\n"


def test_upload_verify_and_resume_on_s3(run_dir, s3, capsys):
    endpoint, client, bucket = s3
    url = f"s3://{bucket}/runs/demo"
    assert main(["publish", "--run", str(run_dir), "--to", url, "--endpoint-url", endpoint]) == 0
    out = capsys.readouterr().out
    assert "16 uploaded, 0 already there" in out and "verified" in out
    objects = _objects(client, bucket, "runs/demo")
    assert set(objects) == EXPECTED | {MANIFEST_NAME}
    manifest = json.loads(objects[MANIFEST_NAME])
    assert manifest["complete"] is True and manifest["checksum"] == "sha256"
    by_path = {f["path"]: f for f in manifest["files"]}
    assert set(by_path) == EXPECTED
    for path, body in objects.items():
        if path != MANIFEST_NAME:
            assert by_path[path] == {"path": path, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    head = client.head_object(Bucket=bucket, Key="runs/demo/merged/model.safetensors")
    assert head["Metadata"]["sha256"] == by_path["merged/model.safetensors"]["sha256"]
    assert objects["train/adapter/adapter_model.safetensors"] == \
        (run_dir / "train/adapter/adapter_model.safetensors").read_bytes()

    # a rerun uploads nothing
    assert main(["publish", "--run", str(run_dir), "--to", url, "--endpoint-url", endpoint]) == 0
    assert "0 uploaded, 16 already there" in capsys.readouterr().out
    # a changed file goes again, alone
    (run_dir / "report.md").write_text("# report v2\n")
    assert main(["publish", "--run", str(run_dir), "--to", url, "--endpoint-url", endpoint]) == 0
    out = capsys.readouterr().out
    assert "1 uploaded, 15 already there, 1 replaced" in out and "checksum mismatch: remote report.md" in out
    assert _objects(client, bucket, "runs/demo")["report.md"] == b"# report v2\n"


def test_resume_after_an_injected_failure(run_dir, s3, monkeypatch):
    endpoint, client, bucket = s3
    url = f"s3://{bucket}/p"
    real_put = publish.Remote.put
    calls = {"n": 0}

    def failing_put(self, item):
        if item.path != MANIFEST_NAME:
            calls["n"] += 1
            if calls["n"] == 6:
                raise ConnectionError("connection reset by peer")
        return real_put(self, item)

    monkeypatch.setattr(publish.Remote, "put", failing_put)
    with pytest.raises(MathloraError, match="failed at .*ConnectionError.*not marked complete"):
        publish_run(run_dir, url, endpoint_url=endpoint, log=lambda line: None)
    manifest = _manifest(client, bucket, "p")
    assert manifest["complete"] is False and len(manifest["files"]) == 16  # the plan, stale-marked
    assert len(_objects(client, bucket, "p")) == 5 + 1
    monkeypatch.setattr(publish.Remote, "put", real_put)
    counts = publish_run(run_dir, url, endpoint_url=endpoint, log=lambda line: None)
    assert (counts["skipped"], counts["uploaded"], counts["replaced"]) == (5, 11, 0)
    assert _manifest(client, bucket, "p")["complete"] is True


def test_resume_after_the_process_is_killed(run_dir, s3, tmp_path):
    """A publish process SIGKILLed after 4 files (no cleanup runs); the rerun skips those 4."""
    endpoint, client, bucket = s3
    url = f"s3://{bucket}/killed"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal
        from mathlora.export import publish
        real = publish.Remote.put
        done = []
        def put(self, item):
            real(self, item)
            if item.path != {MANIFEST_NAME!r}:
                done.append(item.path)
                if len(done) == 4:
                    os.kill(os.getpid(), signal.SIGKILL)
        publish.Remote.put = put
        from mathlora.app.cli import main
        main(["publish", "--run", {str(run_dir)!r}, "--to", {url!r}, "--endpoint-url", {endpoint!r}])
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert _manifest(client, bucket, "killed")["complete"] is False
    assert len(_objects(client, bucket, "killed")) == 4 + 1
    counts = publish_run(run_dir, url, endpoint_url=endpoint, log=lambda line: None)
    assert (counts["skipped"], counts["uploaded"]) == (4, 12)
    assert _manifest(client, bucket, "killed")["complete"] is True
    for output in (proc.stdout, proc.stderr):
        assert FAKE_KEY_ID not in output and FAKE_SECRET not in output


def test_tampered_objects_are_detected(run_dir, s3, capsys, monkeypatch):
    endpoint, client, bucket = s3
    url = f"s3://{bucket}/t"
    publish_run(run_dir, url, endpoint_url=endpoint, log=lambda line: None)
    key = "t/merged/model.safetensors"
    original = client.get_object(Bucket=bucket, Key=key)
    sha = original["Metadata"]["sha256"]
    body = original["Body"].read()
    forged = b"X" + body[1:]

    # tampered content (same size, no tag): the rerun notices and uploads the run's file again
    client.put_object(Bucket=bucket, Key=key, Body=forged)
    counts = publish_run(run_dir, url, endpoint_url=endpoint, log=print)
    assert counts["replaced"] == 1 and "checksum mismatch: remote merged/model.safetensors" in capsys.readouterr().out
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body

    # tampered content that kept the sha256 tag: only reading the content catches it (--verify-all)
    client.put_object(Bucket=bucket, Key=key, Body=forged, Metadata={"sha256": sha})
    assert publish_run(run_dir, url, endpoint_url=endpoint, log=lambda line: None)["replaced"] == 0
    assert main(["publish", "--run", str(run_dir), "--to", url, "--endpoint-url", endpoint, "--verify-all"]) == 0
    assert "1 replaced" in capsys.readouterr().out
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body

    # corruption between upload and read-back: verification fails, the manifest is never marked complete
    (run_dir / "report.html").write_text("<html>new</html>")
    real_put = publish.Remote.put

    def corrupting_put(self, item):
        real_put(self, item)
        if item.path == "report.html":
            client.put_object(Bucket=bucket, Key="t/report.html", Body=b"<html>bad</html>")

    monkeypatch.setattr(publish.Remote, "put", corrupting_put)
    with pytest.raises(MathloraError, match="verification failed.*report.html"):
        publish_run(run_dir, url, endpoint_url=endpoint, log=lambda line: None)
    assert _manifest(client, bucket, "t")["complete"] is False


def test_no_credential_in_any_output(run_dir, s3, capfd, monkeypatch):
    endpoint, client, bucket = s3
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the unreachable endpoint below: fail fast
    url = f"s3://{bucket}/c"
    assert main(["publish", "--run", str(run_dir), "--to", url, "--endpoint-url", endpoint]) == 0
    assert main(["publish", "--run", str(run_dir), "--to", url, "--endpoint-url", endpoint, "--dry-run"]) == 0
    # failures: a missing bucket, an unreachable endpoint, credentials in the URL
    assert main(["publish", "--run", str(run_dir), "--to", "s3://no-such-bucket-xyz/p",
                 "--endpoint-url", endpoint]) == 2
    assert main(["publish", "--run", str(run_dir), "--to", url, "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert main(["publish", "--run", str(run_dir), "--to", f"s3://{FAKE_KEY_ID}:{FAKE_SECRET}@{bucket}/x",
                 "--endpoint-url", endpoint]) == 2
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "error: publish to s3://no-such-bucket-xyz/p failed" in text
    assert "must not carry credentials" in text
    objects = _objects(client, bucket, "c")
    for blob in [text, *(b.decode("utf-8", "replace") for b in objects.values())]:
        assert FAKE_KEY_ID not in blob and FAKE_SECRET not in blob
    assert json.loads(objects[MANIFEST_NAME])["destination"] == url


def test_scrub_removes_secrets_userinfo_and_signatures(fake_credentials):
    text = (f"failed https://user:pw@host/x?X-Amz-Credential={FAKE_KEY_ID}%2F2024&X-Amz-Signature=abcdef "
            f"key {FAKE_KEY_ID} secret {FAKE_SECRET}")
    clean = scrub(text)
    assert FAKE_KEY_ID not in clean and FAKE_SECRET not in clean and "user:pw" not in clean
    assert "X-Amz-Signature=***" in clean


def test_publish_to_a_folder_resumes_and_verifies(run_dir, tmp_path, capsys):
    dest = tmp_path / "nfs" / "models"
    assert main(["publish", "--run", str(run_dir), "--to", f"file://{dest}"]) == 0
    assert "16 uploaded" in capsys.readouterr().out
    files = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert files == EXPECTED | {MANIFEST_NAME}
    assert not any("partial" in f for f in files)
    assert json.loads((dest / MANIFEST_NAME).read_text())["complete"] is True
    # plain path, rerun: all skipped by content hash
    assert main(["publish", "--run", str(run_dir), "--to", str(dest)]) == 0
    assert "0 uploaded, 16 already there" in capsys.readouterr().out
    # a truncated remote file (a copy killed midway by something else) is repaired
    (dest / "merged" / "model.safetensors").write_bytes(b"M" * 10)
    assert main(["publish", "--run", str(run_dir), "--to", str(dest)]) == 0
    assert "1 replaced" in capsys.readouterr().out
    assert (dest / "merged" / "model.safetensors").read_bytes() == (run_dir / "merged" / "model.safetensors").read_bytes()


def test_dry_run_lists_and_touches_nothing(run_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert main(["publish", "--run", str(run_dir), "--to", str(dest), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would upload train/adapter/README.md" in out and f"would upload {MANIFEST_NAME}" in out
    assert "dry run: 16 files" in out and not dest.exists()


def test_publish_section_of_the_run_config_applies(tmp_path, capsys):
    from .conftest import make_run

    dest = tmp_path / "from-config"
    run = make_run(tmp_path / "r2", extra_overrides={"publish.to": str(dest)})
    assert main(["publish", "--run", str(run)]) == 0
    assert (dest / MANIFEST_NAME).is_file() and "16 uploaded" in capsys.readouterr().out


def test_publish_errors(run_dir, tmp_path, capsys):
    assert main(["publish", "--run", str(run_dir)]) == 2
    assert "give --to" in capsys.readouterr().err
    assert main(["publish", "--run", str(tmp_path / "nope"), "--to", str(tmp_path / "d")]) == 2
    assert "not a mathlora run folder" in capsys.readouterr().err
    assert main(["publish", "--run", str(run_dir), "--to", str(tmp_path / "d"), "--endpoint-url", "http://x"]) == 2
    assert "--endpoint-url is for s3://" in capsys.readouterr().err


def test_run_config_publish_section_and_pipeline_hook(tmp_path, monkeypatch):
    from mathlora.app import pipeline
    from mathlora.app.config import load_config

    cfg = load_config(None, {"run_dir": str(tmp_path / "r"), "publish.to": "s3://b/p",
                             "publish.endpoint_url": "http://127.0.0.1:1"})
    assert cfg.publish.to == "s3://b/p"
    with pytest.raises(MathloraError, match="publish.nope: unknown key"):
        load_config(None, {"publish.nope": 1})
    calls = []
    p = pipeline.Pipeline(cfg, progress=False)
    monkeypatch.setattr(p, "stages", ())  # no stage runs: only the publish hook after them
    monkeypatch.setattr("mathlora.export.publish.publish_run",
                        lambda root, to, **kw: calls.append((Path(root), to, kw)) or {"uploaded": 0})
    result = p.run()
    assert calls == [(tmp_path / "r", "s3://b/p", {"endpoint_url": "http://127.0.0.1:1", "verify_all": False,
                                                    "replace": False, "private": False})]
    assert result["publish"] == {"uploaded": 0}


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_destination_of_another_run_is_refused_unless_replace(tmp_path, capsys):
    from .conftest import make_run

    dest = tmp_path / "dest"
    run_a = make_run(tmp_path / "a", steps=(2, 4, 6))
    run_b = make_run(tmp_path / "b", steps=(2,), merged_step=None)
    publish_run(run_a, str(dest), log=lambda line: None)
    before = _files(dest)
    with pytest.raises(MathloraError, match="another run's publication.*--replace"):
        publish_run(run_b, f"file://{dest}", log=lambda line: None)
    assert _files(dest) == before  # nothing touched
    publish_run(run_b, f"file://{dest}", replace=True, log=lambda line: None)
    manifest = json.loads((dest / MANIFEST_NAME).read_text())
    listed = {f["path"] for f in manifest["files"]}
    assert manifest["complete"] and set(_files(dest)) == listed | {MANIFEST_NAME}  # none of A's files remain
    assert "train/checkpoints/step-6/adapter_config.json" not in listed


def test_a_destination_of_user_files_is_refused_and_partials_are_cleaned(run_dir, tmp_path):
    dest = tmp_path / "dest"
    (dest / "merged").mkdir(parents=True)
    (dest / "merged" / "config.json").write_text("the user's")
    with pytest.raises(MathloraError, match="did not publish"):
        publish_run(run_dir, str(dest), log=lambda line: None)
    assert (dest / "merged" / "config.json").read_text() == "the user's"
    other = tmp_path / "other"
    publish_run(run_dir, str(other), log=lambda line: None)
    leftover = other / "report.html.partial-4242"  # a killed upload's temporary file
    leftover.write_bytes(b"half")
    (other / "report.html").write_bytes(b"changed")
    publish_run(run_dir, str(other), log=lambda line: None)
    assert not leftover.exists()


def test_a_file_url_with_a_host_is_refused(run_dir, tmp_path):
    with pytest.raises(MathloraError, match="with a host"):
        publish_run(run_dir, f"file://fileserver{tmp_path}/x", log=lambda line: None)
    assert not (tmp_path / "x").exists()
