"""CLI: ``mathlora ingest | sample | normalize | rewrite | convert | tokenize``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.app.cliargs import (add_config_args, add_input, add_model, add_output, flag, option, print_counts,
                              show_progress, stage_command)
from mathlora.data.formats import FORMATS
import yaml
from mathlora.app.config import yaml_load
from mathlora.data.ingest import ingest_file
from mathlora.data.normalize import normalize_file
from mathlora.data.rewrite import rewrite_file
from mathlora.data.convert import convert_file
from mathlora.data.tokenize import tokenize_file
from mathlora.data.sampling import sample_file


def _io(p: argparse.ArgumentParser, input_help: str, output_help: str) -> None:
    add_input(p, input_help)
    add_output(p, output_help)


def column_mapping(text: str) -> dict[str, str]:
    """``--columns '{problem: question, solution: answer}'`` -> the mapping (YAML flow or JSON)."""


    try:
        value = yaml_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a mapping of roles to columns, e.g. "
                                         "'{problem: question, solution: answer}'")
    return {str(k): v for k, v in value.items()}


def cmd_ingest(args) -> int:
    def show(counts: dict, cfg) -> None:
        print_counts("ingest", counts)
        for reason, n in sorted(counts["reject_reasons"].items(), key=lambda x: -x[1]):
            print(f"  rejected {n}: {reason}")

    return stage_command(args, lambda cfg: ingest_file(cfg.ingest, args.input, args.output,
                                                       rejects_path=args.rejects, reading=cfg.data.reading("train")),
                         title="ingest", show=show)


def cmd_normalize(args) -> int:
    return stage_command(args, lambda cfg: normalize_file(cfg.normalize, args.input, args.output), title="normalize")


def cmd_rewrite(args) -> int:


    report = args.report or str(Path(args.output).with_name("rewrite_report.json"))

    def show(counts: dict, cfg) -> None:
        print_counts("rewrite", counts)
        for family, c in counts["per_family"].items():
            print(f"  {family:<18} recognised {c['recognised']}, rewritten {c['rewritten']}, "
                  f"mismatch {c['mismatch']}, refused {c['refused']}")
        print(f"report: {report}")

    return stage_command(args, lambda cfg: rewrite_file(args.input, args.output, report, style=cfg.solution_style),
                         title="rewrite", show=show)


def cmd_convert(args) -> int:
    return stage_command(args, lambda cfg: convert_file(cfg.convert, args.input, args.output, template=cfg.template),
                         title="convert")


def cmd_tokenize(args) -> int:
    return stage_command(args, lambda cfg: tokenize_file(cfg.tokenize, args.input, args.output, model=cfg.model,
                                                         template=cfg.template, overwrite=args.overwrite,
                                                         progress=show_progress(args)), title="tokenize")


def cmd_sample(args) -> int:
    def show(summary: dict, cfg) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"stratified sample (ratios {summary['ratios']}, seed {summary['seed']})")
        for column in ("level", "available", "requested", "drawn"):
            table.add_column(column, justify="right")
        for row in summary["rows"]:
            table.add_row(*(str(row[c]) for c in ("level", "available", "requested", "drawn")))
        totals = summary["totals"]
        table.add_row("total", str(totals["available"]), str(totals["requested"]), str(totals["drawn"]),
                      style="bold")
        Console().print(table)
        print(f"wrote {totals['drawn']} records to {args.output}")

    return stage_command(args, lambda cfg: sample_file(cfg.sample, args.input, args.output, seed=cfg.seed),
                         title="sample", show=show)


def register(sub) -> None:
    p = sub.add_parser("ingest", help="validate, id and deduplicate a raw train.json",
                       description="Read raw records ({problem, solution}, Alpaca, ShareGPT or messages rows, as "
                                   "data.format and data.columns say), give each record a stable id, drop exact "
                                   "duplicates and write the rest; every rejected line goes to the rejects file "
                                   "with its line number and reason.")
    _io(p, "raw records: JSON, JSON lines, CSV, Parquet or Arrow file, a datasets folder or a Hub dataset",
        "records (JSON lines)")
    p.add_argument("--rejects", default=None, help="rejects file (default: rejects.jsonl beside the output)")
    option(p, "--format", field="data.format", choices=["auto", *FORMATS],
           help="how a row becomes a problem and a solution (auto: from the columns)")
    option(p, "--columns", field="data.columns", type=column_mapping, metavar="MAPPING",
           help="the file's column for each role, e.g. '{problem: question, solution: answer}'")
    option(p, "--keep-duplicates", field="ingest.keep_duplicates", action="store_true",
           help="keep exact duplicates (after whitespace normalisation)")
    add_config_args(p)
    p.set_defaults(func=cmd_ingest)

    s = sub.add_parser("sample", help="stratified sample by difficulty (recipe: 100000 at 1:4,2:3,3:2,4:1)",
                       description="Draw --total records from the named difficulty levels in ratio, "
                                   "without replacement; same input and seed give the same output.")
    _io(s, "labeled records (JSON lines)", "sampled records (JSON lines); sample_table.json beside it")
    option(s, "--total", field="sample.total", type=int, help="records to draw")
    option(s, "--ratios", field="sample.ratios", help="level:weight pairs, e.g. 1:4,2:3,3:2,4:1")
    option(s, "--seed", field="sample.seed", type=int, help="sampling seed (default: the global seed)")
    option(s, "--shortfall", field="sample.shortfall", choices=["redistribute", "error"],
           help="when a level has fewer records than its quota")
    option(s, "--balance-by", field="sample.balance_by", help="spread each level's quota evenly over this field")
    add_config_args(s)
    s.set_defaults(func=cmd_sample)

    p = sub.add_parser("normalize", help="cut numbers with more than N decimals to N (default 2)",
                       description="Round (half-up, exact) or truncate every number with more than --decimals "
                                   "fractional digits in problems and solutions; shorter numbers, integers, "
                                   "fractions and non-numbers stay byte for byte.")
    _io(p, "records (JSON lines)", "normalized records (JSON lines)")
    option(p, "--decimals", field="normalize.decimals", type=int, help="decimals to keep (default 2)")
    option(p, "--mode", field="normalize.mode", choices=["round", "truncate"], help="round half-up or truncate")
    add_config_args(p)
    p.set_defaults(func=cmd_normalize)

    p = sub.add_parser("rewrite", help="answer-only solutions -> rule-based worked solutions (steps/calculator)",
                       description="Recognise each contest family from the problem's wording and rebuild its "
                                   "solution by rule from the problem's numbers, as worked steps or with "
                                   "<<expr=value>> calculator annotations; a record keeps its solution when the "
                                   "family is unknown or the rebuilt answer disagrees (counted in the report).")
    _io(p, "normalized records (JSON lines)", "rewritten records (JSON lines)")
    option(p, "--solution-style", field="solution_style", choices=["answer", "steps", "calculator", "decomposed"],
           help="steps: computations with results; calculator: computations as <<expr=value>>; decomposed: "
                "tool-free steps small enough to compute digit by digit")
    p.add_argument("--report", default=None, help="report JSON (default: rewrite_report.json beside the output)")
    add_config_args(p)
    p.set_defaults(func=cmd_rewrite)

    p = sub.add_parser("convert", help="records -> conversation JSON (the recipe's format)",
                       description="Turn each record into a conversation (the prompt template's instruction "
                                   "and the solution), as ShareGPT conversations or OpenAI-style messages.")
    _io(p, "records (JSON lines): rewritten.jsonl, or normalized.jsonl for solution_style answer",
        "conversations (JSON)")
    option(p, "--template", field="template", help="prompt template name (default alpaca)")
    option(p, "--format", field="convert.format", choices=["sharegpt", "messages"],
           help="sharegpt conversations (default) or OpenAI-style messages")
    add_config_args(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("tokenize", help="conversations -> masked token records (Parquet / MindRecord)",
                       description="Tokenize each conversation with the model's tokenizer, the prompt masked out "
                                   "of the loss (labels from token spans), into tokens.parquet and stats.json; "
                                   "records over --seq-length are cut or dropped (tokens/rejects.jsonl).")
    _io(p, "conversations (JSON)", "output folder")
    add_model(p, help="model spec whose tokenizer to use")
    option(p, "--seq-length", field="tokenize.seq_length", type=int, help="maximum tokens per record (256)")
    option(p, "--overflow", field="tokenize.overflow", choices=["truncate", "drop"],
           help="what to do with longer records")
    option(p, "--template", field="template", help="template the conversations were made with (alpaca)")
    option(p, "--format", field="tokenize.format", choices=["parquet", "mindrecord"],
           help="parquet (always written) or also mindrecord")
    flag(p, "--overwrite", help="replace an existing output folder even if it is not an earlier tokens folder")
    add_config_args(p)
    p.set_defaults(func=cmd_tokenize)
