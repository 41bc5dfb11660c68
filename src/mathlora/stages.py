"""The stages of ``mathlora run``, declared once, in order.

Each ``Stage`` says what it is (``name``), whether the config uses it (``enabled``, with the reason when not),
the files it reads (``inputs``) and writes (``outputs``), the settings that can change its result
(``settings``: with the inputs' hashes they make its fingerprint) and how it runs (``run``: one call of the
stage package's entry function, the same one its CLI subcommand calls). ``mathlora.pipeline`` loops over
``STAGE_LIST``; nothing else decides which stages exist or in what order.

Like the CLI, this module turns the root config into each stage's section and paths; the stage packages
never see the root config. Entry functions are imported when a stage runs (the CLI stays light).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mathlora import __version__
from mathlora.errors import MathloraError
from mathlora.layout import RunLayout
from mathlora.records import require_file
from mathlora.same_result import result_settings

if TYPE_CHECKING:
    from mathlora.config import Config
    from mathlora.run_dir.manifest import Manifest
    from mathlora.runtime import Runtime

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

    def solutions(self) -> Path:
        """The convert stage's input: the rewritten solutions, or the normalized ones (``solution_style=answer``)."""
        return self.layout.rewritten if REWRITE.enabled(self.cfg) else self.layout.normalized


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


# -- data ---------------------------------------------------------------------------------------------------

def _synth(ctx: Context) -> dict:
    from mathlora.synth.stage import synth_data

    cfg = ctx.cfg
    # the problems of the user's training data, in its format (the test set is drawn disjoint from them)
    user_train = _train_problems(ctx) if cfg.data.train is not None else None
    return synth_data(cfg.synth, seed=cfg.seed, user_train=user_train,
                      **{f"{k}_out": ctx.source(k) for k in ctx.missing_data()})


SYNTH = Stage(
    "synth",
    inputs=lambda ctx: {"train": p for p in _ingest_inputs(ctx, "train").values()} if ctx.cfg.data.train else {},
    outputs=lambda ctx: [ctx.source(k) for k in ctx.missing_data()],
    settings=lambda ctx: {"synth": ctx.cfg.synth.model_dump(), "seed": ctx.cfg.seed, "missing": ctx.missing_data()},
    run=_synth,
    enabled=lambda cfg: any(getattr(cfg.data, k) is None for k in DATA_KEYS),
    unused_because="data.train, data.test and data.squad are given")


def _data_given(ctx: Context, key: str) -> str | None:
    return getattr(ctx.cfg.data, key)


def _reading(ctx: Context, key: str):
    """How ingest reads ``data.<key>``: the user's format, columns and split; synth's own file is plain."""
    from mathlora.data.formats import ReadOptions

    return ctx.cfg.data.reading(key) if _data_given(ctx, key) is not None else ReadOptions()


def _ingest_source(ctx: Context, key: str):
    """``data.<key>`` as a source (a file, a saved dataset folder, a Hub dataset), or synth's file."""
    from mathlora.data.formats import Source, resolve_source

    given = _data_given(ctx, key)
    if given is None:
        return Source("json", str(ctx.source(key)), ctx.source(key))
    return resolve_source(given, f"data.{key}")


def _ingest_inputs(ctx: Context, key: str) -> dict[str, Path]:
    source = _ingest_source(ctx, key)  # a file is hashed; a folder or a Hub dataset is named in the settings
    return {"input": source.path} if source.kind in ("json", "table") else {}


def _ingest_settings(ctx: Context, key: str) -> dict:
    from mathlora.data.formats import hub_dataset_revision
    from mathlora.run_dir.hashing import content_identity

    source, reading = _ingest_source(ctx, key), _reading(ctx, key)
    settings: dict = {"reading": reading.settings(hub=source.kind in ("hub", "saved"))}
    if key == "train":
        settings.update(ctx.cfg.ingest.model_dump())
    if source.kind == "saved":
        settings["saved_dataset"] = content_identity(source.path)
    elif source.kind == "hub":  # the commit when the Hub answers; else the revision as given names it
        settings["hub_dataset"] = {"name": source.name, "commit": hub_dataset_revision(source.name, reading.revision)}
    return settings


def _train_problems(ctx: Context) -> set[str]:
    from mathlora.data.formats import source_problems

    return set(source_problems(_ingest_source(ctx, "train"), _reading(ctx, "train")))


