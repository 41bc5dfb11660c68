"""The data stages of ``mathlora run``, declared (``mathlora.run_dir.stage``): ingest, ingest_test, sample,
normalize, rewrite, convert, tokenize. Each runs one entry function of this package, the one its
``mathlora <stage>`` command calls; entry functions are imported when a stage runs (the CLI stays light)."""

from __future__ import annotations

from pathlib import Path

from mathlora.modeling.models import model_identity
from mathlora.run_dir.stage import Context, Stage
from mathlora.data.formats import ReadOptions
from mathlora.data.sources import Source, resolve_source
from mathlora.data.sources import hub_dataset_revision
from mathlora.run_dir.hashing import content_identity
from mathlora.data.sources import source_problems
from mathlora.data.ingest import ingest_file
from mathlora.data.config import IngestConfig
from mathlora.data.sampling import sample_file
from mathlora.data.normalize import normalize_file
from mathlora.data.rewrite import rewrite_file
from mathlora.data.convert import convert_file
from mathlora.data.tokenize import tokenize_file


def _data_given(ctx: Context, key: str) -> str | None:
    return getattr(ctx.cfg.data, key)


def reading(ctx: Context, key: str):
    """How ingest reads ``data.<key>``: the user's format, columns and split; synth's own file is plain."""

    return ctx.cfg.data.reading(key) if _data_given(ctx, key) is not None else ReadOptions()


def ingest_source(ctx: Context, key: str):
    """``data.<key>`` as a source (a file, a saved dataset folder, a Hub dataset), or synth's file."""

    given = _data_given(ctx, key)
    if given is None:
        return Source("json", str(ctx.source(key)), ctx.source(key))
    return resolve_source(given, f"data.{key}")


def ingest_inputs(ctx: Context, key: str) -> dict[str, Path]:
    source = ingest_source(ctx, key)  # a file is hashed; a folder or a Hub dataset is named in the settings
    return {"input": source.path} if source.kind in ("json", "table") else {}


def _ingest_settings(ctx: Context, key: str) -> dict:
    source, read = ingest_source(ctx, key), reading(ctx, key)
    settings: dict = {"reading": read.settings(hub=source.kind in ("hub", "saved"))}
    if key == "train":
        settings.update(ctx.cfg.ingest.model_dump())
    if source.kind == "saved":
        settings["saved_dataset"] = content_identity(source.path)
    elif source.kind == "hub":  # the commit when the Hub answers; else the revision as given names it
        settings["hub_dataset"] = {"name": source.name, "commit": hub_dataset_revision(source.name, read.revision)}
    return settings


def train_problems(ctx: Context) -> set[str]:
    """The problems of the user's training data (synth draws its test set disjoint from them)."""

    return set(source_problems(ingest_source(ctx, "train"), reading(ctx, "train")))


def _ingest(ctx: Context) -> dict:
    lay = ctx.layout
    return ingest_file(ctx.cfg.ingest, _data_given(ctx, "train") or ctx.source("train"), lay.records,
                       rejects_path=lay.rejects, reading=reading(ctx, "train"), what="data.train")


def _ingest_test(ctx: Context) -> dict:
    lay = ctx.layout
    return ingest_file(IngestConfig(), _data_given(ctx, "test") or ctx.source("test"), lay.test_records,
                       rejects_path=lay.test_rejects, reading=reading(ctx, "test"), what="data.test")


def _sample(ctx: Context) -> dict:
    return sample_file(ctx.cfg.sample, ctx.layout.labeled, ctx.layout.sampled, seed=ctx.cfg.seed)


def _normalize(ctx: Context) -> dict:
    return normalize_file(ctx.cfg.normalize, ctx.layout.sampled, ctx.layout.normalized)


def _rewrite(ctx: Context) -> dict:
    lay = ctx.layout
    return rewrite_file(lay.normalized, lay.rewritten, lay.rewrite_report, style=ctx.cfg.solution_style)


def solutions(ctx: Context) -> Path:
    """The convert stage's input: the rewritten solutions, or the normalized ones (``solution_style=answer``)."""
    return ctx.layout.rewritten if REWRITE.enabled(ctx.cfg) else ctx.layout.normalized


def _convert(ctx: Context) -> dict:
    return convert_file(ctx.cfg.convert, solutions(ctx), ctx.layout.conversations, template=ctx.cfg.template)


def _tokenize(ctx: Context) -> dict:
    cfg = ctx.cfg
    return tokenize_file(cfg.tokenize, ctx.layout.conversations, ctx.layout.tokens, model=cfg.model,
                         template=cfg.template, progress=ctx.progress)


INGEST = Stage("ingest", inputs=lambda ctx: ingest_inputs(ctx, "train"),
               outputs=lambda ctx: [ctx.layout.records, ctx.layout.rejects],
               settings=lambda ctx: _ingest_settings(ctx, "train"), run=_ingest)
INGEST_TEST = Stage("ingest_test", inputs=lambda ctx: ingest_inputs(ctx, "test"),
                    outputs=lambda ctx: [ctx.layout.test_records, ctx.layout.test_rejects],
                    settings=lambda ctx: _ingest_settings(ctx, "test"), run=_ingest_test)
SAMPLE = Stage("sample", inputs=lambda ctx: {"input": ctx.layout.labeled}, outputs=lambda ctx: [ctx.layout.sampled],
               settings=lambda ctx: {"sample": ctx.cfg.sample.model_dump(), "seed": ctx.cfg.seed}, run=_sample)
NORMALIZE = Stage("normalize", inputs=lambda ctx: {"input": ctx.layout.sampled},
                  outputs=lambda ctx: [ctx.layout.normalized], settings=lambda ctx: ctx.cfg.normalize.model_dump(),
                  run=_normalize)
REWRITE = Stage("rewrite", inputs=lambda ctx: {"input": ctx.layout.normalized},
                outputs=lambda ctx: [ctx.layout.rewritten, ctx.layout.rewrite_report],
                settings=lambda ctx: {"solution_style": ctx.cfg.solution_style}, run=_rewrite,
                enabled=lambda cfg: cfg.solution_style != "answer", unused_because="solution_style=answer")
CONVERT = Stage("convert", inputs=lambda ctx: {"input": solutions(ctx)},
                outputs=lambda ctx: [ctx.layout.conversations],
                settings=lambda ctx: {"template": ctx.cfg.template, **ctx.cfg.convert.model_dump()}, run=_convert)
TOKENIZE = Stage("tokenize", inputs=lambda ctx: {"input": ctx.layout.conversations},
                 outputs=lambda ctx: [ctx.layout.tokens_parquet, ctx.layout.tokens_stats, ctx.layout.tokens_rejects],
                 settings=lambda ctx: {"model": ctx.cfg.model, "model_identity": model_identity(ctx.cfg.model),
                                       "template": ctx.cfg.template, **ctx.cfg.tokenize.model_dump()},
                 run=_tokenize)
