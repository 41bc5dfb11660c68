"""``mathlora synth``: write competition-style math records (JSON lines) or a SQuAD v1.1 fixture (JSON)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mathlora.app.cliargs import (add_config_args, add_output, config_from_args, guard_command_outputs, option,
                                  show_progress)
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_records
from mathlora.synth.stage import synth_data


def parse_type_list(text: str) -> list[str]:
    """``"addition, sqrt"`` -> ``["addition", "sqrt"]`` (names are checked by the config)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="generate contest-style math data or a SQuAD v1.1 reading-comprehension fixture",
        description="Generate competition-style math problems (JSON lines of problem/solution/type) "
                    "or a SQuAD v1.1 JSON fixture of templated English passages.")
    add_output(p, "file to write (JSON lines for math, JSON for squad): the training set `mathlora run` would "
                  "draw, disjoint from its held-out test set")
    p.add_argument("--test-output", metavar="FILE",
                   help="also write the held-out test set (synth.test_count records, JSON lines; math only)")
    p.add_argument("--kind", choices=("math", "squad"), default="math", help="what to generate (default: math)")
    option(p, "--count", field="synth.count", type=int, help="math records to generate")
    option(p, "--types", field="synth.types", type=parse_type_list,
           help="comma-separated problem families (default: all)")
    option(p, "--mix", field="synth.mix", choices=["contest", "equal"],
           help="family shares: the contest's train.json mix (the library default) or the same count per family "
                "(the demo config's)")
    option(p, "--solution-style", field="solution_style", choices=["answer", "steps", "calculator", "decomposed"],
           help="solution format: the competition's answers (the library default), worked steps, or steps with "
                "<<expr=value>> calculator annotations (the demo config's, used when no --config is given)")
    option(p, "--paragraphs", field="synth.squad_paragraphs", type=int, help="squad paragraphs to generate")
    option(p, "--seed", field="seed", type=int, help="random seed (same seed, same output)")
    add_config_args(p)
    p.set_defaults(func=run_synth_command)


def run_synth_command(args: argparse.Namespace) -> int:
    """The synth stage's entry function (``synth_data``) on the command line: ``--output`` is its training set
    (or its SQuAD set with ``--kind squad``), ``--test-output`` its held-out test set."""

    cfg = config_from_args(args)
    output = Path(args.output)
    test_output = Path(args.test_output) if args.test_output else None
    for path in (output, test_output):
        if path is not None and path.is_dir():
            raise MathloraError(f"output {path} is a directory; expected a file path")
    guard_command_outputs(args, output, ("--test-output", test_output))
    if args.kind == "squad":
        synth_data(cfg.synth, seed=cfg.seed, squad_out=output)
        squad = json.loads(output.read_text(encoding="utf-8"))
        paragraphs = sum(len(a["paragraphs"]) for a in squad["data"])
        questions = sum(len(p["qas"]) for a in squad["data"] for p in a["paragraphs"])
        print(f"wrote {output}: SQuAD v{squad['version']}, {len(squad['data'])} articles, "
              f"{paragraphs} paragraphs, {questions} questions (seed {cfg.seed})")
        return 0

    counts = synth_data(cfg.synth, seed=cfg.seed, train_out=output, test_out=test_output,
                        style=cfg.solution_style, progress=show_progress(args))
    per_type = Counter(r["type"] for r in read_records(output))
    print(f"wrote {output}: {counts['train']} records (seed {cfg.seed})")
    if counts.get("unstyled"):
        print(f"  {sum(counts['unstyled'].values())} kept their contest solution (worked solution not built: "
              + ", ".join(f"{status} {n}" for status, n in counts["unstyled"].items()) + ")")
    for name, n in sorted(per_type.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {name:<18} {n}")
    if test_output is not None:
        print(f"wrote {test_output}: {counts['test']} held-out records, no problem in common with {output.name}")
    return 0
