"""Verifying artifacts: each output is recorded with its size and SHA-256 (files over ``LARGE_FILE`` bytes:
size and a format check of the Parquet footer / safetensors header instead of a hash), so a truncated or
overwritten artifact is found, never trusted."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from mathlora.run_dir.hashing import CARD, file_sha256, is_card

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
                          for f in sorted(x for x in p.rglob("*") if x.is_file() and not is_card(p, x))}}
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
            if name == CARD:  # recorded by an older mathlora; the card is rewritten in place since
                continue
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
