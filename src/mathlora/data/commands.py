"""CLI: ``mathlora ingest | normalize | convert | tokenize``."""

from __future__ import annotations

import argparse

from mathlora.cliargs import add_config_args, config_from_args, option
from mathlora.run_dir import lock_for_output


def _io(p: argparse.ArgumentParser, output_help: str = "output file") -> None:
    p.add_argument("--input", "-i", required=True, help="input file")
    p.add_argument("--output", "-o", required=True, help=output_help)


def _print_counts(title: str, counts: dict) -> None:
    flat = ", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, (dict, list)))
    print(f"{title}: {flat}")


def cmd_ingest(args) -> int:
    from mathlora.data.ingest import ingest_file

    cfg = config_from_args(args)
    with lock_for_output(args.output):
        counts = ingest_file(args.input, args.output, keep_duplicates=cfg.ingest.keep_duplicates,
                             rejects_path=args.rejects)
    _print_counts("ingest", counts)
    for reason, n in sorted(counts["reject_reasons"].items(), key=lambda x: -x[1]):
        print(f"  rejected {n}: {reason}")
    return 0


def cmd_normalize(args) -> int:
    from mathlora.data.normalize import normalize_file

    cfg = config_from_args(args)
    with lock_for_output(args.output):
        counts = normalize_file(args.input, args.output, decimals=cfg.normalize.decimals, mode=cfg.normalize.mode)
    _print_counts("normalize", counts)
    return 0


def cmd_convert(args) -> int:
    from mathlora.data.convert import convert_file

    cfg = config_from_args(args)
    with lock_for_output(args.output):
        counts = convert_file(args.input, args.output, template=cfg.template, fmt=cfg.convert.format)
    _print_counts("convert", counts)
    return 0


def cmd_tokenize(args) -> int:
    from mathlora.data.tokenize import tokenize_file

    cfg = config_from_args(args)
    with lock_for_output(args.output):
        counts = tokenize_file(args.input, args.output, model=cfg.model, seq_length=cfg.tokenize.seq_length,
                               overflow=cfg.tokenize.overflow, fmt=cfg.tokenize.format, template=cfg.template,
                               overwrite=args.overwrite)
    _print_counts("tokenize", counts)
    return 0


def register(sub) -> None:
    p = sub.add_parser("ingest", help="validate, id and deduplicate a raw train.json")
    _io(p)
    p.add_argument("--rejects", default=None, help="rejects file (default: rejects.jsonl beside the output)")
    option(p, "--keep-duplicates", field="ingest.keep_duplicates", action="store_true",
           help="keep exact duplicates (after whitespace normalisation)")
    add_config_args(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("normalize", help="cut numbers with more than N decimals to N (default 2)")
    _io(p)
    option(p, "--decimals", field="normalize.decimals", type=int, help="decimals to keep (default 2)")
    option(p, "--mode", field="normalize.mode", choices=["round", "truncate"], help="round half-up or truncate")
    add_config_args(p)
    p.set_defaults(func=cmd_normalize)

    p = sub.add_parser("convert", help="records -> conversation JSON (the recipe's format)")
    _io(p)
    option(p, "--template", field="template", help="prompt template name (default alpaca)")
    option(p, "--format", field="convert.format", choices=["sharegpt", "messages"],
           help="sharegpt conversations (default) or OpenAI-style messages")
    add_config_args(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("tokenize", help="conversations -> masked token records (Parquet / MindRecord)")
    _io(p, "output folder")
    option(p, "--model", "-m", field="model", help="model spec whose tokenizer to use")
    option(p, "--seq-length", field="tokenize.seq_length", type=int, help="maximum tokens per record (256)")
    option(p, "--overflow", field="tokenize.overflow", choices=["truncate", "drop"],
           help="what to do with longer records")
    option(p, "--template", field="template", help="template the conversations were made with (alpaca)")
    option(p, "--format", field="tokenize.format", choices=["parquet", "mindrecord"],
           help="parquet (always written) or also mindrecord")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder even if it is not an earlier tokens folder")
    add_config_args(p)
    p.set_defaults(func=cmd_tokenize)
