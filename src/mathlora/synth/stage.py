"""The synth stage's entry function: the generated data of a run whose ``data.*`` are not all given.

``synth_data`` writes what is missing: a training set and a held-out test set disjoint from it (or, when the
user gave the training data, a test set disjoint from the user's problems), and a SQuAD v1.1 reading set. The
CLI's ``mathlora synth`` and ``mathlora run`` both call it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from mathlora.run_dir.records import read_records, write_jsonl
from mathlora.run_dir import write_json_atomic
from mathlora.run_dir.stage import DATA_KEYS, Stage
from mathlora.synth.config import SynthConfig
from mathlora.synth.competition import TEST_SEED_OFFSET, generate, generate_train_and_test
from mathlora.synth.squad import generate_squad
from mathlora.data.stage import train_problems
from mathlora.data.stage import ingest_inputs


def synth_data(cfg: SynthConfig, *, seed: int, train_out: str | os.PathLike | None = None,
               test_out: str | os.PathLike | None = None, squad_out: str | os.PathLike | None = None,
               user_train: str | os.PathLike | Iterable[str] | None = None, style: str = "answer",
               progress: bool = False) -> dict:
    """Write the requested outputs (each ``None`` = not wanted); returns their counts.

    ``style`` is the training set's solution format (``mathlora run`` keeps ``answer`` and rewrites later;
    ``mathlora synth --solution-style`` writes it directly); ``progress`` shows a bar while drawing it.

    The test set is drawn first, from its own seeded stream, and the training set excludes its problems;
    with ``user_train`` given (and ``train_out`` None) the test set excludes the user's problems instead.
    A training set in a worked style also counts, as ``unstyled`` (by status), the records whose worked
    solution could not be built and kept their contest solution (none: a generated answer always agrees).
    """

    counts: dict = {}
    unstyled: Counter = Counter()  # generated records whose worked solution could not be built, by status
    if train_out is not None or test_out is not None:
        if user_train is None and test_out is None:
            # no held-out set wanted (the user gave data.test, or ``mathlora synth`` without --test-output):
            # nothing to keep the training set apart from
            train, test = generate(cfg.count, seed, cfg.types, mix=cfg.mix, style=style, progress=progress,
                                   unstyled=unstyled), []
        elif user_train is None:
            train, test = generate_train_and_test(cfg.count, cfg.test_count, seed, cfg.types, mix=cfg.mix,
                                                  style=style, progress=progress, unstyled=unstyled)
        else:
            # a path (JSON lines / array of records) or the problems themselves (mathlora run reads any format)
            seen = {r.get("problem") for r in read_records(user_train)} if isinstance(user_train, (str, os.PathLike)) \
                else set(user_train)
            train, test = [], generate(cfg.test_count, seed + TEST_SEED_OFFSET, cfg.types, exclude=seen,
                                       mix=cfg.mix)
        if train_out is not None:
            counts["train"] = write_jsonl(Path(train_out), train)
            if style != "answer":  # kept their contest solution (apply_style's rule); 0 for generated data
                counts["unstyled"] = dict(sorted(unstyled.items()))
        if test_out is not None:
            counts["test"] = write_jsonl(Path(test_out), test)
    if squad_out is not None:
        write_json_atomic(Path(squad_out), generate_squad(cfg.squad_paragraphs, seed), indent=None)
        counts["squad_paragraphs"] = cfg.squad_paragraphs
    return counts


# -- the declaration (``mathlora.run_dir.stage``) ----------------------------------------------------------------

def _synth(ctx) -> dict:
    cfg = ctx.cfg
    # the problems of the user's training data, in its format (the test set is drawn disjoint from them)
    user_train = train_problems(ctx) if cfg.data.train is not None else None
    return synth_data(cfg.synth, seed=cfg.seed, user_train=user_train,
                      **{f"{k}_out": ctx.source(k) for k in ctx.missing_data()})


def _synth_inputs(ctx) -> dict:
    return {"train": p for p in ingest_inputs(ctx, "train").values()} if ctx.cfg.data.train else {}


SYNTH = Stage(
    "synth", inputs=_synth_inputs, outputs=lambda ctx: [ctx.source(k) for k in ctx.missing_data()],
    settings=lambda ctx: {"synth": ctx.cfg.synth.model_dump(), "seed": ctx.cfg.seed, "missing": ctx.missing_data()},
    run=_synth, enabled=lambda cfg: any(getattr(cfg.data, k) is None for k in DATA_KEYS),
    unused_because="data.train, data.test and data.squad are given")
