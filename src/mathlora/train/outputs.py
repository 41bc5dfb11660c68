"""The train folder's own files, and starting a training over.

``summary.json`` is written last (a finished run returns it when asked again) and ``metrics.jsonl`` per log
step; ``checkpoints/``, ``adapter/`` and ``tensorboard/`` beside them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.artifacts import format_problem
from mathlora.run_dir.guards import artifact_kind, write_artifact_marker

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"


def _older_training_folder(out: Path) -> bool:
    """A training folder written before the marker existed: its summary or a checkpoint's checksum says so."""
    try:
        summary = read_json_document(out / SUMMARY, "training summary") if (out / SUMMARY).is_file() else None
    except MathloraError:
        summary = None
    if isinstance(summary, dict) and "fingerprint" in summary and "ratio_line" in summary:
        return True
    return any((c / "checksum.json").is_file() and (c / "trainer_state.json").is_file()
               for c in (out / "checkpoints").glob("step-*"))


OWN_NAMES = ("checkpoints", "adapter", "tensorboard", METRICS, SUMMARY)  # what a training writes (and clears)


def claim_training_folder(out: Path) -> None:
    """Make ``out`` a training folder (its marker). A folder without the ``train`` marker (and not an older
    mathlora training) that holds any name a training writes is refused: those are never cleared or replaced
    unless mathlora made them. Other files beside them are never touched."""

    taken = sorted(n for n in OWN_NAMES if (out / n).exists() or (out / n).is_symlink()) if out.is_dir() else []
    if taken and artifact_kind(out) != "train" and not _older_training_folder(out):
        raise MathloraError(f"output folder {out} holds {taken[0]!r} and is not a mathlora training folder; give a "
                            "new folder (nothing was changed)")
    out.mkdir(parents=True, exist_ok=True)
    if artifact_kind(out) != "train":
        write_artifact_marker(out, "train")


def require_start_elsewhere(init_from: str | None, out: Path) -> None:
    """The adapter a training starts from (``lora.init_from``) must lie outside its output folder, which a
    training of other settings clears."""
    if init_from and Path(init_from).resolve().is_relative_to(Path(out).resolve()):
        raise MathloraError(f"lora.init_from {init_from} lies in the training's output folder {out}, which a new "
                            "training clears: copy the adapter elsewhere and start from the copy (nothing was changed)")


def clear_outputs(out: Path) -> None:
    """Remove what a training wrote into ``out`` (and nothing else)."""
    for name in OWN_NAMES[:3]:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in OWN_NAMES[3:]:
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
    claim_training_folder(out)  # refuses a folder that is not a training's
    problem = format_problem(tokens_parquet) if tokens_parquet.is_file() else "is missing"
    if problem:
        raise MathloraError(f"{tokens_parquet} {problem}; the finished training in {out} is kept. "
                            "Run again to rebuild the tokens")
    trash = out.with_name(f".{out.name}.old.{os.getpid()}")
    os.replace(out, trash)
    shutil.rmtree(trash, ignore_errors=True)
