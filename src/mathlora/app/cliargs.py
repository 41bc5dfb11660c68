"""Shared argparse plumbing for stage commands: one vocabulary for every subcommand.

Stage flags are sugar for config overrides: an option declared with ``field="sample.total"`` stores
its value under that dotted name, and ``config_from_args`` applies every such value (when given) on
top of ``--config`` and the ``key=value`` overrides (positional or ``--set``). A boolean option always has
its ``--no-X`` form. Old spellings stay for one release through ``deprecated`` (one warning line on stderr).
``--no-progress`` and ``--quiet`` are added to every subcommand by ``mathlora.app.cli``; ``library_output``
applies them to transformers, peft, huggingface_hub and datasets too. Modules that register commands must
stay light: import torch/transformers inside the command function, not at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Any, Callable, Iterator
from pathlib import Path
import logging

from mathlora.app.config import DEFAULT_CONFIG, Config, describe_layers, load_config_layers, parse_override
from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime
from mathlora.run_dir.guards import guard_outputs, lock_for_output
from mathlora.run_dir.layout import RunLayout

BOOLEAN_ACTIONS = ("store_true", "store_false", argparse.BooleanOptionalAction)


def add_config_args(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """``--config``, ``--set KEY=VALUE`` (repeatable) and, unless ``positional`` is False, ``KEY=VALUE``
    positionals."""
    parser.add_argument("--config", default=None, metavar="FILE_OR_NAME",
                        help=f"YAML config file or shipped config name (default: {DEFAULT_CONFIG}, the embedded "
                             "demo config; `mathlora config list`); a YAML may say `base: NAME` and hold only "
                             "what differs")
    parser.add_argument("--set", dest="set_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, e.g. --set train.lr=2e-4 (repeatable)")
    if positional:
        parser.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                            help="config overrides, e.g. train.lr=2e-4 sample.total=1000")


def command_group(subparsers, name: str, *, help: str, description: str):
    """A command whose subcommands do the work (``eval math``, ``export mindformers``): the group's parser and
    its subparsers; the group alone prints its help and exits 2."""
    group = subparsers.add_parser(name, help=help, description=description)
    group.set_defaults(func=lambda args: (group.print_help(), 2)[1])
    return group, group.add_subparsers(dest=f"{name}_command", metavar="WHAT")


def option(parser: argparse.ArgumentParser, *flags: str, field: str, **kwargs: Any) -> None:
    """Add a flag whose value overrides config field ``field`` (dotted) when given. A boolean gets its
    ``--no-X`` form; choices are shown in ``--help``."""
    kwargs["default"] = None
    if kwargs.get("action") in BOOLEAN_ACTIONS:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif "choices" not in kwargs:
        kwargs.setdefault("metavar", field.rsplit(".", 1)[-1].upper())
    if kwargs.get("help") not in (None, argparse.SUPPRESS):
        kwargs["help"] += f" [{field}]"
    parser.add_argument(*flags, dest=f"cfg:{field}", **kwargs)


def int_or_auto(value: str):
    """An argparse type: a whole number, or ``auto``."""
    return value if value == "auto" else int(value)


def flag(parser: argparse.ArgumentParser, *flags: str, default: bool = False, **kwargs: Any) -> None:
    """A boolean command flag (not a config field), with its ``--no-X`` form."""
    parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, **kwargs)


class _Deprecated(argparse.Action):
    """An old spelling: stores like the new one, says once on stderr what to write instead."""

    def __init__(self, option_strings, dest, *, new: str, nargs=None, const=None, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(f"{parser.prog} {option_string}", self.new)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def warn_deprecated(old: str, new: str) -> None:
    print(f"warning: `{old}` is deprecated, use `{new}` (the old spelling goes in the next release)",
          file=sys.stderr, flush=True)


def deprecated(parser: argparse.ArgumentParser, *old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Accept ``old`` flags as ``new`` (same ``dest``) for one release, hidden from ``--help``."""
    parser.add_argument(*old, dest=dest, action=_Deprecated, new=new, default=None, help=argparse.SUPPRESS,
                        **kwargs)


def add_input(parser: argparse.ArgumentParser, help: str, *, required: bool = True, **kwargs: Any) -> None:
    parser.add_argument("--input", "-i", required=required, help=help, **kwargs)


