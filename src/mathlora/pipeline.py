"""``mathlora run``: the whole recipe, one stage after another, in one run folder.

The stages and their order are declared in ``mathlora.stages`` (``STAGE_LIST``); the pipeline is a loop over
that list. A stage the config does not use (synth when every ``data.*`` is given, rewrite for
``solution_style=answer``) prints "not used"; ``--stop-after`` stops after any stage, used or not.

Each stage reads the artifacts of the stages before it and writes its own under the run folder. The
manifest records each stage's fingerprint (hashes of its input files + its settings); a stage whose
fingerprint is unchanged and whose outputs exist is skipped, so a rerun takes seconds and a rerun after
a crash continues where it stopped (training resumes from its newest checkpoint). ``--force`` redoes all.

The run folder's artifacts are named by ``mathlora.layout.RunLayout``; docs/ARCHITECTURE.md lists them with
the stage that writes each one. The runtime (device, precision) is resolved once (``Runtime``) and given to
every stage that runs a model.

A run holds an OS lock on its folder (a second run gets one line naming the holder's PID), checks the whole
config before the first stage, and removes leftovers of interrupted writes. "Fresh" means verified: each
output's recorded size and hash (or format footer) must still match, so a damaged artifact is redone by its
producer, never trusted, and never the reason a finished training is deleted. A label stage with failed
records is not done: the run stops with their count and first error, and the next run asks them again.
"""

from __future__ import annotations

import json
import platform
import time

from mathlora import __version__
from mathlora.config import Config, dump_config
from mathlora.errors import MathloraError
from mathlora.layout import RunLayout
from mathlora.run_dir.atomic import json_text, write_text_atomic
from mathlora.run_dir.guards import RunLock, clean_temp_files, links_out_of, make_run_folder
from mathlora.run_dir.hashing import fingerprint
from mathlora.run_dir.manifest import Manifest
from mathlora.runtime import Runtime
from mathlora.stages import STAGE_LIST, STAGES, Context, Stage

__all__ = ["Pipeline", "StopAfter", "STAGES"]


class StopAfter(Exception):
    """Raised after the stage named by ``--stop-after`` finished (or was found fresh, or not used)."""


class Pipeline:
    def __init__(self, cfg: Config, *, force: bool = False, progress: bool = True, stop_after: str | None = None):
        if stop_after is not None and stop_after not in STAGES:
            raise MathloraError(f"--stop-after {stop_after!r}: unknown stage (allowed: {', '.join(STAGES)})")
        if cfg.eval.backend != "local":  # one served model name cannot stand for both the base and the tuned model
            raise MathloraError("mathlora run generates locally (eval.backend=local); use eval.backend=openai with "
                                "`mathlora predict` / `mathlora eval squad` against a server")
        self.cfg = cfg
        self.force = force
        self.stop_after = stop_after
        self.layout = RunLayout(make_run_folder(cfg.run_dir))
        self.manifest = Manifest(self.layout)
        self.runtime = Runtime.resolve(cfg.runtime).activate()
        self.ctx = Context(cfg, self.layout, self.runtime, self.manifest, force=force, progress=progress)
        self.stages: tuple[Stage, ...] = STAGE_LIST
        self.summary: dict = {}

    def run_stage(self, index: int, stage: Stage) -> dict:
        """Run ``stage`` unless it is not used or fresh; record fingerprint, counts and time in the manifest."""
        ctx, name = self.ctx, stage.name
        prefix = f"[{index:>2}/{len(self.stages)}] {name}"
        if not stage.enabled(self.cfg):
            print(f"{prefix}: not used ({stage.unused_because})", flush=True)
            return {}
        settings = stage.settings(ctx)
        fp = stage.fingerprint(ctx) if stage.fingerprint else fingerprint(stage.inputs(ctx), settings)
        if stage.before is not None:
            stage.before(ctx, fp)
        outputs = stage.outputs(ctx)
        stale = self.manifest.stale_reason(name, fp, outputs)
        if not self.force and stale is None:
            print(f"{prefix}: fresh, skipped", flush=True)
            return (self.manifest.stage_record(name) or {}).get("counts", {})
        if stale and stale not in ("not done yet", "inputs or settings changed"):
            print(f"{prefix}: {stale}; redoing", flush=True)
        print(f"{prefix} ...", flush=True)
        start = time.perf_counter()
        counts = stage.run(ctx) or {}
        seconds = time.perf_counter() - start
        self.manifest.record(name, fp=fp, outputs=outputs, seconds=seconds, counts=_jsonable(counts),
                             settings=_jsonable(settings))
        print(f"{prefix}: done in {seconds:.1f}s {_brief(counts)}", flush=True)
        return counts

    def run(self) -> dict:
        """The whole pipeline, holding the run folder's lock; the config is checked before any stage."""
        from mathlora.preflight import check_config

        with RunLock(self.layout.root):
            check_config(self.cfg)
            lay = self.layout
            links = links_out_of(self.layout.root, sorted(p.name for p in self.layout.root.iterdir()) + [
                str(lay.eval(x).root.relative_to(lay.root)) for x in ("base", "tuned")])
            if links:
                link, target = links[0]
                raise MathloraError(f"{link} is a symbolic link to {target}, outside the run folder; mathlora "
                                    "does not write or delete through it (remove the link or use another run_dir)")
            clean_temp_files(self.layout.root)
            return self._run_stages()

    def _run_stages(self) -> dict:
        cfg = self.cfg
        start = time.perf_counter()
        self.manifest.set_meta(mathlora_version=__version__, python=platform.python_version(),
                         config=cfg.model_dump(mode="json"))
        write_text_atomic(self.layout.config, dump_config(cfg))
        print(f"runtime: {self.runtime.describe()}", flush=True)
        for index, stage in enumerate(self.stages, 1):
            self.summary[stage.name] = self.run_stage(index, stage)
            if stage.name == self.stop_after:
                raise StopAfter(stage.name)
        if cfg.publish.to:  # last: not fingerprinted, publish itself skips what the store already holds
            from mathlora.export.publish import publish_run

            self.summary["publish"] = publish_run(self.layout.root, cfg.publish.to,
                                                  endpoint_url=cfg.publish.endpoint_url,
                                                  verify_all=cfg.publish.verify_all,
                                                  replace=cfg.publish.replace)
        self.summary["seconds"] = round(time.perf_counter() - start, 1)
        return self.summary


def _jsonable(obj):
    """``obj`` as the manifest will hold it (JSON values: no NaN, no objects)."""
    return json.loads(json_text(obj, indent=None))


def _brief(counts: dict) -> str:
    items = [f"{k}={v}" for k, v in counts.items() if isinstance(v, (int, float, str)) and len(str(v)) < 40]
    return f"({', '.join(items[:6])})" if items else ""
