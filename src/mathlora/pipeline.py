"""``mathlora run``: the whole recipe, one stage after another, in one run folder.

    synth (when no data is given) -> ingest -> label -> sample -> normalize -> convert -> tokenize
    -> base: predict + eval math, eval squad -> train -> merge -> tuned: predict + eval math, eval squad
    -> report

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

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

from mathlora import __version__
from mathlora.cliargs import add_config_args, config_from_args, option
from mathlora.config import Config, dump_config
from mathlora.errors import MathloraError
from mathlora.layout import RunLayout
from mathlora.records import require_file, write_jsonl
from mathlora.run_dir import (RunDir, RunLock, clean_temp_files, fingerprint, format_problem, links_out_of,
                               write_json_atomic, write_text_atomic)
from mathlora.runtime import Runtime

STAGES = ["synth", "ingest", "ingest_test", "label", "sample", "normalize", "rewrite", "convert", "tokenize",
          "eval_base_math", "eval_base_squad", "train", "merge", "eval_tuned_math", "eval_tuned_squad", "report"]


class StopAfter(Exception):
    """Raised after the stage named by ``--stop-after`` finished."""


class Pipeline:
    def __init__(self, cfg: Config, *, force: bool = False, progress: bool = True, stop_after: str | None = None):
        if stop_after is not None and stop_after not in STAGES:
            raise MathloraError(f"--stop-after {stop_after!r}: unknown stage (allowed: {', '.join(STAGES)})")
        if cfg.eval.backend != "local":  # one served model name cannot stand for both the base and the tuned model
            raise MathloraError("mathlora run generates locally (eval.backend=local); use eval.backend=openai with "
                                "`mathlora predict` / `mathlora eval squad` against a server")
        self.cfg = cfg
        self.force = force
        self.progress = progress
        self.stop_after = stop_after
        self.rd = RunDir(cfg.run_dir)
        self.layout = RunLayout(cfg.run_dir)
        self.runtime = Runtime.resolve(cfg.runtime).activate()
        self.summary: dict = {}

    def stage(self, name: str, inputs: dict[str, Path], settings: dict, outputs: list[Path],
              fn: Callable[[], dict], *, fp: str | None = None) -> dict:
        """Run ``fn`` unless the stage is fresh; record fingerprint, counts and time in the manifest.

        The fingerprint hashes ``inputs`` and ``settings``, unless the stage brings its own (``fp``)."""
        index = STAGES.index(name) + 1
        fp = fp or fingerprint(inputs, settings)
        stale = self.rd.stale_reason(name, fp, outputs)
        if not self.force and stale is None:
            rec = self.rd.stage_record(name) or {}
            print(f"[{index:>2}/{len(STAGES)}] {name}: fresh, skipped", flush=True)
            if name == self.stop_after:
                raise StopAfter(name)
            return rec.get("counts", {})
        if stale and stale not in ("not done yet", "inputs or settings changed"):
            print(f"[{index:>2}/{len(STAGES)}] {name}: {stale}; redoing", flush=True)
        print(f"[{index:>2}/{len(STAGES)}] {name} ...", flush=True)
        start = time.perf_counter()
        counts = fn() or {}
        seconds = time.perf_counter() - start
        self.rd.record(name, fp=fp, outputs={o.name: o for o in outputs}, seconds=seconds,
                       counts=_jsonable(counts))
        print(f"[{index:>2}/{len(STAGES)}] {name}: done in {seconds:.1f}s {_brief(counts)}", flush=True)
        if name == self.stop_after:
            raise StopAfter(name)
        return counts

    # -- data ---------------------------------------------------------------------------------------------
    def data_sources(self) -> tuple[Path, Path, Path]:
        cfg = self.cfg
        given = {k: getattr(cfg.data, k) for k in ("train", "test", "squad")}
        for key, value in given.items():
            if value is not None:
                require_file(value, f"data.{key}")
        lay = self.layout
        raw = {"train": lay.raw_train, "test": lay.raw_test, "squad": lay.raw_squad}
        missing = [k for k, v in given.items() if v is None]
        if missing:
            def synth() -> dict:
                from mathlora.synth.stage import synth_data

                return synth_data(cfg.synth, seed=cfg.seed, user_train=given["train"],
                                  **{f"{k}_out": raw[k] for k in missing})

            self.stage("synth", {"train": Path(given["train"])} if given["train"] else {},
                       {"synth": cfg.synth.model_dump(), "seed": cfg.seed, "missing": missing},
                       [raw[k] for k in missing], synth)
        return tuple(Path(given[k]) if given[k] else raw[k] for k in ("train", "test", "squad"))  # type: ignore

    def prepare(self, train_src: Path, test_src: Path) -> None:
        from mathlora.data.config import IngestConfig
        from mathlora.data.convert import convert_file
        from mathlora.data.ingest import ingest_file
        from mathlora.data.normalize import normalize_file
        from mathlora.data.sampling import sample_file
        from mathlora.data.tokenize import tokenize_file
        from mathlora.label.run import label_file

        cfg, lay = self.cfg, self.layout
        records, rejects = lay.records, lay.rejects
        self.summary["ingest"] = self.stage(
            "ingest", {"input": train_src}, cfg.ingest.model_dump(), [records, rejects],
            lambda: ingest_file(cfg.ingest, train_src, records, rejects_path=rejects))
        test = lay.test_records
        self.stage("ingest_test", {"input": test_src}, {}, [test],
                   lambda: ingest_file(IngestConfig(), test_src, test, rejects_path=lay.test_rejects))
        labeled = lay.labeled
        label_settings = {k: v for k, v in cfg.label.model_dump().items()
                          if k not in ("concurrency", "timeout", "retry_failed")}
        if cfg.label.judge == "local":
            label_settings["runtime"] = self.runtime.fingerprint()
        if ((self.rd.stage_record("label") or {}).get("counts") or {}).get("failed"):
            self.rd.forget("label")  # recorded with failures by an older mathlora: not done

        def label() -> dict:
            # a run always asks again about records that failed before: a label stage with failures is not done
            summary = label_file(cfg.label.model_copy(update={"retry_failed": True}), self.runtime, records, labeled,
                                 base_model=cfg.model, progress=self.progress)
            if summary["failed"]:
                from mathlora.label.run import failure_message

                raise MathloraError(failure_message(summary, labeled) + "; the next `mathlora run` asks them again")
            return summary

        self.summary["label"] = self.stage(
            "label", {"input": records}, {"label": label_settings, "model": cfg.model}, [labeled], label)
        sampled = lay.sampled
        self.summary["sample"] = self.stage(
            "sample", {"input": labeled}, {"sample": cfg.sample.model_dump(), "seed": cfg.seed}, [sampled],
            lambda: sample_file(cfg.sample, labeled, sampled, seed=cfg.seed))
        normalized = lay.normalized
        self.stage("normalize", {"input": sampled}, cfg.normalize.model_dump(), [normalized],
                   lambda: normalize_file(cfg.normalize, sampled, normalized))
        solutions = normalized
        if cfg.solution_style != "answer":
            from mathlora.data.rewrite import rewrite_file

            solutions, report = lay.rewritten, lay.rewrite_report
            self.summary["rewrite"] = self.stage(
                "rewrite", {"input": normalized}, {"solution_style": cfg.solution_style}, [solutions, report],
                lambda: rewrite_file(normalized, solutions, report, style=cfg.solution_style))
        conversations = lay.conversations
        self.stage("convert", {"input": solutions}, {"template": cfg.template, **cfg.convert.model_dump()},
                   [conversations], lambda: convert_file(cfg.convert, solutions, conversations,
                                                         template=cfg.template))
        tokens = lay.tokens
        self.summary["tokenize"] = self.stage(
            "tokenize", {"input": conversations},
            {"model": cfg.model, "template": cfg.template, **cfg.tokenize.model_dump()},
            [lay.tokens_parquet, lay.tokens_stats],
            lambda: tokenize_file(cfg.tokenize, conversations, tokens, model=cfg.model, template=cfg.template,
                                  progress=self.progress))

    # -- evaluation -----------------------------------------------------------------------------------------
    def evaluate(self, which: str, model: str, squad_src: Path, extra_inputs: dict[str, Path]) -> None:
        import shutil

        from mathlora.evaluate.math_grading import grade_file
        from mathlora.evaluate.predict import predict_file
        from mathlora.evaluate.config import SERVER_ONLY
        from mathlora.evaluate.squad import evaluate_squad

        cfg, lay = self.cfg, self.layout
        out = lay.eval(which)
        test = lay.test_records
        calculator = cfg.eval.calculator
        # with the calculator: math.json is scored with it, math_nocalc.json without (same model, same problems)
        runs = [("", calculator)] + ([("_nocalc", False)] if calculator else [])
        files = {tag: out.math_files(tag) for tag, _ in runs}
        baselines = {tag: lay.eval("base").math_files(tag)[0] if which == "tuned" else None for tag, _ in runs}
        # the openai backend's settings never apply here (generation is local)
        settings = {"eval": cfg.eval.model_dump(exclude=set(SERVER_ONLY)), "template": cfg.template, "model": model,
                    "solution_style": cfg.solution_style, "runtime": self.runtime.fingerprint()}

        def run_math() -> dict:
            counts: dict = {}
            calls = None
            if not calculator:  # scores of an earlier run with the calculator would mislead the report
                for stale in out.root.glob("math_nocalc*"):
                    stale.unlink()
            for tag, with_calculator in runs:
                preds, math = files[tag]
                if tag == "_nocalc" and calls == 0:
                    # the calculator never forced a token, so decoding without it is the same run
                    shutil.copyfile(files[""][0], preds)
                else:
                    gen = predict_file(cfg.eval, self.runtime, model, None, test, preds, template=cfg.template,
                                       progress=self.progress, solution_style=cfg.solution_style,
                                       calculator=with_calculator)
                    calls = gen.get("calculator_calls", 0) + gen.get("calculator_refused", 0)
                    counts.setdefault("tokens_per_s", gen.get("tokens_per_s"))
                    counts.setdefault("predict_seconds", gen.get("seconds"))
                    if with_calculator:
                        counts.update(calculator_calls=gen["calculator_calls"],
                                      calculator_refused=gen["calculator_refused"])
                report = grade_file(cfg.eval, preds, math, baseline_path=baselines[tag],
                                    solution_style=cfg.solution_style)
                if tag:
                    counts["accuracy" + tag] = report["accuracy"]
                else:
                    counts.update(accuracy=report["accuracy"], count=report["count"], correct=report["correct"],
                                  unparsable=report.get("unparsable"))
            return counts

        inputs = {"test": test, **extra_inputs,
                  **{f"baseline{tag}": b for tag, b in baselines.items() if b is not None}}
        self.summary[f"{which}_math"] = self.stage(f"eval_{which}_math", inputs, settings,
                                                   [p for pair in files.values() for p in pair], run_math)
        squad = out.squad
        baseline_squad = lay.eval("base").squad if which == "tuned" else None

        def run_squad() -> dict:
            res = evaluate_squad(cfg.eval, self.runtime, model, None, squad_src, squad, progress=self.progress,
                                 baseline_path=baseline_squad)
            return {k: res[k] for k in ("f1", "em", "count") if k in res} | (
                {"retained": res["retention"]["passed"]} if "retention" in res else {})

        squad_inputs = {"squad": squad_src, **extra_inputs, **({"baseline": baseline_squad} if baseline_squad else {})}
        self.summary[f"{which}_squad"] = self.stage(f"eval_{which}_squad", squad_inputs,
                                                    settings, [squad], run_squad)

    # -- training -------------------------------------------------------------------------------------------
    def train_and_merge(self) -> Path:
        from mathlora.train.merge import merge_adapter
        from mathlora.train.trainer import train, training_fingerprint

        cfg, lay = self.cfg, self.layout
        tokens, out = lay.tokens, lay.train
        # "same run" is the trainer's rule: settings that cannot change the result never invalidate train/
        fp = training_fingerprint(cfg.train, self.runtime, tokens, lora=cfg.lora, seed=cfg.seed)
        rec = self.rd.stage_record("train")
        if out.exists() and (self.force or (rec and rec.get("fingerprint") != fp)):
            # settings or data changed: a fresh run, not a resume of the old one; but never on the word of
            # damaged tokens (tokenize verified or rebuilt them above; this is the last line of defence)
            parquet = lay.tokens_parquet
            problem = format_problem(parquet) if parquet.is_file() else "is missing"
            if problem:
                raise MathloraError(f"{parquet} {problem}; the finished training in {out} is kept. "
                                    "Run again to rebuild the tokens")
            import shutil

            trash = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, trash)  # gone from view at once; a crash leaves a temp folder, cleaned next run
            shutil.rmtree(trash, ignore_errors=True)
        self.summary["train"] = self.stage(
            "train", {"tokens": lay.tokens_parquet}, {}, [lay.train_summary, lay.train_adapter],
            lambda: train(cfg.train, self.runtime, tokens, out, lora=cfg.lora, seed=cfg.seed, resume=True,
                          progress=self.progress), fp=fp)
        merged = lay.merged
        adapter = lay.train_adapter
        self.stage("merge", {"adapter": adapter}, {"model": cfg.model, "runtime": self.runtime.fingerprint()},
                   [lay.merged_config, merged],
                   lambda: {"merged": str(merge_adapter(self.runtime, cfg.model, adapter, merged, overwrite=True))})
        return merged

    def run(self) -> dict:
        """The whole pipeline, holding the run folder's lock; the config is checked before any stage."""
        from mathlora.preflight import check_config

        with RunLock(self.rd.root):
            check_config(self.cfg)
            lay = self.layout
            links = links_out_of(self.rd.root, sorted(p.name for p in self.rd.root.iterdir()) + [
                str(lay.eval(x).root.relative_to(lay.root)) for x in ("base", "tuned")])
            if links:
                link, target = links[0]
                raise MathloraError(f"{link} is a symbolic link to {target}, outside the run folder; mathlora "
                                    "does not write or delete through it (remove the link or use another run_dir)")
            clean_temp_files(self.rd.root)
            return self._run_stages()

    def _run_stages(self) -> dict:
        cfg = self.cfg
        start = time.perf_counter()
        self.rd.set_meta(mathlora_version=__version__, python=platform.python_version(),
                         config=cfg.model_dump(mode="json"))
        write_text_atomic(self.layout.config, dump_config(cfg))
        print(f"runtime: {self.runtime.describe()}", flush=True)
        train_src, test_src, squad_src = self.data_sources()
        self.prepare(train_src, test_src)
        self.evaluate("base", cfg.model, squad_src, {})
        merged = self.train_and_merge()
        # the merged model is a function of base + adapter: the adapter's hash stands for it
        self.evaluate("tuned", str(merged), squad_src, {"adapter": self.layout.train_adapter})
        from mathlora.report.build import build_report

        lay = self.layout
        report_inputs = {str(p.relative_to(lay.root)): p for p in (
            lay.eval("base").math, lay.eval("tuned").math, lay.eval("base").math_nocalc,
            lay.eval("tuned").math_nocalc, lay.eval("base").squad, lay.eval("tuned").squad,
            lay.train_summary, lay.sample_table, lay.tokens_stats)}
        report = self.stage("report", report_inputs, {"version": __version__}, [lay.report_html],
                            lambda: build_report(lay.root))
        if cfg.publish.to:  # last: not fingerprinted, publish itself skips what the store already holds
            from mathlora.export.publish import publish_run

            self.summary["publish"] = publish_run(lay.root, cfg.publish.to, endpoint_url=cfg.publish.endpoint_url,
                                                  verify_all=cfg.publish.verify_all)
        self.summary["seconds"] = round(time.perf_counter() - start, 1)
        return {**self.summary, "report": report}