def add_output(parser: argparse.ArgumentParser, help: str, *, required: bool = True,
               overwrite_help: str | None = "replace an existing output file (never one of the inputs)",
               **kwargs: Any) -> None:
    """``--output``/``-o`` and ``--overwrite`` (the output guard's one flag: ``guards.guard_outputs``)."""
    parser.add_argument("--output", "-o", required=required, default=None, help=help, **kwargs)
    if overwrite_help is not None:
        flag(parser, "--overwrite", help=overwrite_help)


INPUT_FLAGS = ("input", "predictions", "gold", "baseline")


def guard_command_outputs(args: argparse.Namespace, *outputs, inputs=None) -> None:
    """The output guard for a command: ``outputs`` against the command's inputs (``--input``,
    ``--predictions``, ``--gold``, ``--baseline`` unless ``inputs`` is given) and its ``--overwrite``."""
    if inputs is None:
        inputs = [(f"--{name}", getattr(args, name, None)) for name in INPUT_FLAGS]
    guard_outputs(outputs, inputs, overwrite=bool(getattr(args, "overwrite", False)))


def add_model(parser: argparse.ArgumentParser, help: str | None = None, **kwargs: Any) -> None:
    """``--model``/``-m``: always the base model (the config's ``model``)."""
    option(parser, "--model", "-m", field="model",
           help=help or "base model: a Hub id (org/name[@revision]), HF folder, .gguf file, smollm2-135m-instruct, "
                        "tiny-random-llama", **kwargs)


def add_run(parser: argparse.ArgumentParser, help: str = "run folder", **kwargs: Any) -> None:
    """``--run DIR``: the run folder (the config's ``run_dir``)."""
    option(parser, "--run", field="run_dir", metavar="DIR", help=help, **kwargs)


