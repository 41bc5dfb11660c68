"""The ``mathlora`` command: one subcommand per stage, plus ``run`` for the whole pipeline.

Thin by design: each stage package registers its own subcommands (``register(subparsers)``) and
imports heavy libraries only when its command runs. User mistakes print one ``error:`` line and
exit 2; no tracebacks (set MATHLORA_DEBUG=1 to see them).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mathlora import __version__
from mathlora.errors import MathloraError

# Modules exposing register(subparsers); order is the order shown in --help.
COMMAND_MODULES = [
    "mathlora.synth.commands",
    "mathlora.data.commands",
    "mathlora.label.commands",
    "mathlora.train.commands",
    "mathlora.evaluate.commands",
    "mathlora.commands",
    "mathlora.report.commands",
    "mathlora.export.commands",
    "mathlora.serve.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mathlora",
        description="Difficulty-stratified LoRA fine-tuning for math, with retention checks.")
    parser.add_argument("--version", action="version", version=f"mathlora {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


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
        result = args.func(args)
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
