"""``mathlora run``: the whole recipe, one stage after another, in one run folder.

The stages and their order are declared in ``mathlora.app.stages`` (``STAGE_LIST``); the pipeline is a loop over
that list. A stage the config does not use (synth when every ``data.*`` is given, rewrite for
``solution_style=answer``) prints "not used"; ``--stop-after`` stops after any stage, used or not.

Each stage reads the artifacts of the stages before it and writes its own under the run folder. The
manifest records each stage's fingerprint (hashes of its input files + its settings); a stage whose
fingerprint is unchanged and whose outputs exist is skipped, so a rerun takes seconds and a rerun after
a crash continues where it stopped (training resumes from its newest checkpoint). ``--force`` redoes all.

The run folder's artifacts are named by ``mathlora.run_dir.layout.RunLayout``; docs/ARCHITECTURE.md lists them with
the stage that writes each one. The runtime (device, precision) is resolved once (``Runtime``) and given to
every stage that runs a model.

A run holds an OS lock on its folder (a second run gets one line naming the holder's PID), checks the whole
config before the first stage, and removes leftovers of interrupted writes. "Fresh" means verified: each
output's recorded size and hash (or format footer) must still match, so a damaged artifact is redone by its
producer, never trusted, and never the reason a finished training is deleted. A label stage with failed
records is not done: the run stops with their count and first error, and the next run asks them again.

Tracking (``mathlora.modeling.tracking``): every line a run prints (not its progress bars) is appended to ``run.log`` under
a timestamped header, with the error that stopped it; the backends of ``train.report_to`` are checked before the
first stage; after the last evaluation the run's scores go to the same trackers as the training's scalars
(``eval/...`` at the training's last step), once per set of scores. The manifest records the library versions
and the runtime of each invocation (``versions``, ``runtime``), outside every stage's fingerprint.
"""

from __future__ import annotations

import json
import platform
import sys
import time

from mathlora import __version__
from mathlora.evaluate.backend import backend_of
from mathlora.app.config import Config, dump_config, public_config
from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.atomic import json_text, write_text_atomic
from mathlora.run_dir.guards import RunLock, clean_temp_files, links_out_of, make_run_folder
from mathlora.run_dir.hashing import fingerprint
from mathlora.run_dir.manifest import Manifest, library_versions
from mathlora.modeling.runtime import Runtime
from mathlora.app.stages import STAGE_LIST, STAGES, Context, Stage
from mathlora.run_dir.run_log import RunLog
from mathlora.modeling.tracking import check_backends, log_once
from mathlora.run_dir.records import read_json_document
from mathlora.app.preflight import check_config
from mathlora.report.scores import headline
from mathlora.report.scores import RunScores
from mathlora.export import publish
from mathlora.train.fingerprint import changed_settings

__all__ = ["Pipeline", "StopAfter", "STAGES"]

_NOT_TRAINING_DATA = ("ingest_test",)  # the held-out set: never trained on
LAST_EVAL = [s.name for s in STAGE_LIST if s.name.startswith("eval_")][-1]  # then the scores go to the trackers


class StopAfter(Exception):
    """Raised after the stage named by ``--stop-after`` finished (or was found fresh, or not used)."""


