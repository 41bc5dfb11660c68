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


def test_every_fingerprint_goes_through_the_one_digest_and_keeps_its_recorded_value(tmp_path):
    """The stage fingerprint, the trainer's run fingerprint (settings_digest), the SQuAD samples', the trackers'
    points, record ids and a rubric file's version: each is the digest it was before the unification
    (the old formula, written out here, on non-ASCII text)."""
    import hashlib
    import json

    from mathlora.data.ingest import record_id
    from mathlora.evaluate.squad import samples_fingerprint
    from mathlora.label.prompt import load_prompt
    from mathlora.modeling.tracking import _digest
    from mathlora.run_dir.hashing import digest, file_sha256, fingerprint, settings_digest

    (tmp_path / "a.jsonl").write_text("计算 1 + 1\n", encoding="utf-8")
    inputs = {"records": tmp_path / "a.jsonl", "gone": tmp_path / "missing"}
    settings = {"lr": 1e-4, "name": "中文", "path": tmp_path}
    h = hashlib.sha256()
    for name in sorted(inputs):
        h.update(name.encode())
        h.update(file_sha256(inputs[name]).encode() if inputs[name].exists() else b"<missing>")
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    assert fingerprint(inputs, settings) == h.hexdigest()

    run = {"model": "m", "seed": 3, "train": {"lr": 0.1, "name": "ü"}}
    assert settings_digest(run, 16) == hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]

    samples = [{"id": "q1", "answers": ["北京"]}, {"id": "q2", "answers": ["x", "y"]}]
    old = hashlib.sha256()
    for s in samples:
        old.update(json.dumps([s["id"], s["answers"]], ensure_ascii=False).encode())
    assert samples_fingerprint(samples) == old.hexdigest()[:16]

    points = [(2, {"b": 1.0, "a": 0.5}), (1, {"loss": 2.0})]
    text = json.dumps([[step, dict(sorted(sc.items()))] for step, sc in points], sort_keys=True)
    assert _digest(points) == hashlib.sha256(text.encode()).hexdigest()[:16]

    assert record_id("1 + 1", "2") == hashlib.sha256("1 + 1\x1f2".encode("utf-8")).hexdigest()[:16]
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("评分 {problem} {solution}", encoding="utf-8")
    prompt = load_prompt(str(rubric))
    assert prompt.version == "file-" + hashlib.sha256("评分 {problem} {solution}".encode()).hexdigest()[:12]
    assert digest("x") == hashlib.sha256(b"x").hexdigest()
