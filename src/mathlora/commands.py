"""CLI: ``mathlora run``, the whole recipe in one run folder (``mathlora.pipeline``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.cliargs import add_config_args, config_from_args, option
from mathlora.stages import STAGES


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole recipe end to end (default: the embedded demo config)",
                       description="mathlora run: the whole recipe, one stage after another, in one run folder.")
    option(p, "--output", "-o", field="run_dir", help="run folder (default from config: runs/demo)")
    p.add_argument("--force", action="store_true", help="redo every stage, even fresh ones")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--stop-after", metavar="STAGE", help=f"stop after this stage ({', '.join(STAGES)})")
    add_config_args(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from mathlora.pipeline import Pipeline, StopAfter
    from mathlora.report.scores import headline

    cfg = config_from_args(args)
    pipeline = Pipeline(cfg, force=args.force, progress=not args.no_progress, stop_after=args.stop_after)
    try:
        pipeline.run()
    except StopAfter as stop:
        print(f"stopped after {stop} as asked; run again without --stop-after to continue", flush=True)
        return 0
    print(headline(Path(cfg.run_dir)), flush=True)
    return 0
