"""The cards stage of ``mathlora run``, declared (``mathlora.run_dir.stage``): a model card beside every adapter
and merged model of the run (``write_cards``)."""

from __future__ import annotations

from pathlib import Path

from mathlora import __version__
from mathlora.run_dir.stage import Context, Stage
from mathlora.export.model_card import write_cards
from mathlora.export.model_card import card_paths


def _cards(ctx: Context) -> dict:
    return write_cards(ctx.layout.root)


def _card_outputs(ctx: Context) -> list[Path]:
    return card_paths(ctx.layout.root)


def _card_inputs(ctx: Context) -> dict[str, Path]:
    lay = ctx.layout  # a card reads the recipe, the summary and the scores; merged/config.json stands for merged/
    base, tuned = lay.eval("base"), lay.eval("tuned")
    return {str(p.relative_to(lay.root)): p for p in (
        lay.config, lay.train_summary, lay.train_adapter, lay.merged_config, base.math, tuned.math, base.math_nocalc,
        tuned.math_nocalc, base.squad, tuned.squad, lay.checkpoint_scores)}


CARDS = Stage("cards", inputs=_card_inputs, outputs=_card_outputs, settings=lambda ctx: {"version": __version__},
              run=_cards)