class Pipeline:
    def __init__(self, cfg: Config, *, force: bool = False, progress: bool = True, stop_after: str | None = None,
                 config_line: str | None = None):
        if stop_after is not None and stop_after not in STAGES:
            raise MathloraError(f"--stop-after {stop_after!r}: unknown stage (allowed: {', '.join(STAGES)})")
        if not backend_of(cfg.eval).holds_model:  # one served model name cannot stand for both the base and the tuned model
            raise MathloraError("mathlora run generates locally (eval.backend=local); use eval.backend=openai with "
                                "`mathlora predict` / `mathlora eval squad` against a server")
        self.cfg = cfg
        self.config_line = config_line  # which config and the settings that decide the scores: run.log's first line
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

        with RunLock(self.layout.root):
            lay = self.layout  # run.log is opened only once no name of the folder leads out of it
            links = links_out_of(self.layout.root, sorted(p.name for p in self.layout.root.iterdir()) + [
                str(lay.eval(x).root.relative_to(lay.root)) for x in ("base", "tuned", "grpo")])
            if links:
                link, target = links[0]
                raise MathloraError(f"{link} is a symbolic link to {target}, outside the run folder; mathlora "
                                    "does not write or delete through it (remove the link or use another run_dir)")
            clean_temp_files(self.layout.root)
            with RunLog(lay.run_log, self._title(), expected=(StopAfter,)) as log:
                if self.config_line:
                    log.note(self.config_line)
                try:
                    check_config(self.cfg)
                    check_backends(self.cfg.train.report_to)
                    self.refuse_data_change_under_training()
                    summary = self._run_stages()
                except StopAfter as stop:
                    log.note(f"stopped after {stop} as asked")
                    raise
                log.note(self._headline())
                return summary

    def refuse_data_change_under_training(self) -> None:
        """A finished training is never left on tokens it was not trained on: a changed setting or input of a
        stage that makes the training data (synth .. tokenize) is refused before any stage writes, as a changed
        ``train.lr`` is, unless ``--force`` (which redoes the data and retrains)."""
        lay, rec = self.layout, self.manifest.stage_record("train")
        if self.force or not rec or not lay.train_summary.is_file():
            return
        changed: list[str] = []
        for stage in self.stages:
            if stage.name == "train":
                break
            if stage.name in _NOT_TRAINING_DATA or stage.name.startswith("eval_") or not stage.enabled(self.cfg):
                continue
            old = self.manifest.stage_record(stage.name)
            if old is None:
                changed.append(f"{stage.name} (not part of the trained run)")
                continue
            settings = stage.settings(self.ctx)
            diff = changed_settings(old.get("settings") or {}, _jsonable(settings))
            if not diff and stage.fingerprint is None:
                inputs = stage.inputs(self.ctx)
                if all(p.exists() for p in inputs.values()) and fingerprint(inputs, settings) != old.get("fingerprint"):
                    diff = [f"{stage.name}'s input {', '.join(sorted(inputs))}"]
            changed += diff
        if changed:
            what = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "")
            raise MathloraError(f"{lay.train} holds a finished training on the data of other settings (changed: "
                                f"{what}); a rerun would replace the tokens it was trained on: run with --force to "
                                "redo the data and retrain in place, or give a new --run folder (nothing was changed)")

    def _title(self) -> str:
        flags = (" --force" if self.force else "") + (f" --stop-after {self.stop_after}" if self.stop_after else "")
        return f"mathlora run{flags} ({__version__}): {self.layout.root}"

    def _headline(self) -> str:
        try:
            return headline(self.layout.root)
        except MathloraError as e:
            return f"report: {self.layout.report_html} | scores unreadable ({e})"

    def _run_stages(self) -> dict:
        cfg = self.cfg
        start = time.perf_counter()
        self.manifest.set_meta(mathlora_version=__version__, python=platform.python_version(),
                               versions=library_versions(), runtime=self._runtime_meta(),
                               config=public_config(cfg))
        write_text_atomic(self.layout.config, dump_config(cfg))
        print(f"runtime: {self.runtime.describe()}", flush=True)
        for index, stage in enumerate(self.stages, 1):
            self.summary[stage.name] = self.run_stage(index, stage)
            if stage.name == LAST_EVAL:
                self.track_scores()
            if stage.name == self.stop_after:
                raise StopAfter(stage.name)
        if cfg.publish.to:  # last: not fingerprinted, publish itself skips what the store already holds

            self.summary["publish"] = publish.publish_run(self.layout.root, cfg.publish.to,
                                                  endpoint_url=cfg.publish.endpoint_url,
                                                  verify_all=cfg.publish.verify_all,
                                                  replace=cfg.publish.replace, private=cfg.publish.private)
        self.summary["seconds"] = round(time.perf_counter() - start, 1)
        return self.summary

    def _runtime_meta(self) -> dict:
        rt = self.runtime
        meta = {"device": rt.device, "precision": rt.precision, "precision_auto": rt.precision_auto,
                "deterministic": rt.deterministic}
        if rt.precision_auto and rt.precision_reason:  # why auto picked it (on a CPU: measured, see cpu_precision)
            meta["precision_reason"] = rt.precision_reason
        if rt.is_cuda:
            import torch

            meta["device_name"] = torch.cuda.get_device_name(rt.device)
        return meta

    def track_scores(self) -> list[str]:
        """The run's scores to the trackers of ``train.report_to`` (in the training folder, at its last step), unless
        these very scores were logged before; a tracker that fails is a warning (the next run tries again).
        Returns the backends that logged."""

        lay, names = self.layout, self.cfg.train.report_to
        if not names or not lay.train.is_dir():
            return []
        scores = RunScores.read(lay.root, strict=False)
        points = score_points(scores, _final_step(lay.train_summary))
        cfg = self.cfg
        params = {"model": cfg.model, "seed": cfg.seed, "lora": cfg.lora.model_dump(mode="json"),
                  "train": cfg.train.model_dump(mode="json")}
        try:
            return log_once(names, lay.train, "eval", points, params=params)
        except MathloraError as e:
            print(f"warning: the scores were not logged to {', '.join(names)} ({e}); the next run tries again",
                  file=sys.stderr, flush=True)
            return []


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def score_points(scores, final_step: int) -> list[tuple[int, dict[str, float]]]:
    """The run's scores as tracker scalars: at ``final_step``, ``eval/{base,tuned}/math/accuracy`` (as configured:
    with the calculator when ``eval.calculator``), ``eval/{base,tuned}/math_nocalc/accuracy`` (without it), each
    with ``..._by_type/<family>``, ``eval/{base,tuned}/squad/{f1,em}`` and ``eval/retention/passed`` (1 or 0);
    and at each scored checkpoint's step (``eval.checkpoints``) ``eval/checkpoints/math/accuracy`` (and
    ``math_nocalc``)."""
    scalars: dict[str, float] = {}
    for which in ("base", "tuned"):
        for tag in ("math", "math_nocalc"):
            report = getattr(scores, f"{which}_{tag}", None) or {}
            if _number(report.get("accuracy")):
                scalars[f"eval/{which}/{tag}/accuracy"] = float(report["accuracy"])
            per_type = report.get("per_type") if isinstance(report.get("per_type"), dict) else {}
            for family, row in sorted(per_type.items()):
                if isinstance(row, dict) and _number(row.get("accuracy")):
                    scalars[f"eval/{which}/{tag}_by_type/{family}"] = float(row["accuracy"])
        squad = getattr(scores, f"{which}_squad", None) or {}
        for key in ("f1", "em"):
            if _number(squad.get(key)):
                scalars[f"eval/{which}/squad/{key}"] = float(squad[key])
    retention = scores.retention
    if retention and isinstance(retention.get("passed"), bool):
        scalars["eval/retention/passed"] = float(retention["passed"])
    points = [(final_step, scalars)] if scalars else []
    for row in scores.checkpoint_rows():
        point = {f"eval/checkpoints/{tag}/accuracy": float(row[key]) for tag, key in
                 (("math", "accuracy"), ("math_nocalc", "accuracy_nocalc")) if _number(row.get(key))}
        if point:
            points.append((int(row["step"]), point))
    return points


def _final_step(summary_path) -> int:
    """The training's last step (``train/summary.json``), 0 when it is not there."""

    try:
        summary = read_json_document(summary_path, "training summary") if summary_path.is_file() else {}
    except MathloraError:
        summary = {}
    steps = summary.get("steps") if isinstance(summary, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else 0


def _jsonable(obj):
    """``obj`` as the manifest will hold it (JSON values: no NaN, no objects)."""
    return json.loads(json_text(obj, indent=None))


def _brief(counts: dict) -> str:
    items = [f"{k}={v}" for k, v in counts.items() if isinstance(v, (int, float, str)) and len(str(v)) < 80]
    return f"({', '.join(items[:6])})" if items else ""
