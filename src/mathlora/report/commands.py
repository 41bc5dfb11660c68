"""CLI: ``mathlora report``, (re)building a run folder's report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.layout import RunLayout
from mathlora.run_dir.manifest import Manifest


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)build report.html / report.md of a run folder")
    p.add_argument("run_dir", help="run folder")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from mathlora.report.build import build_report
    from mathlora.report.scores import headline
    from mathlora.run_dir.guards import RunLock

    root = Path(args.run_dir)
    Manifest(RunLayout(root)).require()
    with RunLock(root):
        build_report(root)
    print(headline(root))
    return 0
