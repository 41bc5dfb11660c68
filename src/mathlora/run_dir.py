"""Run directory: atomic writes and a manifest that lets reruns skip fresh stages.

Every artifact is written to a temporary sibling and renamed into place, so a crash never leaves a
file (or folder) that looks complete but is not. The manifest (``manifest.json`` in the run folder)
records, per stage, the hashes of its inputs and its config section, its outputs, counts and timings.
A stage is *fresh* when its recorded fingerprint equals the current one and its outputs still verify:
each output is recorded with its size and SHA-256 (files over ``LARGE_FILE`` bytes: size and a format
check of the Parquet footer / safetensors header instead of a hash), so a truncated or overwritten
artifact is redone, never trusted.

Folders replaced by a stage carry a marker (``.mathlora-artifact``); ``check_output_dir`` refuses to
replace an existing non-empty folder that is not a mathlora artifact of the same kind (user data is
never deleted) unless asked to. ``RunLock`` is an OS file lock on a run folder: one writer at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import struct
import sys
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
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; folders follow the umask like any folder
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts follow the umask like any file
    try:
        yield tmp
        if directory:
            if path.is_symlink() or path.exists():
                # build beside, swap, then remove the old one; a symlink is replaced, never followed
                old = path.with_name(f".{path.name}.old.{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
                if old.is_symlink() or not old.is_dir():
                    old.unlink()
                else:
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


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN/Infinity float replaced by None (JSON has no such values)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_text(obj: Any, *, indent: int | None = 2) -> str:
    """Valid JSON always: non-finite floats become null instead of the invalid ``NaN``/``Infinity``."""
    try:
        return json.dumps(obj, ensure_ascii=False, indent=indent, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(finite_json(obj), ensure_ascii=False, indent=indent, default=str, allow_nan=False)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    write_text_atomic(path, json_text(obj, indent=indent) + "\n")


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


# -- folders mathlora may replace ---------------------------------------------------------------------------

ARTIFACT_MARKER = ".mathlora-artifact"


def write_artifact_marker(folder: str | os.PathLike, kind: str) -> None:
    """Mark ``folder`` as a mathlora artifact of ``kind`` (``tokens``, ``merged``): it may be replaced later."""
    Path(folder, ARTIFACT_MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")


def artifact_kind(folder: str | os.PathLike) -> str | None:
    try:
        data = json.loads(Path(folder, ARTIFACT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def check_output_dir(path: str | os.PathLike, kind: str, *, overwrite: bool = False,
                     known_files: tuple[str, ...] = ()) -> Path:
    """Refuse an output folder whose replacement could destroy data mathlora did not create.

    An existing non-empty folder is replaced only when it is a mathlora artifact of ``kind`` (its marker,
    or only ``known_files`` in it: folders written before markers existed) or with ``overwrite``. The
    current folder (or one above it) and symbolic links are never replaced.
    """
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise MathloraError(f"output {path!r} names the current folder or one above it; "
                            f"give a new folder, e.g. --output {kind}")
    resolved = p.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise MathloraError(f"output {path} is the current folder or one above it; give a new folder")
    if p.is_symlink():
        raise MathloraError(f"output {p} is a symbolic link; give a real folder path "
                            "(mathlora does not replace folders through links)")
    if p.exists() and not p.is_dir():
        raise MathloraError(f"output {p} exists and is a file; expected a folder path")
    if p.is_dir() and not overwrite:
        names = {e.name for e in p.iterdir()}
        ours = artifact_kind(p) == kind or (known_files and names <= set(known_files) | {ARTIFACT_MARKER})
        if names and not ours:
            found = artifact_kind(p)
            what = f"a mathlora {found} folder" if found else "not a mathlora folder"
            raise MathloraError(f"output folder {p} is not empty and is {what} (holds e.g. {sorted(names)[0]!r}); "
                                f"refusing to replace it: give a new folder, or --overwrite to replace it")
    return p


# -- verifying artifacts ------------------------------------------------------------------------------------

LARGE_FILE = 256 << 20  # larger files are checked by size + format footer, not hashed


def _parquet_problem(path: Path, size: int) -> str | None:
    if size < 12:
        return "too short for Parquet"
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(size - 8)
        tail = fh.read(8)
    footer = struct.unpack("<I", tail[:4])[0]
    if head != b"PAR1" or tail[4:] != b"PAR1" or footer > size - 12:
        return "Parquet footer missing (truncated?)"
    try:
        import pyarrow.parquet as pq

        pq.read_metadata(path)
    except Exception as e:  # pyarrow raises several kinds
        return f"Parquet metadata unreadable ({type(e).__name__})"
    return None


def _safetensors_problem(path: Path, size: int) -> str | None:
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            return "too short for safetensors"
        n = struct.unpack("<Q", raw)[0]
        if n > min(size - 8, 100 << 20):
            return "safetensors header length out of range"
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return "safetensors header is not JSON"
    if not isinstance(header, dict):
        return "safetensors header is not an object"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return "safetensors header has bad offsets"
    if 8 + n + end != size:
        return f"safetensors size {size} does not match its header ({8 + n + end}; truncated?)"
    return None


def format_problem(path: str | os.PathLike) -> str | None:
    """A cheap structural check of a Parquet or safetensors file (None when fine or another format)."""
    p = Path(path)
    size = p.stat().st_size
    if p.suffix == ".parquet":
        return _parquet_problem(p, size)
    if p.suffix == ".safetensors":
        return _safetensors_problem(p, size)
    return None


def artifact_record(path: str | os.PathLike) -> dict:
    """What verifies ``path`` later: size and SHA-256 (large Parquet/safetensors: size + format check);
    a folder: the same for every file in it."""
    p = Path(path)
    if p.is_dir():
        return {"files": {str(f.relative_to(p)): artifact_record(f)
                          for f in sorted(x for x in p.rglob("*") if x.is_file())}}
    size = p.stat().st_size
    if size > LARGE_FILE and p.suffix in (".parquet", ".safetensors"):
        return {"size": size, "check": p.suffix[1:]}
    return {"size": size, "sha256": file_sha256(p)}


def artifact_problem(path: str | os.PathLike, rec: dict) -> str | None:
    """Why ``path`` no longer matches its record ``rec`` (None when it does)."""
    p = Path(path)
    if "files" in rec:
        if not p.is_dir():
            return "is missing" if not p.exists() else "is no longer a folder"
        for name, sub in rec["files"].items():
            problem = artifact_problem(p / name, sub) if isinstance(sub, dict) else "bad record"
            if problem:
                return f"file {name} {problem}"
        return None
    if not p.is_file():
        return "is missing" if not p.exists() else "is not a file"
    size = p.stat().st_size
    if size != rec.get("size"):
        return f"is damaged (size {size}, recorded {rec.get('size')})"
    if "sha256" in rec:
        return None if file_sha256(p) == rec["sha256"] else "is damaged (content differs from its recorded hash)"
    problem = format_problem(p)
    return f"is damaged ({problem})" if problem else None


# -- one writer per run folder --------------------------------------------------------------------------------

LOCK_FILE = ".mathlora.lock"
_HELD_LOCKS: dict[str, list] = {}


class RunLock:
    """An exclusive OS lock (``flock``) on a run folder, held by this process until released.

    Re-entrant within a process; a second process gets one error line naming the holder's PID. The lock
    goes away with the process (even on ``kill -9``): nothing to clean up by hand.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not on POSIX: no locking
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        if key in _HELD_LOCKS:
            _HELD_LOCKS[key][1] += 1
            return
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise MathloraError(f"run folder {self.folder} is in use by another mathlora process (PID {holder}); "
                                "wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD_LOCKS[key] = [fd, 1]

    def release(self) -> None:
        key = str(self.folder.resolve())
        held = _HELD_LOCKS.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            import fcntl

            del _HELD_LOCKS[key]
            with contextlib.suppress(OSError):
                os.ftruncate(held[0], 0)
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])


