"""Shared argparse plumbing for stage commands.

Stage flags are sugar for config overrides: an option declared with ``field="sample.total"`` stores
its value under that dotted name, and ``config_from_args`` applies every such value (when given) on
top of ``--config`` and the positional ``key=value`` overrides. Modules that register commands must
stay light: import torch/transformers inside the command function, not at module level.
"""

from __future__ import annotations

import argparse
from typing import Any

from mathlora.config import Config, load_config
from mathlora.runtime import Runtime


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="YAML config file or shipped config name (default: the embedded demo config)")
    parser.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. train.lr=2e-4 sample.total=1000")


def option(parser: argparse.ArgumentParser, *flags: str, field: str, **kwargs: Any) -> None:
    """Add a flag whose value overrides config field ``field`` (dotted) when given."""
    kwargs.setdefault("default", None)
    if kwargs.get("action") not in ("store_true", "store_false"):
        kwargs.setdefault("metavar", field.rsplit(".", 1)[-1].upper())
    if kwargs.get("action") in ("store_true", "store_false"):
        kwargs["default"] = None
    parser.add_argument(*flags, dest=f"cfg:{field}", **kwargs)


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    for item in getattr(args, "overrides", []) or []:
        from mathlora.config import parse_override

        keys, value = parse_override(item)
        overrides[".".join(keys)] = value
    for key, value in vars(args).items():
        if key.startswith("cfg:") and value is not None:
            overrides[key[4:]] = value
    return load_config(getattr(args, "config", None), overrides)


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision``: shorthands for ``runtime.device`` / ``runtime.precision``."""
    option(parser, "--device", field="runtime.device", help="auto (cuda when available), cpu, cuda, cuda:N")
    option(parser, "--precision", field="runtime.precision", choices=["auto", "fp32", "bf16", "fp16"],
           help="auto = bf16 on CUDA, fp32 on CPU")


def runtime_from(cfg: Config) -> Runtime:
    """The one runtime of a command (environment, then ``cfg.runtime``), activated."""
    return Runtime.resolve(cfg.runtime).activate()
