"""run_dir.hashing: one SHA-256 for files and folders; a stage fingerprint of input hashes and settings."""

import hashlib
import os

from mathlora.run_dir.hashing import file_sha256, fingerprint


def test_file_and_folder_hashes(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "x").write_bytes(b"1")
    first = file_sha256(folder)
    (folder / "x").rename(folder / "y")  # same bytes under another name: another folder
    assert file_sha256(folder) != first


def test_an_uncached_hash_sees_a_change_made_within_the_clocks_resolution(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"aaaa")
    before = file_sha256(f)
    stat = f.stat()
    f.write_bytes(b"bbbb")
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert file_sha256(f) == before  # the cache answers
    assert file_sha256(f, cache=False) == hashlib.sha256(b"bbbb").hexdigest()


def test_fingerprint_follows_inputs_and_settings(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text("1\n")
    base = fingerprint({"input": f}, {"k": 1})
    assert fingerprint({"input": f}, {"k": 1}) == base
    assert fingerprint({"input": f}, {"k": 2}) != base
    assert fingerprint({"input": tmp_path / "missing"}, {"k": 1}) != base


def test_content_identity_sees_replaced_weights_without_reading_them_whole(tmp_path, monkeypatch):
    import json
    import struct

    from mathlora.run_dir import hashing

    monkeypatch.setattr(hashing, "IDENTITY_HASHED", 1024)  # files over 1 KB count as large here
    monkeypatch.setattr(hashing, "IDENTITY_SAMPLE", 64)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden": 64}')
    header = json.dumps({"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}).encode()
    weights = folder / "model.safetensors"

    def write(fill: bytes) -> str:
        weights.write_bytes(struct.pack("<Q", len(header)) + header + fill * 4096)
        os.utime(weights, (1, 1))  # the same time stamp every write: the content alone decides
        return hashing.content_identity(folder)

    first = write(b"\x01")
    assert write(b"\x01") == first
    assert write(b"\x02") != first  # replaced weights: head and tail differ
    (folder / "config.json").write_text('{"hidden": 65}')
    os.utime(folder / "config.json", (2, 2))
    assert write(b"\x01") != first
    (folder / ".cache").write_text("ignored")  # hidden files are not the model
    (folder / "config.json").write_text('{"hidden": 64}')
    os.utime(folder / "config.json", (3, 3))
    assert write(b"\x01") == first
