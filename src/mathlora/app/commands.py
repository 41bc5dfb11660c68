"""CLI: ``mathlora run``, the whole recipe in one run folder (``mathlora.app.pipeline``), and ``mathlora config
list | show | copy``, the shipped configs and the resolved one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mathlora.app.cliargs import (add_config_args, add_model, add_run, command_group, config_from_args, deprecated, flag,
                                  on_off, show_progress)
from mathlora.app.stages import STAGES
from mathlora.app.pipeline import Pipeline, StopAfter
from mathlora.report.scores import headline
from mathlora.app.config import LIBRARY_DEFAULTS, read_layers, shipped_configs, shipped_description
from mathlora.app.config import dump_config
from mathlora.app.config import copy_config


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole recipe end to end (default: the embedded demo config)",
                       description="mathlora run: the whole recipe, one stage after another, in one run folder. "
                                   "With no --config it runs the demo config (configs/demo.yaml); a rerun skips "
                                   "every fresh stage and resumes an interrupted training.")
    add_run(p, help="run folder (default: the config's run_dir; the demo's is runs/demo)")
    deprecated(p, "--output", "-o", new="--run", dest="cfg:run_dir")
    add_model(p)
    flag(p, "--force", help="redo every stage, even fresh ones (and retrain over a training made with other "
                            "settings)")
    p.add_argument("--stop-after", metavar="STAGE", choices=STAGES,
                   help=f"stop after this stage ({', '.join(STAGES)})")
    add_config_args(p)
    p.set_defaults(func=cmd_run)

    c, csub = command_group(sub, "config", help="the shipped configs (list, copy) and the resolved config (show)",
                            description="Configs layer: a YAML may name `base: demo` (a shipped config, or a path "
                                        "relative to it) and hold only what differs (mappings merge, lists replace); "
                                        "a YAML without base: starts from the library defaults. A command given no "
                                        "config file runs the demo config.")
    ls = csub.add_parser("list", help="the shipped config names, what each is, its base",
                         description="List the shipped config names (what a command's config option and base: take) and `defaults`, "
                                     "the library defaults.")
    ls.set_defaults(func=cmd_config_list)
    show = csub.add_parser("show", help="print the fully resolved config as YAML (base chain, overrides, flags)",
                           description="Print the config a command would run with --config X and these overrides: "
                                       "every key, after the base: chain and the overrides. The output is a "
                                       "config itself (mathlora config show > my.yaml).")
    add_config_args(show)
    show.set_defaults(func=cmd_config_show)
    cp = csub.add_parser("copy", help="copy a shipped config to edit (mathlora config copy demo my.yaml)",
                         description="Write a shipped config's YAML, comments included, to PATH (a folder gets "
                                     "NAME.yaml); an existing file is kept unless --overwrite. `defaults` writes the "
                                     "library defaults in full.")
    cp.add_argument("name", metavar="NAME", help="a shipped config (mathlora config list)")
    cp.add_argument("path", metavar="PATH", help="file (or folder) to write")
    flag(cp, "--overwrite", dest="force", help="replace PATH when it exists (the output guard's one flag)")
    deprecated(cp, "--force", new="--overwrite", dest="force", nargs=0, const=True)
    cp.set_defaults(func=cmd_config_copy)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    # which config, and the settings that decide what the scores mean (stderr; run.log's first line too)
    line = (f"config: {args.config_layers}; run folder {cfg.run_dir}; solution_style {cfg.solution_style}, "
            f"calculator {on_off(cfg.eval.calculator)}, judge {cfg.label.judge}")
    print(line, file=sys.stderr, flush=True)
    pipeline = Pipeline(cfg, force=args.force, progress=show_progress(args), stop_after=args.stop_after,
                        config_line=line)
    try:
        pipeline.run()
    except StopAfter as stop:
        print(f"stopped after {stop} as asked; run again without --stop-after to continue", flush=True)
        return 0
    print(headline(Path(cfg.run_dir)), flush=True)
    return 0


def cmd_config_list(args: argparse.Namespace) -> int:
    rows = []
    for name, path in shipped_configs().items():
        chain = read_layers(path)[1]
        base = f" (base: {chain[1]})" if len(chain) > 1 else ""
        rows.append((name, f"{shipped_description(path)}{base}"))
    rows.append((LIBRARY_DEFAULTS, "the library defaults: where a YAML without base: starts"))
    width = max(len(n) for n, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    print(f"(files in {next(iter(shipped_configs().values())).parent}; `mathlora config copy NAME my.yaml` to edit "
          "one)")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    print(f"# mathlora config: {args.config_layers}")
    print(dump_config(cfg), end="")
    return 0


def cmd_config_copy(args: argparse.Namespace) -> int:
    target = copy_config(args.name, args.path, force=args.force)
    print(f"wrote {target} (a copy of {args.name}); edit it, then: mathlora run --config {target}")
    return 0
