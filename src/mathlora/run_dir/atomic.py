"""Atomic writes: every artifact is written to a temporary sibling and renamed into place, so a crash never
leaves a file (or folder) that looks complete but is not. ``json_text`` is the one JSON writer: always valid
JSON (NaN/Infinity become null)."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mathlora.errors import MathloraError

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
    except BaseException as e:
        written = _size_of(tmp)
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        full = no_space_message(e, path, written)
        if full:
            raise MathloraError(full) from None
        raise


_NO_SPACE = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file is larger than this file system allows",
             errno.EDQUOT: "the disk quota is used up"}


def no_space_message(error: BaseException, path: Path, written: int | None = None) -> str | None:
    """One line for a write that ran out of room (ENOSPC, EFBIG, EDQUOT; also as libraries word them), naming
    the path, what was written and the space left; None for any other error."""
    code = getattr(error, "errno", None)
    text = str(error)
    if code not in _NO_SPACE:
        code = next((c for c, words in ((errno.ENOSPC, "No space left"), (errno.EFBIG, "File too large"),
                                        (errno.EDQUOT, "quota exceeded")) if words in text), None)
    if code is None:
        return None
    try:
        free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    except OSError:
        free = None
    need = f"{written / 1e6:.1f} MB were written before it stopped" if written else "nothing was written"
    left = f", {free / 1e6:.1f} MB free there" if free is not None else ""
    return (f"cannot write {path}: {_NO_SPACE[code]} ({need}{left}); free space and run again "
            "(the previous file, if any, is kept)")


def _size_of(p: Path) -> int:
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size
    except OSError:
        return 0


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
