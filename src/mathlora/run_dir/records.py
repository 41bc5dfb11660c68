"""Reading and writing record files (JSON lines / JSON arrays), with clear errors and atomic writes.

Every user file goes through these readers: invalid UTF-8 is an error naming the line and byte (never a
traceback), ``NaN``/``Infinity`` and numbers outside the float range are refused (JSON has no such values,
and writing them back would produce invalid JSON), and a JSON array may follow any amount of whitespace.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from mathlora.errors import MathloraError
from mathlora.run_dir.atomic import atomic_path, finite_json


class JsonProblem(ValueError):
    """Why a text is not acceptable JSON (one line, no position prefix)."""


def _bad_constant(name: str):
    raise JsonProblem(f"{name} is not a JSON number")


_NONZERO = re.compile(r"[1-9]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonProblem(f"number {text[:40]} is out of range")
    if value == 0.0 and _NONZERO.search(text.lower().split("e")[0]):
        raise JsonProblem(f"number {text[:40]} is out of range (too small)")
    return value


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` for untrusted text: JsonProblem (never RecursionError or a bare ValueError)."""
    try:
        obj = json.loads(text, parse_constant=_bad_constant, parse_float=_finite_float)
        if _SURROGATE_ESCAPE.search(text if isinstance(text, str) else text.decode("utf-8", "replace")):
            json.dumps(obj, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be written as UTF-8
        return obj
    except UnicodeEncodeError:
        raise JsonProblem("a \\u escape is a lone surrogate (not a Unicode character)") from None
    except JsonProblem:
        raise
    except json.JSONDecodeError as e:
        raise JsonProblem(f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise JsonProblem("nested too deeply") from None
    except ValueError as e:  # e.g. an integer longer than Python's 4300-digit conversion limit
        raise JsonProblem(str(e).split(";")[0]) from None


def require_file(path: str | os.PathLike, what: str = "input") -> Path:
    """Return ``path`` as a Path if it is an existing regular file, else raise a one-line error."""
    p = Path(path)
    if not p.exists():
        raise MathloraError(f"{what} file not found: {p}")
    if p.is_dir():
        raise MathloraError(f"{what} {p} is a directory; expected a file")
    return p


def iter_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset of the line, raw bytes without the BOM) for every line of a file."""
    offset = 0
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            start = offset
            offset += len(line)
            if lineno == 1 and line.startswith(codecs.BOM_UTF8):
                line, start = line[3:], start + 3
            yield lineno, start, line


def decode_line(p: Path, lineno: int, start: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MathloraError(f"{p}:{lineno}: invalid UTF-8 at byte {start + e.start} of the file; "
                            "the file must be UTF-8 text") from None


def read_jsonl(path: str | os.PathLike, what: str = "input") -> Iterator[dict]:
    """Yield the JSON objects of a JSON-lines file (strict: one clear error at the first bad line)."""
    p = require_file(path, what)
    for lineno, start, raw in iter_lines(p):
        line = decode_line(p, lineno, start, raw)
        if not line.strip():
            continue
        try:
            obj = parse_json(line)
        except JsonProblem as e:
            raise MathloraError(f"{p}:{lineno}: not valid JSON ({e}); is this the right file?") from None
        if not isinstance(obj, dict):
            raise MathloraError(f"{p}:{lineno}: expected a JSON object per line")
        yield obj


def first_byte(path: Path) -> bytes:
    """The first byte that is not whitespace (after a UTF-8 BOM), or b"" for a blank file."""
    with open(path, "rb") as fh:
        first = True
        while block := fh.read(1 << 16):
            if first and block.startswith(codecs.BOM_UTF8):
                block = block[3:]
            first = False
            stripped = block.lstrip()
            if stripped:
                return stripped[:1]
    return b""


def read_json_document(path: str | os.PathLike, what: str = "input") -> Any:
    """A whole-file JSON document (array or object), with one-line errors for bad bytes or syntax."""
    p = require_file(path, what)
    raw = p.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise MathloraError(f"{p}:{line}: invalid UTF-8 at byte {e.start} of the file; "
                            "the file must be UTF-8 text") from None
    try:
        return parse_json(text)
    except JsonProblem as e:
        raise MathloraError(f"{p}: not valid JSON ({e})") from None


def read_records(path: str | os.PathLike, what: str = "input") -> list[dict]:
    """Read a JSON-lines file or a JSON array of objects (auto-detected)."""
    p = require_file(path, what)
    if first_byte(p) == b"[":
        data = read_json_document(p, what)
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise MathloraError(f"{p}: expected a JSON array of objects")
        return data
    return list(read_jsonl(p, what))


def dumps_line(obj: Any) -> str:
    """One JSON line; always valid JSON (a non-finite float is written as null, never NaN/Infinity)."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(finite_json(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Atomically write records as JSON lines; returns the number written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(dumps_line(rec))
            fh.write("\n")
            n += 1
    return n


def iter_raw(path: Path) -> Iterator[tuple[int, object, str | None, str]]:
    """Yield (line_number, parsed value or None, reject reason or None, raw text) for each entry."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    for head, kind, tool in ((b"\x1f\x8b", "gzip", "gunzip"), (b"PK\x03\x04", "zip", "unzip"),
                             (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"), (b"BZh", "bzip2", "bunzip2"),
                             (b"\xfd7zX", "xz", "unxz")):
        if magic.startswith(head):
            raise MathloraError(f"{path} is {kind}-compressed; decompress it first ({tool} {path.name}) and give "
                                "the JSON lines or JSON array file")
    if first_byte(path) == b"[":
        data = read_json_document(path)
        if not isinstance(data, list):
            raise MathloraError(f"{path}: expected a JSON array or JSON lines")
        for i, obj in enumerate(data, 1):
            yield i, obj, None, ""
        return
    for lineno, start, line in iter_lines(path):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield (lineno, None, f"undecodable bytes (not UTF-8) at byte {start + e.start} of the file",
                   repr(line[:200]))
            continue
        if not text.strip():
            continue
        try:
            yield lineno, parse_json(text), None, text.rstrip("\r\n")
        except JsonProblem as e:
            yield lineno, None, f"not JSON ({e})", text.rstrip("\r\n")[:500]
