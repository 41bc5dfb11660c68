"""The run's manifest (``manifest.json``, named by ``RunLayout``): per stage its fingerprint, outputs (with what
verifies them), counts and timings, plus the run's metadata. ``Manifest`` is its only reader and writer.

A stage is *fresh* when its recorded fingerprint equals the current one and its outputs still verify
(``mathlora.run_dir.artifacts``). A damaged manifest is read as empty by the pipeline (every stage is checked
again, with one warning) and refused by the commands that only read it (``require``).

The run's metadata (``set_meta``, top-level keys beside ``stages``) describes the last invocation: the config,
the library versions (``versions``: ``library_versions``) and the ``runtime`` (device, precision). Freshness reads
only ``stages``, so a new library version or another device never makes a stage stale by itself (the stages
whose result they can change carry them in their own fingerprints: the precision, the base model's identity).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.artifacts import artifact_problem, artifact_record, format_problem
from mathlora.run_dir.atomic import write_json_atomic
from mathlora import __version__


# the libraries whose versions can change a run's numbers (import name, distribution name)
LIBRARIES = (("torch", "torch"), ("transformers", "transformers"), ("peft", "peft"), ("accelerate", "accelerate"),
             ("safetensors", "safetensors"), ("tokenizers", "tokenizers"), ("datasets", "datasets"),
             ("huggingface_hub", "huggingface-hub"))


def library_versions() -> dict[str, str]:
    """The versions of python, mathlora and each of ``LIBRARIES`` that is installed: the imported module's own
    ``__version__`` when it is loaded (what really ran, also under a ``PYTHONPATH`` override), else the installed
    distribution's. Nothing is imported here."""

    out = {"python": platform.python_version(), "mathlora": __version__}
    for module, dist in LIBRARIES:
        version = getattr(sys.modules.get(module), "__version__", None)
        if not isinstance(version, str):
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        out[module] = version
    return out


def _valid(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("stages", {}), dict)


class Manifest:
    def __init__(self, layout: RunLayout):
        self.layout = layout
        self.path = layout.manifest
        self._warned = False

    def require(self) -> dict:
        """The manifest of a finished or running run folder; one-line errors when it is missing or damaged."""
        if not self.path.is_file():
            raise MathloraError(f"{self.layout.root} is not a mathlora run folder (no manifest.json)")
        try:
            data = read_json_document(self.path, "manifest")
        except MathloraError:
            data = None
        if not _valid(data):
            raise MathloraError(f"{self.path} is damaged; `mathlora run` rebuilds it")
        data.setdefault("stages", {})
        return data

    def read(self) -> dict:
        """The manifest as the pipeline sees it: empty when there is none yet or it is damaged (warned once)."""
        p = self.path
        if p.is_dir():
            raise MathloraError(f"{p} is a directory; it must be the run's manifest file (move it away)")
        if not p.exists():
            return {"stages": {}}
        try:
            data = read_json_document(p, "manifest")
        except (MathloraError, OSError):
            data = None
        if not _valid(data):
            if not self._warned:
                print(f"warning: {p} is damaged; every stage is checked again", file=sys.stderr)
                self._warned = True
            return {"stages": {}}
        data.setdefault("stages", {})
        return data

    def stage_record(self, stage: str) -> dict | None:
        rec = self.read()["stages"].get(stage)
        return rec if isinstance(rec, dict) else None

    def _key(self, path: str | os.PathLike) -> str:
        p = Path(path)
        try:
            return str(p.relative_to(self.layout.root))
        except ValueError:
            return str(p)

    def stale_reason(self, stage: str, fp: str, outputs: list[Path]) -> str | None:
        """Why ``stage`` must run (None when it is fresh: same fingerprint, every output verifies)."""
        rec = self.stage_record(stage)
        if not rec:
            return "not done yet"
        if rec.get("fingerprint") != fp:
            return "inputs or settings changed"
        verify = rec.get("verify") if isinstance(rec.get("verify"), dict) else {}
        for o in outputs:
            entry = verify.get(self._key(o))
            if isinstance(entry, dict):
                problem = artifact_problem(o, entry)
                if problem:
                    return f"{self._key(o)} {problem}"
            elif not Path(o).exists():
                return f"{self._key(o)} is missing"
            elif Path(o).is_file() and (problem := format_problem(o)):  # recorded before verification existed
                return f"{self._key(o)} is damaged ({problem})"
        return None

    def record(self, stage: str, *, fp: str, outputs: list[Path], seconds: float, counts: dict | None = None,
               settings: dict | None = None) -> None:
        data = self.read()
        data["stages"][stage] = {
            "fingerprint": fp,
            "outputs": {Path(o).name: str(o) for o in outputs},
            "verify": {self._key(o): artifact_record(o) for o in outputs if Path(o).exists()},
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "counts": counts or {},
            "settings": settings or {},  # what made the fingerprint, so a later run can name what changed
        }
        write_json_atomic(self.path, data)

    def forget(self, stage: str) -> None:
        """Drop a stage's record (it will run again)."""
        data = self.read()
        if data["stages"].pop(stage, None) is not None:
            write_json_atomic(self.path, data)

    def set_meta(self, **meta: Any) -> None:
        data = self.read()
        data.update(meta)
        write_json_atomic(self.path, data)
