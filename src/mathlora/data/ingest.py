"""Ingest: read a raw ``train.json`` (JSON lines or a JSON array), validate, give ids, drop duplicates.

Every input line ends up either in the output (with a stable ``id``) or in ``rejects.jsonl`` with its
line number and reason, or counted as a duplicate. Extra fields are kept; an ``id`` already present in
the input is kept as ``source_id``.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterator

from mathlora.data.config import IngestConfig
from mathlora.errors import MathloraError
from mathlora.records import dumps_line, require_file
from mathlora.run_dir import atomic_path

_WS = re.compile(r"\s+")
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
    return None


def _iter_raw(path: Path) -> Iterator[tuple[int, object, str | None, str]]:
    """Yield (line_number, parsed value or None, reject reason or None, raw text) for each entry."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    bom = head.startswith(codecs.BOM_UTF8)
    first = head[3:] if bom else head
    if first.lstrip()[:1] == b"[":
        raw = path.read_bytes()[3 if bom else 0:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MathloraError(f"{path}: JSON array with undecodable bytes at offset {e.start}; "
                                "it must be UTF-8") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise MathloraError(f"{path}: not a valid JSON array ({e.msg} at line {e.lineno}); "
                                "use JSON lines to keep the good records of a damaged file") from None
        if not isinstance(data, list):
            raise MathloraError(f"{path}: expected a JSON array or JSON lines")
        for i, obj in enumerate(data, 1):
            yield i, obj, None, ""
        return
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if lineno == 1 and bom:
                line = line[3:]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, None, f"undecodable bytes (not UTF-8) at byte {e.start}", repr(line[:200])
                continue
            if not text.strip():
                continue
            try:
                yield lineno, json.loads(text), None, text.rstrip("\r\n")
            except json.JSONDecodeError as e:
                yield lineno, None, f"not JSON ({e.msg})", text.rstrip("\n")[:500]


def ingest_file(cfg: IngestConfig, input_path: str | os.PathLike, output_path: str | os.PathLike, *,
                rejects_path: str | os.PathLike | None = None) -> dict:
    """Validate and deduplicate ``input_path`` into JSON lines at ``output_path`` (rejected lines go to
    ``rejects_path``, default ``rejects.jsonl`` beside the output); returns counts."""
    keep_duplicates = cfg.keep_duplicates
    src = require_file(input_path)
    out = Path(output_path)
    rejects = Path(rejects_path) if rejects_path else out.with_name("rejects.jsonl")
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