def headline(run_dir: Path) -> str:
    """The last line of ``run``: where the report is, accuracy before -> after, the retention verdict."""
    lay = RunLayout(run_dir)

    def load(p: Path):
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    base, tuned, squad = load(lay.eval("base").math), load(lay.eval("tuned").math), load(lay.eval("tuned").squad)
    acc = (f"math accuracy {100 * base.get('accuracy', 0):.1f}% -> {100 * tuned.get('accuracy', 0):.1f}%"
           if base and tuned else "math accuracy: n/a")
    base_plain, tuned_plain = load(lay.eval("base").math_nocalc), load(lay.eval("tuned").math_nocalc)
    if base and tuned and base_plain and tuned_plain:
        acc += (f" with the calculator ({100 * base_plain.get('accuracy', 0):.1f}% -> "
                f"{100 * tuned_plain.get('accuracy', 0):.1f}% without)")
    ret = squad.get("retention")
    verdict = ("retention PASSED" if ret and ret.get("passed") else "retention FAILED" if ret else "retention: n/a")
    if ret:
        verdict += f" (F1 {ret['base_f1']:.1f} -> {ret['f1']:.1f}, EM {ret['base_em']:.1f} -> {ret['em']:.1f}, keep {ret['keep']:.0%})"
    return f"report: {lay.report_html} | {acc} | {verdict}"


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _brief(counts: dict) -> str:
    items = [f"{k}={v}" for k, v in counts.items() if isinstance(v, (int, float, str)) and len(str(v)) < 40]
    return f"({', '.join(items[:6])})" if items else ""


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    pipeline = Pipeline(cfg, force=args.force, progress=not args.no_progress, stop_after=args.stop_after)
    try:
        pipeline.run()
    except StopAfter as stop:
        print(f"stopped after {stop} as asked; run again without --stop-after to continue", flush=True)
        return 0
    print(headline(Path(cfg.run_dir)), flush=True)
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole recipe end to end (default: the embedded demo config)",
                       description=__doc__.split("\n\n")[0])
    option(p, "--output", "-o", field="run_dir", help="run folder (default from config: runs/demo)")
    p.add_argument("--force", action="store_true", help="redo every stage, even fresh ones")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--stop-after", metavar="STAGE", help=f"stop after this stage ({', '.join(STAGES)})")
    add_config_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="(re)build report.html / report.md of a run folder")
    p.add_argument("run_dir", help="run folder")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from mathlora.report.build import build_report

    root = Path(args.run_dir)
    manifest_path = RunLayout(root).manifest
    if not manifest_path.is_file():
        raise MathloraError(f"{root} is not a mathlora run folder (no manifest.json)")
    from mathlora.records import read_json_document

    try:
        manifest = read_json_document(manifest_path, "manifest")
    except MathloraError as e:
        manifest = e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages", {}), dict):
        raise MathloraError(f"{manifest_path} is damaged; `mathlora run` rebuilds it")
    with RunLock(root):
        build_report(root)
    print(headline(root))
    return 0
