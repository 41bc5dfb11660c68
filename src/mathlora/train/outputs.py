"""The train folder's own files, and starting a training over.

``summary.json`` is written last (a finished run returns it when asked again) and ``metrics.jsonl`` per log
step; ``checkpoints/``, ``adapter/`` and ``tensorboard/`` beside them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.records import read_json_document
from mathlora.run_dir.artifacts import format_problem

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"


def clear_outputs(out: Path) -> None:
    """Remove what a training wrote into ``out`` (and nothing else)."""
    for name in ("checkpoints", "adapter", "tensorboard"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (METRICS, SUMMARY):
        (out / name).unlink(missing_ok=True)


def finished_summary(out: Path, fingerprint: str, resume: bool) -> dict | None:
    """The summary of a finished run of the same fingerprint in ``out`` (None when there is none)."""
    path = out / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = read_json_document(path, "training summary")
    except MathloraError:  # damaged: not a finished run (the checkpoints say how far it got)
        return None
    if isinstance(summary, dict) and summary.get("fingerprint") == fingerprint:
        return summary
    if resume:
        raise MathloraError(f"{out} holds a finished run with other settings; choose another output folder "
                            f"or pass --no-resume to overwrite it")
    return None


def discard_training(out: Path, tokens_parquet: Path) -> None:
    """Remove the training folder ``out`` of another run, so the next training starts from step 0.

    Never on the word of damaged tokens: when ``tokens_parquet`` is missing or damaged the finished training
    is kept and the call fails with one line. The folder leaves view at once; a crash leaves a temp folder
    the next run cleans.
    """
    problem = format_problem(tokens_parquet) if tokens_parquet.is_file() else "is missing"
    if problem:
        raise MathloraError(f"{tokens_parquet} {problem}; the finished training in {out} is kept. "
                            "Run again to rebuild the tokens")
    trash = out.with_name(f".{out.name}.old.{os.getpid()}")
    os.replace(out, trash)
    shutil.rmtree(trash, ignore_errors=True)
