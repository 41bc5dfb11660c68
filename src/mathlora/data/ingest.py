"""Ingest: read the raw training data, map it to ``{problem, solution}``, validate, give ids, drop duplicates.

The data is a JSON lines / JSON array file, a CSV, Parquet or Arrow file, a folder saved by ``datasets``, or a
Hub dataset name (``mathlora.data.formats``: sources, the alpaca/sharegpt/messages formats, column mapping).
Every entry ends up either in the output (with a stable ``id``) or in ``rejects.jsonl`` with its line (or
row) number and reason, or counted as a duplicate. Extra fields are kept; an ``id`` already present in the
input is kept as ``source_id``. A source that yields no usable record at all is an error that names its
columns and the mapping to set, at ingest, not stages later.
"""

from __future__ import annotations

import os
import re
from itertools import chain
from pathlib import Path

from mathlora.run_dir.hashing import digest
from mathlora.data.config import IngestConfig
from mathlora.data.formats import Format, ReadOptions, choose_format, hint, to_record
from mathlora.data.sources import Source, iter_rows, peek, resolve_source
from mathlora.errors import MathloraError
from mathlora.run_dir.records import dumps_line, first_byte, read_json_document
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
    return digest(key, 16)


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
    if obj["problem"].strip() == obj["solution"].strip():
        return "solution repeats the problem (nothing to learn from the pair)"
    return None


def repeated_header(obj: object) -> str | None:
    """The reason a table row is its header written again (a CSV concatenated with its header twice), or None."""
    if isinstance(obj, dict) and len(obj) > 1 and all(isinstance(v, str) and v.strip() == str(k).strip()
                                                      for k, v in obj.items()):
        return "a repeated header row (every value is its column's name)"
    return None


def ingest_file(cfg: IngestConfig, input_path: str | os.PathLike, output_path: str | os.PathLike, *,
                rejects_path: str | os.PathLike | None = None, reading: ReadOptions | None = None,
                what: str = "input") -> dict:
    """Validate and deduplicate ``input_path`` (a file, a saved dataset folder or a Hub dataset name, read as
    ``reading`` says: format, column mapping, split) into JSON lines at ``output_path``; rejected entries go to
    ``rejects_path`` (default ``rejects.jsonl`` beside the output). Returns the counts and the format read.

    A source with no usable record is an error naming the columns it has and the setting to change; its
    rejects are written, the output is not."""
    reading = reading or ReadOptions()
    keep_duplicates = cfg.keep_duplicates
    source = resolve_source(input_path, what)
    out = Path(output_path)
    rejects = Path(rejects_path) if rejects_path else out.with_name("rejects.jsonl")
    if rejects.resolve() == out.resolve():
        raise MathloraError(f"--rejects {rejects} is the output file; give the rejects their own file")
    if source.path is not None and rejects.resolve() == source.path.resolve():
        raise MathloraError(f"--rejects {rejects} is the input file; give the rejects their own file")
    rows = iter_rows(source, reading)
    head, columns = peek(rows)
    fmt = choose_format(reading, columns)
    seen: dict[str, int] = {}
    conversational = fmt is not None and fmt.name in ("sharegpt", "messages")
    counts: dict = {"read": 0, "kept": 0, "duplicates": 0, "rejected": 0,
                    "format": fmt.describe() if fmt else "unknown", "columns": dict(fmt.columns) if fmt else {},
                    **({"multi_turn": 0} if conversational else {})}
    reasons: dict[str, int] = {}
    with atomic_path(rejects) as tmp_rej, open(tmp_rej, "w", encoding="utf-8") as fr:
        try:
            with atomic_path(out) as tmp_out, open(tmp_out, "w", encoding="utf-8") as fo:
                for row in chain(head, rows):
                    counts["read"] += 1
                    reason = row.reason or repeated_header(row.obj)
                    rec, reason = (None, reason) if reason else to_record(row.obj, fmt)
                    reason = reason or check_record(rec)
                    if reason:
                        counts["rejected"] += 1
                        key = reason.split(" (")[0]
                        reasons[key] = reasons.get(key, 0) + 1
                        fr.write(dumps_line({row.where[0]: row.where[1], "reason": reason,
                                             "raw": row.raw if row.raw else row.obj}))
                        fr.write("\n")
                        continue
                    if rec.pop("_later_turns", 0):
                        counts["multi_turn"] += 1
                    rid = record_id(rec["problem"], rec["solution"])
                    n = seen.get(rid, 0)
                    seen[rid] = n + 1
                    if n:
                        if not keep_duplicates:
                            counts["duplicates"] += 1
                            continue
                        rid = f"{rid}-{n}"
                    out_rec = {"id": rid}
                    if "id" in rec:
                        out_rec["source_id"] = rec["id"]
                    out_rec.update((k, v) for k, v in rec.items() if k != "id")
                    fo.write(dumps_line(out_rec))
                    fo.write("\n")
                    counts["kept"] += 1
                if not counts["kept"]:
                    raise _NoRecord  # the rejects are written, the output is not
        except _NoRecord:
            pass
    counts["reject_reasons"] = reasons
    if not counts["kept"]:
        raise MathloraError(no_record_message(source, counts, fmt, columns, rejects))
    return counts


class _NoRecord(Exception):
    pass


def no_record_message(source: Source, counts: dict, fmt: Format | None, columns: list[str], rejects: Path) -> str:
    if not counts["read"]:
        why = ("the file is empty or holds only blank lines" if source.kind == "json" else
               "the table has no rows" if source.kind == "table" else "the dataset is empty")
        return f"{source.label}: no records ({why})"
    top = max(counts["reject_reasons"].items(), key=lambda kv: kv[1])[0] if counts["reject_reasons"] else "?"
    document = _one_object(source) if top == "not JSON" else None
    if document is not None:  # a pretty-printed {"data": [...]}: every line of it is "not JSON"
        lists = [k for k, v in document.items() if isinstance(v, list)]
        inside = f" (the rows may be its {lists[0]!r} list: jq '.{lists[0]}' {source.path.name})" if lists else ""
        return (f"{source.label}: no usable record: the file is one JSON object with the keys "
                f"{', '.join(map(str, document)) or '(none)'}, not rows; give a JSON array or JSON lines of "
                f"records{inside}")
    return (f"{source.label}: no usable record ({counts['read']} read, {counts['rejected']} rejected, "
            f"most often: {top}); {hint(fmt, columns)}; every reason is in {rejects}")


def _one_object(source: Source) -> dict | None:
    """The file as one JSON object, when it is one (else None)."""
    if source.kind != "json" or first_byte(source.path) != b"{":
        return None
    try:
        document = read_json_document(source.path)
    except MathloraError:
        return None
    return document if isinstance(document, dict) else None