def _ingest(ctx: Context) -> dict:
    from mathlora.data.ingest import ingest_file

    lay = ctx.layout
    return ingest_file(ctx.cfg.ingest, _data_given(ctx, "train") or ctx.source("train"), lay.records,
                       rejects_path=lay.rejects, reading=_reading(ctx, "train"), what="data.train")


def _ingest_test(ctx: Context) -> dict:
    from mathlora.data.config import IngestConfig
    from mathlora.data.ingest import ingest_file

    lay = ctx.layout
    return ingest_file(IngestConfig(), _data_given(ctx, "test") or ctx.source("test"), lay.test_records,
                       rejects_path=lay.test_rejects, reading=_reading(ctx, "test"), what="data.test")


def _label_settings(ctx: Context) -> dict:
    from mathlora.label.run import judge_source

    settings = result_settings(ctx.cfg.label)
    if ctx.cfg.label.judge == "local":
        settings["runtime"] = ctx.runtime.fingerprint()
        settings["model_identity"] = _model_identity(ctx, ctx.cfg.label.model or ctx.cfg.model)  # the judge's
    if ctx.cfg.label.judge == "heuristic":  # new rules (a new version) label again
        settings["source"] = judge_source(ctx.cfg.label, ctx.cfg.model)
    return {"label": settings, "model": ctx.cfg.model}


def _forget_failed_label(ctx: Context, fp: str) -> None:
    if ((ctx.manifest.stage_record("label") or {}).get("counts") or {}).get("failed"):
        ctx.manifest.forget("label")  # recorded with failures by an older mathlora: not done


def _label(ctx: Context) -> dict:
    from mathlora.label.run import failure_message, label_file

    lay = ctx.layout
    # a run always asks again about records that failed before: a label stage with failures is not done
    summary = label_file(ctx.cfg.label.model_copy(update={"retry_failed": True}), ctx.runtime, lay.records,
                         lay.labeled, base_model=ctx.cfg.model, progress=ctx.progress)
    if summary["failed"]:
        raise MathloraError(failure_message(summary, lay.labeled) + "; the next `mathlora run` asks them again")
    return summary


def _sample(ctx: Context) -> dict:
    from mathlora.data.sampling import sample_file

    return sample_file(ctx.cfg.sample, ctx.layout.labeled, ctx.layout.sampled, seed=ctx.cfg.seed)


def _normalize(ctx: Context) -> dict:
    from mathlora.data.normalize import normalize_file

    return normalize_file(ctx.cfg.normalize, ctx.layout.sampled, ctx.layout.normalized)


def _rewrite(ctx: Context) -> dict:
    from mathlora.data.rewrite import rewrite_file

    lay = ctx.layout
    return rewrite_file(lay.normalized, lay.rewritten, lay.rewrite_report, style=ctx.cfg.solution_style)


def _convert(ctx: Context) -> dict:
    from mathlora.data.convert import convert_file

    return convert_file(ctx.cfg.convert, ctx.solutions(), ctx.layout.conversations, template=ctx.cfg.template)


def _tokenize(ctx: Context) -> dict:
    from mathlora.data.tokenize import tokenize_file

    cfg = ctx.cfg
    return tokenize_file(cfg.tokenize, ctx.layout.conversations, ctx.layout.tokens, model=cfg.model,
                         template=cfg.template, progress=ctx.progress)


INGEST = Stage("ingest", inputs=lambda ctx: _ingest_inputs(ctx, "train"),
               outputs=lambda ctx: [ctx.layout.records, ctx.layout.rejects],
               settings=lambda ctx: _ingest_settings(ctx, "train"), run=_ingest)
INGEST_TEST = Stage("ingest_test", inputs=lambda ctx: _ingest_inputs(ctx, "test"),
                    outputs=lambda ctx: [ctx.layout.test_records, ctx.layout.test_rejects], settings=lambda ctx: _ingest_settings(ctx, "test"),
                    run=_ingest_test)
LABEL = Stage("label", inputs=lambda ctx: {"input": ctx.layout.records}, outputs=lambda ctx: [ctx.layout.labeled],
              settings=_label_settings, run=_label, before=_forget_failed_label)
SAMPLE = Stage("sample", inputs=lambda ctx: {"input": ctx.layout.labeled}, outputs=lambda ctx: [ctx.layout.sampled],
               settings=lambda ctx: {"sample": ctx.cfg.sample.model_dump(), "seed": ctx.cfg.seed}, run=_sample)
