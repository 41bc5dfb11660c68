"""The ``mathlora`` command: one subcommand per stage, plus ``run`` for the whole pipeline.

Thin by design: each stage package registers its own subcommands (``register(subparsers)``) and
imports heavy libraries only when its command runs. Every subcommand gets ``--no-progress`` and
``--quiet`` here (``cliargs.add_output_switches``), applied to the libraries while it runs. User mistakes print
one ``error:`` line and exit 2; no tracebacks (set MATHLORA_DEBUG=1 to see them). A command given no
``--config`` runs the demo config (``mathlora.app.config.DEFAULT_CONFIG``).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from mathlora import __version__
from mathlora.app.cliargs import add_output_switches, library_output, show_progress
from mathlora.errors import MathloraError

# Modules exposing register(subparsers); order is the order shown in --help.
COMMAND_MODULES = [
    "mathlora.synth.commands",
    "mathlora.data.commands",
    "mathlora.label.commands",
    "mathlora.train.commands",
    "mathlora.grpo.commands",
    "mathlora.evaluate.commands",
    "mathlora.app.commands",
    "mathlora.report.commands",
    "mathlora.export.commands",
    "mathlora.serve.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mathlora",
        description="Difficulty-stratified LoRA fine-tuning for math, with retention checks. A command given "
                    "no --config runs the demo config (configs/demo.yaml); `mathlora config list` shows the "
                    "shipped configs, `mathlora config show` the resolved one.")
    parser.add_argument("--version", action="version", version=f"mathlora {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for leaf in command_parsers(parser).values():
        if not any("--quiet" in a.option_strings for a in leaf._actions):
            add_output_switches(leaf)
    return parser


def command_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every parser that runs a command (``eval math``, ``run``, ...), by its words; groups such as ``eval``
    are walked, not listed."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words = f"{prefix} {name}".strip()
                found.update(command_parsers(child, words) or {words: child})
    return found


def all_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every parser, groups included (``eval``, ``eval math``, ...)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words = f"{prefix} {name}".strip()
                found[words] = child
                found.update(all_parsers(child, words))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (argparse printed why)
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with library_output(quiet=getattr(args, "quiet", False), progress=show_progress(args)):
            result = args.func(args)
        if argv is None and getattr(args, "quick_exit", False):
            # the process ends next: freeze what it holds so the interpreter's exit does not walk torch's and
            # transformers' objects (about 1.5 s after `ask` on 2 cores); only for commands that say so
            gc.freeze()
        return int(result or 0)
    except MathloraError as e:
        if os.environ.get("MATHLORA_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
