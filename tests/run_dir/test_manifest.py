"""run_dir.manifest: verified freshness, and a damaged manifest never trusted."""

from __future__ import annotations

import json

import pytest
from tests.cli_helpers import SMALL, assert_one_error, cli, error_lines
from tests.conftest import single_torch_thread


one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def test_a_truncated_tokens_file_is_redone_and_the_finished_training_kept(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "train", *SMALL)[0] == 0
    adapter = (run / "train/adapter/adapter_model.safetensors").read_bytes()
    tokens = run / "tokens/tokens.parquet"
    good = tokens.read_bytes()
    tokens.write_bytes(good[: len(good) // 2])

    rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "train", *SMALL)
    assert rc == 0, err
    assert "tokenize: tokens/tokens.parquet is damaged" in out and "train: fresh, skipped" in out
    assert tokens.read_bytes() == good
    assert (run / "train/adapter/adapter_model.safetensors").read_bytes() == adapter

    # the manifest carries size and hash of each output: overwritten bytes (same size) are caught too
    record = json.loads((run / "manifest.json").read_text())["stages"]["tokenize"]["verify"]["tokens/tokens.parquet"]
    assert record["size"] == len(good) and len(record["sha256"]) == 64
    from mathlora.run_dir.layout import RunLayout
    from mathlora.run_dir.manifest import Manifest

    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF
    tokens.write_bytes(bytes(damaged))
    assert "content differs" in Manifest(RunLayout(run)).stale_reason(
        "tokenize", json.loads((run / "manifest.json").read_text())["stages"]["tokenize"]["fingerprint"], [tokens])


@pytest.mark.parametrize("content", [b"[]", b"\x00\xff\xfe binary", b'{"stages": []}', "directory"])
def test_damaged_manifests(tmp_path, capsys, content):
    run = tmp_path / "run"
    run.mkdir()
    if content == "directory":
        (run / "manifest.json").mkdir()
        rc, _, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)
        assert_one_error(rc, err, "manifest.json is a directory")
        return
    (run / "manifest.json").write_bytes(content)
    rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)
    assert rc == 0 and "manifest.json is damaged" in err and not error_lines(err), err
    assert json.loads((run / "manifest.json").read_text())["stages"]["synth"]
    (run / "manifest.json").write_bytes(content)
    rc, _, err = cli(capsys, "report", run)
    assert_one_error(rc, err, "damaged")
