"""Ingest: read a raw ``train.json`` (JSON lines or a JSON array), validate, give ids, drop duplicates.

Every input line ends up either in the output (with a stable ``id``) or in ``rejects.jsonl`` with its
line number and reason, or counted as a duplicate. Extra fields are kept; an ``id`` already present in
the input is kept as ``source_id``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterator

from mathlora.data.config import IngestConfig
from mathlora.errors import MathloraError
from mathlora.records import (JsonProblem, dumps_line, first_byte, iter_lines, parse_json, read_json_document,
                              require_file)
from mathlora.run_dir.atomic import atomic_path

_WS = re.compile(r"\s+")
# characters that show nothing: zero-width space/joiners, direction marks, word joiner, BOM, soft hyphen
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
TEXT_FIELDS = ("problem", "solution")


def normalize_whitespace(text: str) -> str:
    return _WS.sub(" ", text).strip()


def record_id(problem: str, solution: str) -> str:
    """Stable id: hash of the whitespace-normalised problem and solution."""
    key = normalize_whitespace(problem) + "\x1f" + normalize_whitespace(solution)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def check_record(obj: object) -> str | None:
    """The reason a parsed value is not a usable record, or None."""
    if not isinstance(obj, dict):
        return f"not an object (got {type(obj).__name__})"
    for field in TEXT_FIELDS:
        if field not in obj:
            return f"missing {field}"
        value = obj[field]
        if not isinstance(value, str):
            return f"{field} is not a string (got {type(value).__name__})"
        if not value.strip():
            return f"empty {field}"
        if not _INVISIBLE.sub("", value).strip():
            return f"empty {field} (only invisible characters such as zero-width spaces)"
    return None


def _iter_raw(path: Path) -> Iterator[tuple[int, object, str | None, str]]:
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


def ingest_file(cfg: IngestConfig, input_path: str | os.PathLike, output_path: str | os.PathLike, *,
                rejects_path: str | os.PathLike | None = None) -> dict:
    """Validate and deduplicate ``input_path`` into JSON lines at ``output_path`` (rejected lines go to
    ``rejects_path``, default ``rejects.jsonl`` beside the output); returns counts."""
    keep_duplicates = cfg.keep_duplicates
    src = require_file(input_path)
    out = Path(output_path)
    rejects = Path(rejects_path) if rejects_path else out.with_name("rejects.jsonl")
    if rejects.resolve() == out.resolve():
        raise MathloraError(f"--rejects {rejects} is the output file; give the rejects their own file")
    if rejects.resolve() == src.resolve():
        raise MathloraError(f"--rejects {rejects} is the input file; give the rejects their own file")
    seen: dict[str, int] = {}
    counts = {"read": 0, "kept": 0, "duplicates": 0, "rejected": 0}
    reasons: dict[str, int] = {}
    with atomic_path(out) as tmp_out, atomic_path(rejects) as tmp_rej, \
            open(tmp_out, "w", encoding="utf-8") as fo, open(tmp_rej, "w", encoding="utf-8") as fr:
        for lineno, obj, reason, raw in _iter_raw(src):
            counts["read"] += 1
            reason = reason or check_record(obj)
            if reason:
                counts["rejected"] += 1
                key = reason.split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
                fr.write(dumps_line({"line": lineno, "reason": reason,
                                     "raw": raw if raw else (obj if not isinstance(obj, dict) else obj)}))
                fr.write("\n")
                continue
            rid = record_id(obj["problem"], obj["solution"])
            n = seen.get(rid, 0)
            seen[rid] = n + 1
            if n:
                if not keep_duplicates:
                    counts["duplicates"] += 1
                    continue
                rid = f"{rid}-{n}"
            rec = {"id": rid}
            if "id" in obj:
                rec["source_id"] = obj["id"]
            rec.update((k, v) for k, v in obj.items() if k != "id")
            fo.write(dumps_line(rec))
            fo.write("\n")
            counts["kept"] += 1
    counts["reject_reasons"] = reasons
    return counts