NORMALIZE = Stage("normalize", inputs=lambda ctx: {"input": ctx.layout.sampled},
                  outputs=lambda ctx: [ctx.layout.normalized], settings=lambda ctx: ctx.cfg.normalize.model_dump(),
                  run=_normalize)
REWRITE = Stage("rewrite", inputs=lambda ctx: {"input": ctx.layout.normalized},
                outputs=lambda ctx: [ctx.layout.rewritten, ctx.layout.rewrite_report],
                settings=lambda ctx: {"solution_style": ctx.cfg.solution_style}, run=_rewrite,
                enabled=lambda cfg: cfg.solution_style != "answer", unused_because="solution_style=answer")
CONVERT = Stage("convert", inputs=lambda ctx: {"input": ctx.solutions()},
                outputs=lambda ctx: [ctx.layout.conversations],
                settings=lambda ctx: {"template": ctx.cfg.template, **ctx.cfg.convert.model_dump()}, run=_convert)
TOKENIZE = Stage("tokenize", inputs=lambda ctx: {"input": ctx.layout.conversations},
                 outputs=lambda ctx: [ctx.layout.tokens_parquet, ctx.layout.tokens_stats, ctx.layout.tokens_rejects],
                 settings=lambda ctx: {"model": ctx.cfg.model, "model_identity": _model_identity(ctx),
                                       "template": ctx.cfg.template, **ctx.cfg.tokenize.model_dump()},
                 run=_tokenize)


# -- evaluation -----------------------------------------------------------------------------------------------

def _eval_model(ctx: Context, which: str) -> str:
    return ctx.cfg.model if which == "base" else str(ctx.layout.merged)


def _model_identity(ctx: Context, model: str | None = None) -> str:
    """The content identity of ``model`` (default: the base model): a model replaced in place is noticed."""
    from mathlora.models import model_identity

    return model_identity(model or ctx.cfg.model)


def _eval_settings(ctx: Context, which: str) -> dict:
    cfg = ctx.cfg
    # the tuned model by its place in the run folder (a moved folder stays fresh) and the base it was merged on
    return {"eval": result_settings(cfg.eval), "template": cfg.template,
            "model": cfg.model if which == "base" else "merged", "model_identity": _model_identity(ctx),
            "solution_style": cfg.solution_style, "runtime": ctx.runtime.fingerprint()}


def _tuned_inputs(ctx: Context, which: str) -> dict[str, Path]:
    # the merged model is a function of base + adapter: the adapter's hash stands for it
    return {"adapter": ctx.layout.train_adapter} if which == "tuned" else {}


def _math_inputs(ctx: Context, which: str) -> dict[str, Path]:
    from mathlora.evaluate.math_eval import math_baselines

    baseline = ctx.layout.eval("base").root if which == "tuned" else None
    return {"test": ctx.layout.test_records, **_tuned_inputs(ctx, which),
            **{f"baseline{tag}": p for tag, p in math_baselines(baseline, ctx.cfg.eval.calculator).items()}}


def _math_outputs(ctx: Context, which: str) -> list[Path]:
    from mathlora.evaluate.math_eval import math_outputs

    return math_outputs(ctx.layout.eval(which).root, ctx.cfg.eval.calculator)


def _run_math(ctx: Context, which: str) -> dict:
    from mathlora.evaluate.math_eval import evaluate_math

    cfg, lay = ctx.cfg, ctx.layout
    return evaluate_math(cfg.eval, ctx.runtime, _eval_model(ctx, which), None, lay.test_records,
                         lay.eval(which).root, baseline_dir=lay.eval("base").root if which == "tuned" else None,
                         template=cfg.template, solution_style=cfg.solution_style, progress=ctx.progress)


def _squad_baseline(ctx: Context, which: str) -> Path | None:
    return ctx.layout.eval("base").squad if which == "tuned" else None


def _squad_inputs(ctx: Context, which: str) -> dict[str, Path]:
    baseline = _squad_baseline(ctx, which)
    return {"squad": ctx.source("squad"), **_tuned_inputs(ctx, which), **({"baseline": baseline} if baseline else {})}


def _run_squad(ctx: Context, which: str) -> dict:
    from mathlora.evaluate.squad import evaluate_squad

    res = evaluate_squad(ctx.cfg.eval, ctx.runtime, _eval_model(ctx, which), None, ctx.source("squad"),
                         ctx.layout.eval(which).squad, progress=ctx.progress,
                         baseline_path=_squad_baseline(ctx, which))
    return {k: res[k] for k in ("f1", "em", "count") if k in res} | (
        {"retained": res["retention"]["passed"]} if "retention" in res else {})


