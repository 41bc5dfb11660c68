"""The stages of ``mathlora run``, in order: an ordered list of each stage package's declarations.

A stage is declared in its package's ``stage`` module (``mathlora.run_dir.stage`` says what a declaration
holds), beside its entry function, its command and its config section. ``mathlora.app.pipeline`` loops over
``STAGE_LIST``; nothing else decides which stages exist or in what order.
"""

from __future__ import annotations

from mathlora.data.stage import CONVERT, INGEST, INGEST_TEST, NORMALIZE, REWRITE, SAMPLE, TOKENIZE
from mathlora.evaluate.stage import EVAL_CHECKPOINTS, eval_stages
from mathlora.export.stage import CARDS
from mathlora.grpo.stage import GRPO
from mathlora.label.stage import LABEL
from mathlora.report.stage import REPORT
from mathlora.run_dir.stage import Context, Stage
from mathlora.synth.stage import SYNTH
from mathlora.train.stage import MERGE, TRAIN

STAGE_LIST: tuple[Stage, ...] = (SYNTH, INGEST, INGEST_TEST, LABEL, SAMPLE, NORMALIZE, REWRITE, CONVERT, TOKENIZE,
                                 *eval_stages("base"), TRAIN, MERGE, *eval_stages("tuned"), EVAL_CHECKPOINTS,
                                 GRPO, *eval_stages("grpo"), CARDS, REPORT)
STAGES = [s.name for s in STAGE_LIST]

__all__ = ["STAGE_LIST", "STAGES", "Context", "Stage"]
