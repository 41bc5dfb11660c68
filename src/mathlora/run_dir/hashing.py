"""SHA-256 of files and folders (one implementation for the manifest, checkpoints and publishing), and the
fingerprint of a stage: its input files' hashes and its settings."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20, *, cache: bool = True) -> str:
    """Hash a file, or a folder (names and hashes of every file, sorted).

    File hashes are remembered per (path, size, mtime) for the life of the process: a pipeline run
    fingerprints the same large artifacts (tokens, weights) in several stages. ``cache=False`` reads the
    bytes again (a checksum check that must see a change made within the clock's resolution).
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode())
            h.update(file_sha256(f, chunk, cache=cache).encode())
        return h.hexdigest()
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES or not cache:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def fingerprint(inputs: dict[str, str | os.PathLike], settings: Any) -> str:
    """Fingerprint of a stage: its input files' hashes and its settings (JSON-serialisable)."""
    h = hashlib.sha256()
    for name in sorted(inputs):
        p = Path(inputs[name])
        h.update(name.encode())
        h.update(file_sha256(p).encode() if p.exists() else b"<missing>")
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()