def eval_stages(which: str) -> tuple[Stage, Stage]:
    """The math and SQuAD evaluations of the ``base`` model or the ``tuned`` (merged) one."""
    math = Stage(f"eval_{which}_math", inputs=lambda ctx: _math_inputs(ctx, which),
                 outputs=lambda ctx: _math_outputs(ctx, which), settings=lambda ctx: _eval_settings(ctx, which),
                 run=lambda ctx: _run_math(ctx, which))
    squad = Stage(f"eval_{which}_squad", inputs=lambda ctx: _squad_inputs(ctx, which),
                  outputs=lambda ctx: [ctx.layout.eval(which).squad], settings=lambda ctx: _eval_settings(ctx, which),
                  run=lambda ctx: _run_squad(ctx, which))
    return math, squad


# -- training -------------------------------------------------------------------------------------------------

def _train_fingerprint(ctx: Context) -> str:
    from mathlora.train.fingerprint import training_fingerprint

    # "same run" is the trainer's rule: settings that cannot change the result never invalidate train/
    cfg = ctx.cfg
    return training_fingerprint(cfg.train, ctx.runtime, ctx.layout.tokens, lora=cfg.lora, seed=cfg.seed)


def _train_settings(ctx: Context) -> dict:
    from mathlora.train.fingerprint import training_settings

    cfg = ctx.cfg  # recorded in the manifest: a later run names what changed
    return training_settings(cfg.train, ctx.runtime, ctx.layout.tokens, lora=cfg.lora, seed=cfg.seed)


def _start_over_when_changed(ctx: Context, fp: str) -> None:
    """``--force``: train again from step 0. A training of other settings, finished or interrupted, is never
    deleted without it: one line names the changed settings (when recorded) and the choices."""
    from mathlora.train.checkpoint import checkpoint_fingerprint, newest_valid_checkpoint
    from mathlora.train.fingerprint import changed_settings
    from mathlora.train.outputs import discard_training

    lay = ctx.layout
    if not lay.train.exists():
        return
    if ctx.force:
        discard_training(lay.train, lay.tokens_parquet)  # a fresh run, not a resume of the old one
        return
    rec = ctx.manifest.stage_record("train")
    choices = "run with --force to retrain in place, or give a new --run folder"
    if rec and rec.get("fingerprint") != fp:
        old = rec.get("settings")
        changed = changed_settings(old, _train_settings(ctx)) if isinstance(old, dict) else []
        what = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "") if changed else \
            "settings or tokens (recorded by an older mathlora)"
        raise MathloraError(f"{lay.train} holds a finished training made with other settings (changed: "
                            f"{what}); {choices}")
    newest = newest_valid_checkpoint(lay.train_checkpoints) if rec is None else None
    if newest is not None and checkpoint_fingerprint(newest) != fp:  # an interrupted training of other settings
        raise MathloraError(f"{lay.train} holds an interrupted training made with other settings or tokens "
                            f"({newest.name}); {choices}")


def _train(ctx: Context) -> dict:
    from mathlora.train.trainer import train

    cfg = ctx.cfg
    return train(cfg.train, ctx.runtime, ctx.layout.tokens, ctx.layout.train, lora=cfg.lora, seed=cfg.seed,
                 resume=True, progress=ctx.progress)


def _merge(ctx: Context) -> dict:
    from mathlora.train.merge import merge_adapter

    lay = ctx.layout
    # replaces only an earlier merge (its marker): a folder of the user's is refused, never deleted
    return {"merged": str(merge_adapter(ctx.runtime, ctx.cfg.model, lay.train_adapter, lay.merged,
                                        template=ctx.cfg.template))}  # the training prompt as its chat template


TRAIN = Stage("train", inputs=lambda ctx: {"tokens": ctx.layout.tokens_parquet},
              outputs=lambda ctx: [ctx.layout.train_summary, ctx.layout.train_adapter], settings=_train_settings,
              run=_train, fingerprint=_train_fingerprint, before=_start_over_when_changed)
MERGE = Stage("merge", inputs=lambda ctx: {"adapter": ctx.layout.train_adapter},
              outputs=lambda ctx: [ctx.layout.merged_config, ctx.layout.merged],
              settings=lambda ctx: {"model": ctx.cfg.model, "model_identity": _model_identity(ctx),
                                    "runtime": ctx.runtime.fingerprint()}, run=_merge)