def enclosing_run_dir(path: str | os.PathLike, levels: int = 3) -> Path | None:
    """The run folder (a folder with ``manifest.json``) holding ``path``, looking ``levels`` folders up."""
    p = Path(path).absolute().parent
    for _ in range(levels):
        if (p / MANIFEST).is_file():
            return p
        if p.parent == p:
            break
        p = p.parent
    return None


def lock_for_output(path: str | os.PathLike | None) -> contextlib.AbstractContextManager:
    """The run-folder lock when ``path`` lies in a run folder, else a no-op (stage commands)."""
    root = enclosing_run_dir(path) if path is not None else None
    return RunLock(root) if root is not None else contextlib.nullcontext()


_TEMP_NAME = re.compile(r"^\..+\.tmp$|^\..+\.old\.\d+$")


def clean_temp_files(root: str | os.PathLike) -> int:
    """Remove leftovers of interrupted atomic writes (``.<name>.*.tmp``, ``.<name>.old.<pid>``) under
    ``root``; call only while holding the run lock. Symbolic links are not followed. Returns the count."""
    removed = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [d for d in dirs if _TEMP_NAME.match(d)]:
            dirs.remove(name)
            p = Path(folder, name)
            if p.is_symlink():
                p.unlink()
            else:
                shutil.rmtree(p, ignore_errors=True)
            removed += 1
        for name in files:
            if _TEMP_NAME.match(name):
                with contextlib.suppress(OSError):
                    Path(folder, name).unlink()
                    removed += 1
    return removed