def add_output_switches(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` and ``--quiet`` (every subcommand has both; ``mathlora.app.cli`` adds them)."""
    flag(parser, "--progress", default=True, help="progress bars, ours and the libraries' (default: on)")
    flag(parser, "--quiet", "-q", help="no progress bars and no warnings or notes from transformers, peft, "
                                       "huggingface_hub, datasets or torch; mathlora's own lines stay")


def show_progress(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "progress", True)) and not getattr(args, "quiet", False)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in [*(getattr(args, "overrides", []) or []), *(getattr(args, "set_overrides", []) or [])]:
        keys, value = parse_override(item)
        overrides[".".join(keys)] = value
    for key, value in vars(args).items():
        if key.startswith("cfg:") and value is not None:
            overrides[key[4:]] = value
    return overrides


def config_from_args(args: argparse.Namespace) -> Config:
    """The command's config: ``--config`` (default: the demo config) with its ``base:`` chain, the
    overrides, then the flags. ``args.config_layers`` names what it was made of (``my.yaml <- demo``)."""
    overrides = config_overrides(args)
    cfg, chain = load_config_layers(getattr(args, "config", None), overrides)
    args.config_layers = describe_layers(chain, overrides)
    return cfg


def on_off(value: bool) -> str:
    return "on" if value else "off"


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision``: shorthands for ``runtime.device`` / ``runtime.precision``."""
    option(parser, "--device", field="runtime.device", help="auto (cuda when available), cpu, cuda, cuda:N")
    option(parser, "--precision", field="runtime.precision", choices=["auto", "fp32", "bf16", "fp16"],
           help="auto = bf16 on CUDA, fp32 on CPU")


def print_counts(title: str, counts: dict) -> None:
    """``title: key value, ...``: a stage's scalar counts on one line."""
    flat = ", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, (dict, list)))
    print(f"{title}: {flat}")


def stage_command(args: argparse.Namespace, call: Callable[[Config], dict], *, title: str,
                  show: Callable[[dict, Config], None] | None = None, output=None, extra_outputs=()) -> int:
    """The shape of a stage's command: the config from the flags, the output locked (``output``, default
    ``--output``), the stage's entry function called (``call(cfg)``), what it returned printed (``show``,
    default the counts on one line under ``title``). The output guard comes first: the outputs
    (``output``, ``extra_outputs``) never an input, an existing file never without ``--overwrite``."""

    output = output if output is not None else args.output
    guard_command_outputs(args, output, *extra_outputs)
    cfg = config_from_args(args)
    with lock_for_output(output):
        counts = call(cfg)
    (show or (lambda c, _: print_counts(title, c)))(counts, cfg)
    return 0


def run_config_from_args(args: argparse.Namespace, run: str | os.PathLike) -> Config:
    """The config of a command on a run folder: the run's own ``config.yaml`` (never another ``--config``,
    refused in one line), with the command's flags and ``--set`` overrides on top."""

    root = Path(run)
    if not root.is_dir():
        raise MathloraError(f"run folder not found: {root}")
    layout = RunLayout(root)
    if not layout.config.is_file():
        raise MathloraError(f"{root} is not a mathlora run folder (no config.yaml)")
    given = getattr(args, "config", None)
    if given is not None and Path(given).resolve() != layout.config.resolve():  # never dropped silently
        raise MathloraError(f"--run reads the run's own config ({layout.config}), not --config {given}; "
                            "leave one out (a setting: --set KEY=VALUE)")
    args.config = str(layout.config)
    return config_from_args(args)


def runtime_from(cfg: Config) -> Runtime:
    """The one runtime of a command (environment, then ``cfg.runtime``), activated."""
    return Runtime.resolve(cfg.runtime).activate()


# Python modules whose warnings --quiet hides (a warning attributed to them); FutureWarning and
# DeprecationWarning are hidden wherever they come from (they speak to developers, not to users).
LIBRARIES = r"(transformers|peft|huggingface_hub|datasets|torch|accelerate|gguf|tokenizers|safetensors)(\..*)?$"
_QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "DATASETS_VERBOSITY": "error"}
_NO_PROGRESS_ENV = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}  # tqdm reads it when imported


@contextlib.contextmanager
def library_output(*, quiet: bool, progress: bool) -> Iterator[None]:
    """While a command runs: with ``quiet``, no warnings or info lines from the libraries (their loggers at
    error, their Python warnings ignored); with ``quiet`` or without ``progress``, no progress bars of theirs.
    huggingface_hub (light; transformers' bars follow it) is set through its API, as is any library imported
    already; one imported during the command reads the environment. Everything is put back afterwards (the
    command may run inside a longer process, e.g. the tests)."""
    if not quiet and progress:
        yield
        return
    env = {**(_QUIET_ENV if quiet else {}), **_NO_PROGRESS_ENV}
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    restore = _set_loaded_libraries(quiet=quiet)
    with warnings.catch_warnings():
        if quiet:
            for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
                warnings.simplefilter("ignore", category)
            warnings.filterwarnings("ignore", module=LIBRARIES)
        try:
            yield
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            restore()


def _set_loaded_libraries(*, quiet: bool):
    """Quiet the libraries: those loaded now through their API (and what to put back), those loaded later
    through the environment (then reset to their defaults afterwards)."""
    import huggingface_hub.utils  # noqa: F401  (30 ms; its progress switch is read by transformers at import)

    loaded = {name for name in ("transformers", "huggingface_hub", "datasets") if name in sys.modules}
    undo = []

    def apply(name: str) -> None:
        if name == "transformers":
            from transformers.utils import logging as tlog

            level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
            if quiet:
                tlog.set_verbosity_error()
            tlog.disable_progress_bar()
            undo.append(lambda: (tlog.set_verbosity(level), _quietly(tlog.enable_progress_bar) if bars else None))
        elif name == "huggingface_hub":
            from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
            from huggingface_hub.utils import logging as hlog

            level, disabled = hlog.get_verbosity(), are_progress_bars_disabled()
            if quiet:
                hlog.set_verbosity_error()
            disable_progress_bars()
            undo.append(lambda: (hlog.set_verbosity(level), None if disabled else _quietly(enable_progress_bars)))
        elif name == "datasets":
            from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
            from datasets.utils import logging as dlog

            level, disabled = dlog.get_verbosity(), are_progress_bars_disabled()
            if quiet:
                dlog.set_verbosity_error()
            disable_progress_bars()
            undo.append(lambda: (dlog.set_verbosity(level), None if disabled else _quietly(enable_progress_bars)))

    for name in sorted(loaded):
        apply(name)

    def restore() -> None:
        for step in reversed(undo):
            step()
        for name in ("transformers", "huggingface_hub", "datasets"):  # loaded during the command, from the env
            if name in sys.modules and name not in loaded:
                _defaults(name)

    return restore


def _quietly(fn) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn()


def _defaults(name: str) -> None:
    if name == "transformers":
        from transformers.utils import logging as tlog

        tlog.set_verbosity(logging.WARNING)
        _quietly(tlog.enable_progress_bar)
    elif name == "huggingface_hub":
        from huggingface_hub.utils import enable_progress_bars
        from huggingface_hub.utils import logging as hlog

        hlog.set_verbosity(logging.WARNING)
        _quietly(enable_progress_bars)
    elif name == "datasets":
        from datasets.utils import enable_progress_bars
        from datasets.utils import logging as dlog

        dlog.set_verbosity(logging.WARNING)
        _quietly(enable_progress_bars)
