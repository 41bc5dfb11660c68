"""``mathlora label`` (difficulty 0..5 from a judge, cached) and ``mathlora sample`` (stratified draw)."""

from __future__ import annotations

import argparse

from mathlora.cliargs import add_config_args, config_from_args, option


def register(subparsers) -> None:
    p = subparsers.add_parser("label", help="give every record a difficulty 0-5 (openai, local or heuristic judge)",
                              description="Label records with a difficulty 0-5. Resumable: verdicts are cached "
                                          "in SQLite as they arrive; a rerun asks only what is missing.")
    p.add_argument("--input", required=True, help="records from mathlora ingest (JSON lines)")
    p.add_argument("--output", required=True, help="labeled records (JSON lines)")
    option(p, "--judge", field="label.judge", choices=["openai", "local", "heuristic"], help="who rates difficulty")
    option(p, "--base-url", field="label.base_url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    option(p, "--model", field="label.model", help="judge model name (openai) or model spec (local)")
    option(p, "--api-key-env", field="label.api_key_env", help="environment variable holding the API key")
    option(p, "--concurrency", field="label.concurrency", type=int, help="requests in flight (openai)")
    option(p, "--timeout", field="label.timeout", type=float, help="request timeout in seconds (openai)")
    option(p, "--max-retries", field="label.max_retries", type=int, help="retries per record (openai)")
    option(p, "--batch-size", field="label.batch_size", type=int, help="records per forward pass (local)")
    option(p, "--device", field="label.device", help="device of the local judge (cpu, cuda)")
    option(p, "--prompt-file", field="label.prompt_file", help="replace the rubric prompt ({problem}, {solution})")
    option(p, "--cache", field="label.cache", help="SQLite cache (default: label_cache.sqlite next to --output)")
    option(p, "--retry-failed", field="label.retry_failed", action="store_true",
           help="ask again about records that failed before")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(p)
    p.set_defaults(func=run_label)

    s = subparsers.add_parser("sample", help="stratified sample by difficulty (recipe: 100000 at 1:4,2:3,3:2,4:1)",
                              description="Draw --total records from the named difficulty levels in ratio, "
                                          "without replacement; same input and seed give the same output.")
    s.add_argument("--input", required=True, help="labeled records (JSON lines)")
    s.add_argument("--output", required=True, help="sampled records (JSON lines); sample_table.json beside it")
    option(s, "--total", field="sample.total", type=int, help="records to draw")
    option(s, "--ratios", field="sample.ratios", help="level:weight pairs, e.g. 1:4,2:3,3:2,4:1")
    option(s, "--seed", field="sample.seed", type=int, help="sampling seed (default: the global seed)")
    option(s, "--shortfall", field="sample.shortfall", choices=["redistribute", "error"],
           help="when a level has fewer records than its quota")
    option(s, "--balance-by", field="sample.balance_by", help="spread each level's quota evenly over this field")
    add_config_args(s)
    s.set_defaults(func=run_sample)


def run_label(args: argparse.Namespace) -> int:
    from mathlora.label.run import label_file

    cfg = config_from_args(args)
    from mathlora.run_dir import lock_for_output

    with lock_for_output(args.output):
        summary = label_file(cfg.label, args.input, args.output, base_model=cfg.model, progress=not args.quiet)
    dist = "  ".join(f"{lv}:{n}" for lv, n in summary["distribution"].items())
    print(f"labeled {summary['labeled']}, from cache {summary['from_cache']}, failed {summary['failed']} "
          f"({summary['source']}, {summary['seconds']:.1f}s)")
    print(f"difficulty distribution  {dist}")
    print(f"wrote {summary['written']} records to {args.output}")
    if summary["failed"]:
        from mathlora.errors import MathloraError
        from mathlora.label.run import failure_message

        raise MathloraError(failure_message(summary, args.output) + "; --retry-failed asks them again")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from mathlora.data.sampling import sample_file

    cfg = config_from_args(args)
    from mathlora.run_dir import lock_for_output

    with lock_for_output(args.output):
        summary = sample_file(cfg.sample, args.input, args.output, seed=cfg.seed)
    table = Table(title=f"stratified sample (ratios {summary['ratios']}, seed {summary['seed']})")
    for column in ("level", "available", "requested", "drawn"):
        table.add_column(column, justify="right")
    for row in summary["rows"]:
        table.add_row(*(str(row[c]) for c in ("level", "available", "requested", "drawn")))
    totals = summary["totals"]
    table.add_row("total", str(totals["available"]), str(totals["requested"]), str(totals["drawn"]), style="bold")
    Console().print(table)
    print(f"wrote {totals['drawn']} records to {args.output}")
    return 0