# -- checkpoints (eval.checkpoints): every training checkpoint scored like the tuned model ------------------

def _checkpoint_inputs(ctx: Context) -> dict[str, Path]:
    from mathlora.evaluate.math_eval import math_baselines
    from mathlora.train.checkpoint import CHECKSUM_FILE, list_checkpoints

    lay = ctx.layout
    # a checkpoint's checksum.json stands for its files (its merged/ model is a function of base + adapter)
    return {"test": lay.test_records,
            **{f"baseline{tag}": p for tag, p in math_baselines(lay.eval("base").root, ctx.cfg.eval.calculator).items()},
            **{f"step-{step}": folder / CHECKSUM_FILE for step, folder in list_checkpoints(lay.train_checkpoints)}}


def _checkpoint_outputs(ctx: Context) -> list[Path]:
    from mathlora.evaluate.math_eval import checkpoint_outputs

    return checkpoint_outputs(ctx.layout.train_checkpoints, ctx.layout.eval_checkpoints, ctx.cfg.eval.calculator)


def _run_checkpoints(ctx: Context) -> dict:
    from mathlora.evaluate.math_eval import evaluate_checkpoints

    cfg, lay = ctx.cfg, ctx.layout
    return evaluate_checkpoints(cfg.eval, ctx.runtime, cfg.model, lay.train_checkpoints, lay.test_records,
                                lay.eval_checkpoints, baseline_dir=lay.eval("base").root, template=cfg.template,
                                solution_style=cfg.solution_style, progress=ctx.progress)


EVAL_CHECKPOINTS = Stage("eval_checkpoints", inputs=_checkpoint_inputs, outputs=_checkpoint_outputs,
                         settings=lambda ctx: {**_eval_settings(ctx, "tuned"), "model": "train/checkpoints"},
                         run=_run_checkpoints, enabled=lambda cfg: cfg.eval.checkpoints,
                         unused_because="eval.checkpoints is off")


# -- model cards ----------------------------------------------------------------------------------------------

def _cards(ctx: Context) -> dict:
    from mathlora.export.model_card import write_cards

    return write_cards(ctx.layout.root)


def _card_outputs(ctx: Context) -> list[Path]:
    from mathlora.export.model_card import card_paths

    return card_paths(ctx.layout.root)


def _card_inputs(ctx: Context) -> dict[str, Path]:
    lay = ctx.layout  # a card reads the recipe, the summary and the scores; merged/config.json stands for merged/
    base, tuned = lay.eval("base"), lay.eval("tuned")
    return {str(p.relative_to(lay.root)): p for p in (
        lay.config, lay.train_summary, lay.train_adapter, lay.merged_config, base.math, tuned.math, base.math_nocalc,
        tuned.math_nocalc, base.squad, tuned.squad, lay.checkpoint_scores)}


CARDS = Stage("cards", inputs=_card_inputs, outputs=_card_outputs, settings=lambda ctx: {"version": __version__},
              run=_cards)


# -- report ---------------------------------------------------------------------------------------------------

def _report_inputs(ctx: Context) -> dict[str, Path]:
    lay = ctx.layout
    base, tuned = lay.eval("base"), lay.eval("tuned")
    # the predictions too (re-graded per problem for the levels, the wrong answers and the examples), the
    # held-out problems (their levels) and the checkpoints' scores
    return {str(p.relative_to(lay.root)): p for p in (
        base.math, tuned.math, base.math_nocalc, tuned.math_nocalc, base.squad, tuned.squad, lay.train_summary,
        lay.sample_table, lay.tokens_stats, lay.test_records, lay.checkpoint_scores,
        *[ev.math_files(tag)[0] for ev in (base, tuned) for tag in ("", "_nocalc")])}


def _report(ctx: Context) -> dict:
    from mathlora.report.build import build_report

    return build_report(ctx.layout.root)


REPORT = Stage("report", inputs=_report_inputs, outputs=lambda ctx: [ctx.layout.report_html],
               settings=lambda ctx: {"version": __version__}, run=_report)

STAGE_LIST: tuple[Stage, ...] = (SYNTH, INGEST, INGEST_TEST, LABEL, SAMPLE, NORMALIZE, REWRITE, CONVERT, TOKENIZE,
                                 *eval_stages("base"), TRAIN, MERGE, *eval_stages("tuned"), EVAL_CHECKPOINTS,
                                 CARDS, REPORT)
STAGES = [s.name for s in STAGE_LIST]