def links_out_of(root: str | os.PathLike, names: list[str]) -> list[tuple[Path, Path]]:
    """(link, target) for each of ``names`` under ``root`` that is a symbolic link leading outside ``root``."""
    base = Path(root).resolve()
    out = []
    for name in names:
        p = Path(root) / name
        if p.is_symlink():
            target = p.resolve()
            if target != base and base not in target.parents:
                out.append((p, target))
    return out


class RunDir:
    """A run folder with named artifacts and a manifest."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise MathloraError(f"run folder {self.root} exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)
        self._warned = False

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def manifest(self) -> dict:
        p = self.manifest_path
        if p.is_dir():
            raise MathloraError(f"{p} is a directory; it must be the run's manifest file (move it away)")
        if not p.exists():
            return {"stages": {}}
        try:
            man = json.loads(p.read_bytes().decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError, OSError):
            man = None
        if not isinstance(man, dict) or not isinstance(man.get("stages", {}), dict):
            if not self._warned:
                print(f"warning: {p} is damaged; every stage is checked again", file=sys.stderr)
                self._warned = True
            return {"stages": {}}
        man.setdefault("stages", {})
        return man

    def stage_record(self, stage: str) -> dict | None:
        rec = self.manifest().get("stages", {}).get(stage)
        return rec if isinstance(rec, dict) else None

    def _key(self, path: str | os.PathLike) -> str:
        p = Path(path)
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def stale_reason(self, stage: str, fp: str, outputs: list[str | os.PathLike]) -> str | None:
        """Why ``stage`` must run (None when it is fresh: same fingerprint, every output verifies)."""
        rec = self.stage_record(stage)
        if not rec:
            return "not done yet"
        if rec.get("fingerprint") != fp:
            return "inputs or settings changed"
        if rec.get("incomplete"):
            return str(rec["incomplete"])
        verify = rec.get("verify") if isinstance(rec.get("verify"), dict) else {}
        for o in outputs:
            entry = verify.get(self._key(o))
            if isinstance(entry, dict):
                problem = artifact_problem(o, entry)
                if problem:
                    return f"{self._key(o)} {problem}"
            elif not Path(o).exists():
                return f"{self._key(o)} is missing"
            elif Path(o).is_file() and (problem := format_problem(o)):  # recorded before verification existed
                return f"{self._key(o)} is damaged ({problem})"
        return None

    def is_fresh(self, stage: str, fp: str, outputs: list[str | os.PathLike]) -> bool:
        return self.stale_reason(stage, fp, outputs) is None

    def record(self, stage: str, *, fp: str, outputs: dict[str, str | os.PathLike],
               seconds: float, counts: dict | None = None, extra: dict | None = None) -> None:
        man = self.manifest()
        man.setdefault("stages", {})[stage] = {
            "fingerprint": fp,
            "outputs": {k: str(v) for k, v in outputs.items()},
            "verify": {self._key(v): artifact_record(v) for v in outputs.values() if Path(v).exists()},
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "counts": counts or {},
            **(extra or {}),
        }
        write_json_atomic(self.manifest_path, man)

    def forget(self, stage: str) -> None:
        """Drop a stage's record (it will run again)."""
        man = self.manifest()
        if man.get("stages", {}).pop(stage, None) is not None:
            write_json_atomic(self.manifest_path, man)

    def set_meta(self, **meta: Any) -> None:
        man = self.manifest()
        man.update(meta)
        write_json_atomic(self.manifest_path, man)
