"""``mathlora run``: the whole recipe, one stage after another, in one run folder.

    synth (when no data is given) -> ingest -> label -> sample -> normalize -> convert -> tokenize
    -> base: predict + eval math, eval squad -> train -> merge -> tuned: predict + eval math, eval squad
    -> report

Each stage reads the artifacts of the stages before it and writes its own under the run folder. The
manifest records each stage's fingerprint (hashes of its input files + its settings); a stage whose
fingerprint is unchanged and whose outputs exist is skipped, so a rerun takes seconds and a rerun after
a crash continues where it stopped (training resumes from its newest checkpoint). ``--force`` redoes all.

A run holds an OS lock on its folder (a second run gets one line naming the holder's PID), checks the whole
config before the first stage, and removes leftovers of interrupted writes. "Fresh" means verified: each
output's recorded size and hash (or format footer) must still match, so a damaged artifact is redone by its
producer, never trusted, and never the reason a finished training is deleted. A label stage with failed
records is not done: the run stops with their count and first error, and the next run asks them again.

Run folder:
    raw/train.jsonl, raw/test.jsonl, raw/squad.json   generated data (when data.* are not given)
    records.jsonl, rejects.jsonl                       ingest: validated, id'd, deduplicated
    test_records.jsonl                                 the held-out math test set, ingested
    labeled.jsonl, label_failures.jsonl, label_cache.sqlite   difficulty 0-5 per record
    sampled.jsonl, sample_table.json                   the stratified sample
    normalized.jsonl                                   decimals cut to 2
    conversations.json                                 the recipe's conversation JSON
    tokens/                                            tokens.parquet, stats.json, rejects.jsonl
    eval/base/, eval/tuned/                            math predictions + scores, squad predictions + scores
    train/                                             checkpoints/, adapter/, metrics.jsonl, tensorboard/
    merged/                                            the final adapter merged into the base (HF folder)
    report.md, report.html, plots/                     the report
    manifest.json                                      per stage: fingerprint, outputs, counts, seconds
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
from mathlora.records import require_file, write_jsonl
from mathlora.run_dir import (RunDir, RunLock, clean_temp_files, fingerprint, format_problem, links_out_of,
                               write_json_atomic, write_text_atomic)

STAGES = ["synth", "ingest", "ingest_test", "label", "sample", "normalize", "convert", "tokenize",
          "eval_base_math", "eval_base_squad", "train", "merge", "eval_tuned_math", "eval_tuned_squad", "report"]


class StopAfter(Exception):
    """Raised after the stage named by ``--stop-after`` finished."""


class Pipeline:
    def __init__(self, cfg: Config, *, force: bool = False, progress: bool = True, stop_after: str | None = None):
        if stop_after is not None and stop_after not in STAGES:
            raise MathloraError(f"--stop-after {stop_after!r}: unknown stage (allowed: {', '.join(STAGES)})")
        self.cfg = cfg
        self.force = force
        self.progress = progress
        self.stop_after = stop_after
        self.rd = RunDir(cfg.run_dir)
        self.summary: dict = {}

    def p(self, name: str) -> Path:
        return self.rd.path(name)

    def stage(self, name: str, inputs: dict[str, Path], settings: dict, outputs: list[Path],
              fn: Callable[[], dict]) -> dict:
        """Run ``fn`` unless the stage is fresh; record fingerprint, counts and time in the manifest."""
        index = STAGES.index(name) + 1
        fp = fingerprint(inputs, settings)
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
        raw = {"train": self.p("raw/train.jsonl"), "test": self.p("raw/test.jsonl"), "squad": self.p("raw/squad.json")}
        missing = [k for k, v in given.items() if v is None]
        if missing:
            def synth() -> dict:
                from mathlora.synth.competition import generate, generate_train_and_test
                from mathlora.synth.squad import generate_squad

                counts = {}
                if "train" in missing or "test" in missing:
                    if given["train"] is None:
                        train, test = generate_train_and_test(cfg.synth.count, cfg.synth.test_count, cfg.seed,
                                                              cfg.synth.types)
                    else:  # user training data, generated test set disjoint from it
                        from mathlora.records import read_records

                        seen = {r.get("problem") for r in read_records(given["train"])}
                        train, test = [], generate(cfg.synth.test_count, cfg.seed + 1_000_003, cfg.synth.types,
                                                   exclude=seen)
                    if "train" in missing:
                        counts["train"] = write_jsonl(raw["train"], train)
                    if "test" in missing:
                        counts["test"] = write_jsonl(raw["test"], test)
                if "squad" in missing:
                    squad = generate_squad(cfg.synth.squad_paragraphs, cfg.seed)
                    write_json_atomic(raw["squad"], squad, indent=None)
                    counts["squad_paragraphs"] = cfg.synth.squad_paragraphs
                return counts

            self.stage("synth", {"train": Path(given["train"])} if given["train"] else {},
                       {"synth": cfg.synth.model_dump(), "seed": cfg.seed, "missing": missing},
                       [raw[k] for k in missing], synth)
        return tuple(Path(given[k]) if given[k] else raw[k] for k in ("train", "test", "squad"))  # type: ignore

    def prepare(self, train_src: Path, test_src: Path) -> None:
        from mathlora.data.convert import convert_file
        from mathlora.data.ingest import ingest_file
        from mathlora.data.normalize import normalize_file
        from mathlora.data.sampling import sample_file
        from mathlora.data.tokenize import tokenize_file
        from mathlora.label.run import label_file

        cfg = self.cfg
        records, rejects = self.p("records.jsonl"), self.p("rejects.jsonl")
        self.summary["ingest"] = self.stage(
            "ingest", {"input": train_src}, cfg.ingest.model_dump(), [records, rejects],
            lambda: ingest_file(train_src, records, keep_duplicates=cfg.ingest.keep_duplicates, rejects_path=rejects))
        test = self.p("test_records.jsonl")
        self.stage("ingest_test", {"input": test_src}, {}, [test],
                   lambda: ingest_file(test_src, test, rejects_path=self.p("test_rejects.jsonl")))
        labeled = self.p("labeled.jsonl")
        label_settings = {k: v for k, v in cfg.label.model_dump().items()
                          if k not in ("concurrency", "timeout", "retry_failed")}
        if ((self.rd.stage_record("label") or {}).get("counts") or {}).get("failed"):
            self.rd.forget("label")  # recorded with failures by an older mathlora: not done

        def label() -> dict:
            # a run always asks again about records that failed before: a label stage with failures is not done
            summary = label_file(cfg.label.model_copy(update={"retry_failed": True}), records, labeled,
                                 base_model=cfg.model, progress=self.progress)
            if summary["failed"]:
                from mathlora.label.run import failure_message

                raise MathloraError(failure_message(summary, labeled) + "; the next `mathlora run` asks them again")
            return summary

        self.summary["label"] = self.stage(
            "label", {"input": records}, {"label": label_settings, "model": cfg.model}, [labeled], label)
        sampled = self.p("sampled.jsonl")
        self.summary["sample"] = self.stage(
            "sample", {"input": labeled}, {"sample": cfg.sample.model_dump(), "seed": cfg.seed}, [sampled],
            lambda: sample_file(cfg.sample, labeled, sampled, seed=cfg.seed))
        normalized = self.p("normalized.jsonl")
        self.stage("normalize", {"input": sampled}, cfg.normalize.model_dump(), [normalized],
                   lambda: normalize_file(sampled, normalized, decimals=cfg.normalize.decimals,
                                          mode=cfg.normalize.mode))
        conversations = self.p("conversations.json")
        self.stage("convert", {"input": normalized}, {"template": cfg.template, **cfg.convert.model_dump()},
                   [conversations], lambda: convert_file(normalized, conversations, template=cfg.template,
                                                         fmt=cfg.convert.format))
        tokens = self.p("tokens")
        self.summary["tokenize"] = self.stage(
            "tokenize", {"input": conversations},
            {"model": cfg.model, "template": cfg.template, **cfg.tokenize.model_dump()}, [tokens / "tokens.parquet"],
            lambda: tokenize_file(conversations, tokens, model=cfg.model, seq_length=cfg.tokenize.seq_length,
                                  overflow=cfg.tokenize.overflow, fmt=cfg.tokenize.format, template=cfg.template,
                                  progress=self.progress))

    # -- evaluation -----------------------------------------------------------------------------------------
    def evaluate(self, which: str, model: str, squad_src: Path, extra_inputs: dict[str, Path]) -> None:
        from mathlora.evaluate.math_grading import grade_file
        from mathlora.evaluate.predict import predict_file
        from mathlora.evaluate.squad import evaluate_squad

        cfg = self.cfg
        out = self.p(f"eval/{which}")
        test = self.p("test_records.jsonl")
        preds, math = out / "math_predictions.jsonl", out / "math.json"
        baseline_math = self.p("eval/base/math_predictions.jsonl") if which == "tuned" else None
        settings = {"eval": cfg.eval.model_dump(), "template": cfg.template, "model": model}

        def run_math() -> dict:
            gen = predict_file(model, None, test, preds, template=cfg.template, cfg=cfg.eval, progress=self.progress)
            report = grade_file(preds, math, atol=cfg.eval.atol, rtol=cfg.eval.rtol, baseline_path=baseline_math)
            return {"accuracy": report["accuracy"], "count": report["count"], "correct": report["correct"],
                    "unparsable": report.get("unparsable"), "tokens_per_s": gen.get("tokens_per_s"),
                    "predict_seconds": gen.get("seconds")}

        inputs = {"test": test, **extra_inputs, **({"baseline": baseline_math} if baseline_math else {})}
        self.summary[f"{which}_math"] = self.stage(f"eval_{which}_math", inputs, settings, [preds, math], run_math)
        squad = out / "squad.json"
        baseline_squad = self.p("eval/base/squad.json") if which == "tuned" else None

        def run_squad() -> dict:
            res = evaluate_squad(model, None, squad_src, squad, cfg=cfg.eval, progress=self.progress,
                                 baseline_path=baseline_squad)
            return {k: res[k] for k in ("f1", "em", "count") if k in res} | (
                {"retained": res["retention"]["passed"]} if "retention" in res else {})

        squad_inputs = {"squad": squad_src, **extra_inputs, **({"baseline": baseline_squad} if baseline_squad else {})}
        self.summary[f"{which}_squad"] = self.stage(f"eval_{which}_squad", squad_inputs,
                                                    settings, [squad], run_squad)

    # -- training -------------------------------------------------------------------------------------------
    def train_and_merge(self) -> Path:
        from mathlora.train.merge import merge_adapter
        from mathlora.train.trainer import train

        cfg = self.cfg
        tokens, out = self.p("tokens"), self.p("train")
        settings = {"model": cfg.model, "seed": cfg.seed, "lora": cfg.lora.model_dump(),
                    "train": cfg.train.model_dump()}
        summary_json = out / "summary.json"
        fp = fingerprint({"tokens": tokens / "tokens.parquet"}, settings)
        rec = self.rd.stage_record("train")
        if out.exists() and (self.force or (rec and rec.get("fingerprint") != fp)):
            # settings or data changed: a fresh run, not a resume of the old one; but never on the word of
            # damaged tokens (tokenize verified or rebuilt them above; this is the last line of defence)
            parquet = tokens / "tokens.parquet"
            problem = format_problem(parquet) if parquet.is_file() else "is missing"
            if problem:
                raise MathloraError(f"{parquet} {problem}; the finished training in {out} is kept. "
                                    "Run again to rebuild the tokens")
            import shutil

            trash = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, trash)  # gone from view at once; a crash leaves a temp folder, cleaned next run
            shutil.rmtree(trash, ignore_errors=True)
        self.summary["train"] = self.stage(
            "train", {"tokens": tokens / "tokens.parquet"}, settings, [summary_json, out / "adapter"],
            lambda: train(cfg, tokens, out, resume=True, progress=self.progress))
        merged = self.p("merged")
        adapter = out / "adapter"
        self.stage("merge", {"adapter": adapter}, {"model": cfg.model}, [merged / "config.json", merged],
                   lambda: {"merged": str(merge_adapter(cfg.model, adapter, merged, overwrite=True))})
        return merged

    def run(self) -> dict:
        """The whole pipeline, holding the run folder's lock; the config is checked before any stage."""
        from mathlora.preflight import check_config

        with RunLock(self.rd.root):
            check_config(self.cfg)
            links = links_out_of(self.rd.root, sorted(p.name for p in self.rd.root.iterdir()) + [
                f"eval/{x}" for x in ("base", "tuned")])
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
        write_text_atomic(self.p("config.yaml"), dump_config(cfg))
        train_src, test_src, squad_src = self.data_sources()
        self.prepare(train_src, test_src)
        self.evaluate("base", cfg.model, squad_src, {})
        merged = self.train_and_merge()
        # the merged model is a function of base + adapter: the adapter's hash stands for it
        self.evaluate("tuned", str(merged), squad_src, {"adapter": self.p("train/adapter")})
        from mathlora.report.build import build_report

        report_inputs = {name: self.p(name) for name in (
            "eval/base/math.json", "eval/tuned/math.json", "eval/base/squad.json", "eval/tuned/squad.json",
            "train/summary.json", "sample_table.json", "tokens/stats.json")}
        report = self.stage("report", report_inputs, {"version": __version__}, [self.p("report.html")],
                            lambda: build_report(self.rd.root))
        self.summary["seconds"] = round(time.perf_counter() - start, 1)
        return {**self.summary, "report": report}


