"""CLI: ``mathlora report``, (re)building a run folder's report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.manifest import Manifest
from mathlora.report.build import build_report
from mathlora.report.scores import headline
from mathlora.run_dir.guards import RunLock
from mathlora.app.cliargs import warn_deprecated
from mathlora.errors import MathloraError


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)build report.html / report.md of a run folder",
                       description="Rebuild report.md, report.html and plots/ from a run folder's artifacts (the "
                                   "run's own config.yaml and manifest, not a config file) and print the run's headline.")
    p.add_argument("--run", dest="run", metavar="DIR", default=None, help="run folder (e.g. runs/demo)")
    p.add_argument("run_dir", nargs="?", default=None, help=argparse.SUPPRESS)  # the old spelling
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:


    if args.run_dir is not None:
        if args.run is not None:
            raise MathloraError("give the run folder once: --run DIR")
        warn_deprecated("mathlora report RUN_DIR", "mathlora report --run RUN_DIR")
    run = args.run or args.run_dir
    if run is None:
        raise MathloraError("give the run folder: mathlora report --run DIR")
    root = Path(run)
    Manifest(RunLayout(root)).require()
    with RunLock(root):
        build_report(root)
    print(headline(root))
    return 0
