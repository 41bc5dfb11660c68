"""Reading and writing record files (JSON lines / JSON arrays), with clear errors and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from mathlora.errors import MathloraError
from mathlora.run_dir import atomic_path


def require_file(path: str | os.PathLike, what: str = "input") -> Path:
    """Return ``path`` as a Path if it is an existing regular file, else raise a one-line error."""
    p = Path(path)
    if not p.exists():
        raise MathloraError(f"{what} file not found: {p}")
    if p.is_dir():
        raise MathloraError(f"{what} {p} is a directory; expected a file")
    return p


def read_jsonl(path: str | os.PathLike, what: str = "input") -> Iterator[dict]:
    """Yield the JSON objects of a JSON-lines file written by a mathlora stage (strict)."""
    p = require_file(path, what)
    with open(p, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise MathloraError(f"{p}:{lineno}: not valid JSON ({e.msg}); is this the right file?") from None
            if not isinstance(obj, dict):
                raise MathloraError(f"{p}:{lineno}: expected a JSON object per line")
            yield obj


def read_records(path: str | os.PathLike, what: str = "input") -> list[dict]:
    """Read a JSON-lines file or a JSON array of objects (auto-detected)."""
    p = require_file(path, what)
    with open(p, encoding="utf-8-sig") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith("["):
        try:
            data = json.loads(p.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise MathloraError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not all(isinstance(x, dict) for x in data):
            raise MathloraError(f"{p}: expected a JSON array of objects")
        return data
    return list(read_jsonl(p, what))


def dumps_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Atomically write records as JSON lines; returns the number written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(dumps_line(rec))
            fh.write("\n")
            n += 1
    return n
