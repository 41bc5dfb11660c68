"""Run directory: atomic writes and a manifest that lets reruns skip fresh stages.

Every artifact is written to a temporary sibling and renamed into place, so a crash never leaves a
file (or folder) that looks complete but is not. The manifest (``manifest.json`` in the run folder)
records, per stage, the hashes of its inputs and its config section, its outputs, counts and timings.
A stage is *fresh* when its recorded fingerprint equals the current one and its outputs still exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from mathlora.errors import MathloraError

MANIFEST = "manifest.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    On an exception the temporary file or folder is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts follow the umask like any file
    try:
        yield tmp
        if directory:
            if path.exists():
                old = path.with_name(f".{path.name}.old.{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        else:
            if path.is_dir():
                raise MathloraError(f"{path} is a directory; expected a file path")
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=indent, default=str) + "\n")


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hash a file, or a folder (names and hashes of every file, sorted).

    File hashes are remembered per (path, size, mtime) for the life of the process: a pipeline run
    fingerprints the same large artifacts (tokens, weights) in several stages.
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode())
            h.update(file_sha256(f, chunk).encode())
        return h.hexdigest()
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
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


class RunDir:
    """A run folder with named artifacts and a manifest."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise MathloraError(f"run folder {self.root} exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {"stages": {}}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {"stages": {}}

    def stage_record(self, stage: str) -> dict | None:
        return self.manifest().get("stages", {}).get(stage)

    def is_fresh(self, stage: str, fp: str, outputs: list[str | os.PathLike]) -> bool:
        rec = self.stage_record(stage)
        return bool(rec) and rec.get("fingerprint") == fp and all(Path(o).exists() for o in outputs)

    def record(self, stage: str, *, fp: str, outputs: dict[str, str | os.PathLike],
               seconds: float, counts: dict | None = None, extra: dict | None = None) -> None:
        man = self.manifest()
        man.setdefault("stages", {})[stage] = {
            "fingerprint": fp,
            "outputs": {k: str(v) for k, v in outputs.items()},
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "counts": counts or {},
            **(extra or {}),
        }
        write_json_atomic(self.manifest_path, man)

    def set_meta(self, **meta: Any) -> None:
        man = self.manifest()
        man.update(meta)
        write_json_atomic(self.manifest_path, man)
