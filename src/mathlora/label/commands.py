"""``mathlora label``: difficulty 0..5 from a judge, cached."""

from __future__ import annotations

import argparse

from mathlora.app.cliargs import (add_config_args, add_input, add_output, add_runtime_args,
                              deprecated, option, runtime_from, show_progress, stage_command)
from mathlora.label.run import label_file
from mathlora.errors import MathloraError
from mathlora.label.run import failure_message


def register(subparsers) -> None:
    p = subparsers.add_parser("label", help="give every record a difficulty 0-5 (openai, local or heuristic judge)",
                              description="Label records with a difficulty 0-5. Resumable: verdicts are cached "
                                          "in SQLite as they arrive; a rerun asks only what is missing.")
    add_input(p, "records from mathlora ingest (JSON lines)")
    add_output(p, "labeled records (JSON lines)")
    option(p, "--judge", field="label.judge", choices=["openai", "local", "heuristic"], help="who rates difficulty")
    option(p, "--base-url", field="label.endpoint.base_url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    option(p, "--judge-model", field="label.model", metavar="NAME",
           help="the judge: the served model's name (openai, e.g. Qwen/Qwen2.5-72B-Instruct) or a model spec "
                "(local; default: the base model)")
    deprecated(p, "--model", new="--judge-model", dest="cfg:label.model")
    option(p, "--api-key-env", field="label.endpoint.api_key_env", help="environment variable holding the API key")
    option(p, "--concurrency", field="label.endpoint.concurrency", type=int, help="requests in flight (openai)")
    option(p, "--timeout", field="label.endpoint.timeout", type=float, help="request timeout in seconds (openai)")
    option(p, "--max-retries", field="label.endpoint.max_retries", type=int, help="retries per record (openai)")
    option(p, "--batch-size", field="label.batch_size", type=int, help="records per forward pass (local)")
    add_runtime_args(p)  # where the local judge runs
    option(p, "--prompt-file", field="label.prompt_file", help="replace the rubric prompt ({problem}, {solution})")
    option(p, "--cache", field="label.cache", help="SQLite cache (default: label_cache.sqlite next to --output)")
    option(p, "--retry-failed", field="label.retry_failed", action="store_true",
           help="ask again about records that failed before")
    add_config_args(p)
    p.set_defaults(func=run_label)


def run_label(args: argparse.Namespace) -> int:
    def show(summary: dict, cfg) -> None:
        dist = "  ".join(f"{lv}:{n}" for lv, n in summary["distribution"].items())
        print(f"labeled {summary['labeled']}, from cache {summary['from_cache']}, failed {summary['failed']} "
              f"({summary['source']}, {summary['seconds']:.1f}s)")
        print(f"difficulty distribution  {dist}")
        print(f"wrote {summary['written']} records to {args.output}")
        if summary["failed"]:
            raise MathloraError(failure_message(summary, args.output) + "; --retry-failed asks them again")

    return stage_command(args, lambda cfg: label_file(
        cfg.label, runtime_from(cfg) if cfg.label.judge == "local" else None, args.input, args.output,
        base_model=cfg.model, progress=show_progress(args)), title="label", show=show)
