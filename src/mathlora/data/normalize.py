"""Normalize stage: the decimals rule (``mathlora.arith.numbers``) on every record's problem and solution."""

from __future__ import annotations

import os

from mathlora.data.config import NormalizeConfig
from mathlora.arith.numbers import cut_decimals
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_jsonl, write_jsonl


def normalize_file(cfg: NormalizeConfig, input_path: str | os.PathLike, output_path: str | os.PathLike) -> dict:
    """Rewrite problem and solution of every record with ``cfg.decimals`` / ``cfg.mode``; returns counts
    (records, changed, numbers_cut, and numbers_kept_too_long: numbers too long to round, kept as written)."""
    decimals, mode = cfg.decimals, cfg.mode
    counts = {"records": 0, "changed": 0, "numbers_cut": 0, "numbers_kept_too_long": 0}

    def records():
        for rec in read_jsonl(input_path):
            if not isinstance(rec.get("problem"), str) or not isinstance(rec.get("solution"), str):
                raise MathloraError(f"{input_path}: record {rec.get('id', '?')} has no problem/solution text; "
                                    "normalize reads the output of ingest (or label/sample)")
            counts["records"] += 1
            changed = False
            for field in ("problem", "solution"):
                text, cut, kept = cut_decimals(rec[field], decimals, mode)
                counts["numbers_kept_too_long"] += kept
                if cut:
                    rec[field] = text
                    counts["numbers_cut"] += cut
                    changed = True
            counts["changed"] += changed
            yield rec

    write_jsonl(output_path, records())
    return counts
