"""Checks of a whole config before the first stage runs: a mistake in the model spec, the template, the
judge settings, the sampling ratios or a path is reported in seconds, not after labeling spent its time.

Nothing heavy is loaded: a model spec is checked for existence and shape (a folder with ``config.json``, a
``.gguf`` file, a packaged or tiny model), not loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mathlora.errors import MathloraError

if TYPE_CHECKING:  # the root config is the CLI's: this module only reads it
    from mathlora.config import Config


def check_model_spec(spec: str, what: str = "model") -> None:
    """One error line when ``spec`` cannot name a loadable model (see ``mathlora.models``)."""
    from mathlora.models import PACKAGED, TINY, is_tiny, packaged_gguf, parse_tiny

    if not isinstance(spec, str) or not spec.strip():
        raise MathloraError(f"{what}: empty model spec")
    if is_tiny(spec):
        parse_tiny(spec)
        return
    if spec in PACKAGED:
        packaged_gguf(spec)
        return
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MathloraError(f"{what} folder {path} has no config.json")
        return
    if path.exists():
        raise MathloraError(f"{what} {spec!r}: expected a model folder or a .gguf file")
    raise MathloraError(f"{what} {spec!r} not found: give a HF model folder, a .gguf file, "
                        f"{', '.join(PACKAGED)}, or {TINY}")


def check_config(cfg: "Config") -> None:
    """Validate what a run will need, in the order the stages need it; raises MathloraError."""
    from mathlora.label.prompt import load_prompt
    from mathlora.records import require_file
    from mathlora.templates import get_template

    root = Path(cfg.run_dir)
    if root.exists() and not root.is_dir():
        raise MathloraError(f"run folder {root} exists and is not a directory")
    for key in ("train", "test", "squad"):
        value = getattr(cfg.data, key)
        if value is not None:
            require_file(value, f"data.{key}")
    get_template(cfg.template)
    check_model_spec(cfg.model)
    label = cfg.label
    if label.judge == "openai":
        from mathlora.label.openai_judge import check_base_url

        if not label.model:
            raise MathloraError("the openai judge needs a model name: label.model=NAME")
        check_base_url(label.base_url, "label.base_url")
    elif label.judge == "local":
        check_model_spec(label.model or cfg.model, "label.model")
    if label.judge != "heuristic":
        load_prompt(label.prompt_file)
    if label.cache is not None and Path(label.cache).is_dir():
        raise MathloraError(f"label.cache {label.cache} is a directory; expected a SQLite file path")
    if cfg.eval.backend == "openai":
        from mathlora.openai_client import check_base_url as check_eval_url

        check_eval_url(cfg.eval.base_url, "eval.base_url")
