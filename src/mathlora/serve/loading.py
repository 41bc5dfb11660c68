"""How ``mathlora ask`` and ``serve`` load a run's model fast: from the run's ``merged/`` folder, without peft,
when it is the model the run's evaluation scored.

The train stage's merge writes ``RUN/merged`` (the adapter merged into the base model in fp32, saved in the base
model's stored dtype), and ``eval_tuned_math`` scores that folder, loaded in the runtime's precision. Loading it
here skips importing peft, attaching the adapter and merging it, and answers as the evaluated model did, when

* the target is the run's own adapter on the run's own model (no ``--adapter``, no ``--model``), merged
  (``eval.merge_adapter``, the default);
* the folder is a mathlora merge (its marker) written after every file of the adapter (not a stale merge).

In fp32 on the CPU that is also bit for bit base + adapter merged in process; in bf16 it is closer to it than
an in-process bf16 merge (the merge's arithmetic was fp32). Otherwise (or when the folder does not load) the base
model and the adapter are loaded as before. The tokenizer is always the base model's (the merged folder's has a
chat template added; the ids are the same).

``preload`` starts the loading in a thread (``ask --interactive``: while the first problem is typed).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.evaluate.backend import HeldModel
from mathlora.modeling.runtime import Runtime
from mathlora.run_dir.guards import artifact_kind
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import read_json_document


def usable_merged(run: str | None, adapter: str | None, *, own_target: bool, merge: bool,
                  runtime: Runtime | None) -> Path | None:
    """The run's ``merged/`` folder when it may stand in for base + ``adapter`` (the module docstring), else None."""
    if run is None or adapter is None or not own_target or not merge or runtime is None:
        return None
    layout = RunLayout(Path(run))
    merged = layout.merged
    if Path(adapter).resolve() != layout.train_adapter.resolve() or artifact_kind(merged) != "merged":
        return None
    try:
        config = read_json_document(layout.merged_config, "merged config")
        weights = [p for p in merged.iterdir() if p.suffix == ".safetensors"]
        written = min(p.stat().st_mtime for p in [layout.merged_config, *weights])
        adapter_files = [p for p in Path(adapter).iterdir() if p.is_file()]
        newest_adapter = max(p.stat().st_mtime for p in adapter_files)
    except (MathloraError, OSError, ValueError):
        return None
    if not isinstance(config, dict) or not weights or written < newest_adapter:
        return None
    return merged


class MergedHeld(HeldModel):
    """A :class:`HeldModel` of base + adapter whose weights come from the run's merged folder (``usable_merged``);
    asked for the same (model, adapter) as a plain one, it answers the same."""

    def __init__(self, model: str, adapter, runtime: Runtime, merged: Path):
        super().__init__(model, adapter, runtime, merge=True)
        self.merged = merged

    def get(self, model, adapter):
        same = (model, None if adapter is None else str(adapter)) == (self.model, str(self.adapter))
        if self._loaded is None and same:
            from mathlora.modeling.models import load_model, load_tokenizer

            start = time.perf_counter()
            try:
                lm = load_model(str(self.merged), self.runtime)
            except MathloraError:
                return super().get(model, adapter)  # not loadable after all: base + adapter, as ever
            lm.eval()
            self._loaded = (lm, load_tokenizer(self.model))
            return self._loaded, time.perf_counter() - start
        return super().get(model, adapter)


def preload(held: HeldModel | None, model: str, adapter):
    """Load ``held`` in a thread now; returns a function that waits for it (and raises its error, once)."""
    if held is None:
        return lambda: None
    failed: list[BaseException] = []

    def load():
        try:
            held.get(model, adapter)
        except BaseException as e:  # raised in the command's thread, by the wait
            failed.append(e)

    thread = threading.Thread(target=load, name="ask-preload", daemon=True)
    thread.start()

    def wait():
        thread.join()
        if failed:
            raise failed.pop()
    return wait
