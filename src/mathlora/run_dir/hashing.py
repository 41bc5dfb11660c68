"""SHA-256 of files and folders (one implementation for the manifest, checkpoints and publishing), and the one
digest of text and settings (``digest``, ``settings_digest``) behind every fingerprint: a stage's (its input
files' hashes and its settings), the trainer's run fingerprint, the SQuAD samples', the trackers' logged
points, a record id and a rubric file's version. Each is the SHA-256 of the same bytes it hashed before (a
sequence of ``update`` calls is the hash of their concatenation), so no recorded fingerprint changes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_FILE_HASHES: dict[tuple[str, int, int], str] = {}

# A model folder's card (``README.md`` at its top) is documentation, rewritten in place when the run's scores
# arrive (``mathlora.export.model_card``): not part of a folder's hash or of its verified content.
CARD = "README.md"


def is_card(folder: Path, path: Path) -> bool:
    """Whether ``path`` is the card of ``folder`` (its top-level ``README.md``)."""
    return path.parent == folder and path.name == CARD


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20, *, cache: bool = True) -> str:
    """Hash a file, or a folder (names and hashes of every file, sorted).

    File hashes are remembered per (path, size, mtime) for the life of the process: a pipeline run
    fingerprints the same large artifacts (tokens, weights) in several stages. ``cache=False`` reads the
    bytes again (a checksum check that must see a change made within the clock's resolution).
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not is_card(path, p)):
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


def digest(text: str, length: int | None = None) -> str:
    """The one fingerprint hash: SHA-256 of ``text`` (UTF-8), hex, its first ``length`` digits when given."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def settings_text(settings: Any) -> str:
    """The text settings are hashed as: JSON with sorted keys (anything else JSON cannot write by ``str``)."""
    return json.dumps(settings, sort_keys=True, default=str)


def settings_digest(settings: Any, length: int | None = None) -> str:
    """``digest`` of settings (``settings_text``)."""
    return digest(settings_text(settings), length)


def fingerprint(inputs: dict[str, str | os.PathLike], settings: Any) -> str:
    """Fingerprint of a stage: its input files' hashes and its settings (JSON-serialisable)."""
    files = "".join(name + (file_sha256(Path(inputs[name])) if Path(inputs[name]).exists() else "<missing>")
                    for name in sorted(inputs))
    return digest(files + settings_text(settings))


IDENTITY_HASHED = 64 << 20  # files up to this size are hashed whole by ``content_identity``
IDENTITY_SAMPLE = 1 << 20   # of a larger file: its size, header and this many bytes at its start and end


def _sampled_sha256(path: Path, size: int) -> str:
    """SHA-256 of a large file's size, its head (a safetensors header whole: names, dtypes, shapes) and tail."""
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if path.suffix == ".safetensors" and len(head) == 8 else 0
        h.update(head + fh.read(min(n, 100 << 20) + IDENTITY_SAMPLE))
        fh.seek(max(0, size - IDENTITY_SAMPLE))
        h.update(fh.read(IDENTITY_SAMPLE))
    return h.hexdigest()


def content_identity(path: str | os.PathLike) -> str:
    """A digest that changes when a file's or folder's content is replaced, cheap for multi-GB weights.

    Every file (in a folder: every non-hidden file, with its relative name) counts with its size and its
    SHA-256; files over ``IDENTITY_HASHED`` bytes with their size and a hash of their head (a safetensors
    header whole) and tail, so a replaced model is noticed without reading 16 GB on every run."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()
                                         and not any(part.startswith(".") for part in f.relative_to(p).parts))
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        digest = file_sha256(f) if size <= IDENTITY_HASHED else _sampled_sha256(f, size)
        h.update(f"{f.relative_to(p) if f != p else f.name}\0{size}\0{digest}\n".encode())
    return h.hexdigest()
