"""Checks of a whole config before the first stage runs: a mistake in the model spec, the template, the
judge settings, a path or the data's format is reported in seconds, not after labeling spent its time (the
sampling ratios are checked when the config loads).

Nothing heavy is loaded: a model spec is read by ``mathlora.modeling.models.model_source`` (the one reading of a spec:
a folder with ``config.json``, a ``.gguf`` file, a packaged or tiny model, a Hub id found in the cache; a Hub
id not cached yet is asked about, not downloaded), and a data file by ``mathlora.data.sources.check_source``
(it exists, and where its columns are cheap to read, a table's schema, a CSV header or the first lines of
JSON lines, they hold what ``data.format`` / ``data.columns`` need).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mathlora.errors import MathloraError
from mathlora.modeling.models import check_hub_model, model_source
from mathlora.data.sources import check_source
from mathlora.label.judges import judge_of
from mathlora.label.prompt import load_prompt
from mathlora.run_dir.records import require_file
from mathlora.modeling.templates import get_template

if TYPE_CHECKING:  # the root config is the CLI's: this module only reads it
    from mathlora.app.config import Config


def check_config(cfg: "Config") -> None:
    """Validate what a run will need, in the order the stages need it; raises MathloraError."""

    root = Path(cfg.run_dir)
    if root.exists() and not root.is_dir():
        raise MathloraError(f"run folder {root} exists and is not a directory")
    for key in ("train", "test"):
        value = getattr(cfg.data, key)
        if value is not None:
            check_source(value, cfg.data.reading(key), f"data.{key}")
    if cfg.data.squad is not None:
        require_file(cfg.data.squad, "data.squad")
    get_template(cfg.template)
    check_hub_model(model_source(cfg.model))
    label = cfg.label
    judge = judge_of(label)
    judge.check(label, cfg.model)
    if judge.uses_prompt:
        load_prompt(label.prompt_file)
    if label.cache is not None and Path(label.cache).is_dir():
        raise MathloraError(f"label.cache {label.cache} is a directory; expected a SQLite file path")
    if cfg.grpo.enabled:  # TRL and the trackers before hours of SFT, not after
        from mathlora.grpo.trainer import require_trl
        from mathlora.modeling.tracking import check_backends

        require_trl()
        check_backends(cfg.grpo.report_to, where="grpo.report_to")
