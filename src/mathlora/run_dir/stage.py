"""The stage contract of ``mathlora run``: what a stage declares (``Stage``) and what every stage of one run
sees (``Context``).

Each ``Stage`` says what it is (``name``), whether the config uses it (``enabled``, with the reason when not),
the files it reads (``inputs``) and writes (``outputs``), the settings that can change its result
(``settings``: with the inputs' hashes they make its fingerprint) and how it runs (``run``: one call of the
stage package's entry function, the same one its CLI subcommand calls). Each stage package declares its own
stages in its ``stage`` module; ``mathlora.app.stages`` lists them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import require_file

if TYPE_CHECKING:
    from mathlora.app.config import Config
    from mathlora.run_dir.manifest import Manifest
    from mathlora.modeling.runtime import Runtime

DATA_KEYS = ("train", "test", "squad")


@dataclass
class Context:
    """What every stage of one run sees: the root config, the run folder, the runtime."""
    cfg: "Config"
    layout: RunLayout
    runtime: "Runtime"
    manifest: "Manifest"
    force: bool = False
    progress: bool = True

    def missing_data(self) -> list[str]:
        """The ``data.*`` keys not given (synth makes them)."""
        return [k for k in DATA_KEYS if getattr(self.cfg.data, k) is None]

    def source(self, key: str) -> Path:
        """``data.<key>`` when given (checked to be a file), else the synth stage's file."""
        given = getattr(self.cfg.data, key)
        if given is not None:
            return require_file(given, f"data.{key}")
        return {"train": self.layout.raw_train, "test": self.layout.raw_test, "squad": self.layout.raw_squad}[key]


def _always(cfg: "Config") -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: Callable[[Context], dict[str, Path]]
    outputs: Callable[[Context], list[Path]]
    settings: Callable[[Context], dict]
    run: Callable[[Context], dict]
    enabled: Callable[["Config"], bool] = _always
    unused_because: str = ""
    # a stage with its own "same run" rule brings its fingerprint (train: the trainer's)
    fingerprint: Callable[[Context], str] | None = None
    # called with the fingerprint before the freshness check (label: forget a failed run; train: start over)
    before: Callable[[Context, str], None] | None = None
