"""CLI: ``mathlora report``, (re)building a run folder's report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.layout import RunLayout
from mathlora.records import read_json_document


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)build report.html / report.md of a run folder")
    p.add_argument("run_dir", help="run folder")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from mathlora.pipeline import headline
    from mathlora.report.build import build_report
    from mathlora.run_dir import RunLock

    root = Path(args.run_dir)
    manifest_path = RunLayout(root).manifest
    if not manifest_path.is_file():
        raise MathloraError(f"{root} is not a mathlora run folder (no manifest.json)")
    try:
        manifest = read_json_document(manifest_path, "manifest")
    except MathloraError as e:
        manifest = e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages", {}), dict):
        raise MathloraError(f"{manifest_path} is damaged; `mathlora run` rebuilds it")
    with RunLock(root):
        build_report(root)
    print(headline(root))
    return 0