def headline(run_dir: Path) -> str:
    """The last line of ``run``: where the report is, accuracy before -> after, the retention verdict."""
    def load(name):
        p = run_dir / name
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    base, tuned, squad = load("eval/base/math.json"), load("eval/tuned/math.json"), load("eval/tuned/squad.json")
    acc = (f"math accuracy {100 * base.get('accuracy', 0):.1f}% -> {100 * tuned.get('accuracy', 0):.1f}%"
           if base and tuned else "math accuracy: n/a")
    ret = squad.get("retention")
    verdict = ("retention PASSED" if ret and ret.get("passed") else "retention FAILED" if ret else "retention: n/a")
    if ret:
        verdict += f" (F1 {ret['base_f1']:.1f} -> {ret['f1']:.1f}, EM {ret['base_em']:.1f} -> {ret['em']:.1f}, keep {ret['keep']:.0%})"
    return f"report: {run_dir / 'report.html'} | {acc} | {verdict}"


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
    if not (root / "manifest.json").is_file():
        raise MathloraError(f"{root} is not a mathlora run folder (no manifest.json)")
    from mathlora.records import read_json_document

    try:
        manifest = read_json_document(root / "manifest.json", "manifest")
    except MathloraError as e:
        manifest = e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages", {}), dict):
        raise MathloraError(f"{root / 'manifest.json'} is damaged; `mathlora run` rebuilds it")
    with RunLock(root):
        build_report(root)
    print(headline(root))
    return 0
