"""The label stage: every record gets a difficulty 0..5 from a judge, through a resumable cache.

``label_file`` reads the ingest output, asks the judge only about records the cache has no verdict
for (each unique id once), commits verdicts as they arrive, then writes the labeled records in input
order (atomically) and ``label_failures.jsonl`` (id, last error, attempts) next to the output.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.label.cache import Judgement, LabelCache
from mathlora.label.config import LabelConfig
from mathlora.label.heuristic import VERSION as HEURISTIC_VERSION
from mathlora.label.heuristic import heuristic_difficulty
from mathlora.label.openai_judge import scrub
from mathlora.label.prompt import load_prompt
from mathlora.run_dir.records import read_records, write_jsonl
from mathlora.modeling.runtime import Runtime
from mathlora.label.local import load_local_judge
from mathlora.label.openai_judge import OpenAIJudge

FAILURES_FILE = "label_failures.jsonl"
CACHE_FILE = "label_cache.sqlite"


def failure_message(summary: dict, output_path) -> str:
    """The one-line error of a label run that left records without a verdict."""
    return (f"label: {summary['failed']} of {summary['unique']} records failed "
            f"(e.g. {summary['first_error']}); {summary['written']} labeled records written to {output_path}, "
            f"failures listed in {summary['failures_file']}")


def validate_records(records: list[dict], source: str) -> None:
    """Every record needs a non-empty string ``id`` and ``problem`` text (one clear error otherwise)."""
    for n, rec in enumerate(records, 1):
        rid = rec.get("id")
        if not isinstance(rid, str) or not rid.strip():
            raise MathloraError(f"{source}: record {n} has no id (run mathlora ingest first)")
        problem = rec.get("problem")
        if not isinstance(problem, str) or not problem.strip():
            raise MathloraError(f"{source}: record {n} (id {rid}) has no problem text")
        solution = rec.get("solution")
        if solution is not None and not isinstance(solution, str):
            raise MathloraError(f"{source}: record {n} (id {rid}) has a solution that is not text")


def judge_source(cfg: LabelConfig, base_model: str) -> str:
    """What ``difficulty_source`` says: ``openai:<model>``, ``local:<spec>`` or ``heuristic:v2``."""
    if cfg.judge == "heuristic":
        return f"heuristic:{HEURISTIC_VERSION}"
    if cfg.judge == "openai":
        if not cfg.model:
            raise MathloraError("the openai judge needs a model name: --judge-model NAME (label.model)")
        return f"openai:{cfg.model}"
    return f"local:{cfg.model or base_model}"


def judge_fingerprint(source: str, prompt_version: str) -> str:
    """The cache key of a judge: judge kind, model and rubric version (the heuristic has no prompt)."""
    return source if source.startswith("heuristic:") else f"{source}|{prompt_version}"


def default_cache_path(output_path: str | os.PathLike) -> Path:
    return Path(output_path).with_name(CACHE_FILE)


def _run_judge(cfg: LabelConfig, runtime: Runtime | None, base_model: str, pending: list[dict], store,
               progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(pending), desc=f"label ({cfg.judge})", unit="rec", disable=not progress or not pending,
               dynamic_ncols=True)

    def on_batch(verdicts: list[Judgement]) -> None:
        store(verdicts)
        bar.update(len(verdicts))

    try:
        if cfg.judge == "heuristic":
            for start in range(0, len(pending), 1000):
                on_batch([Judgement(r["id"], difficulty=heuristic_difficulty(r["problem"], r.get("solution") or ""))
                          for r in pending[start:start + 1000]])
        elif cfg.judge == "local":
            judge = load_local_judge(cfg.model or base_model, load_prompt(cfg.prompt_file), runtime,
                                     batch_size=cfg.batch_size)
            judge.judge(pending, on_batch)
        else:
            end = cfg.endpoint
            judge = OpenAIJudge(
                base_url=end.base_url, model=cfg.model or "", api_key=end.api_key(),
                prompt=load_prompt(cfg.prompt_file), concurrency=end.concurrency, timeout=end.timeout,
                policy=end.policy(),
                max_tokens=cfg.max_tokens, logprobs=cfg.logprobs,
                max_consecutive_failures=cfg.max_consecutive_failures)
            judge.judge(pending, lambda v: on_batch([v]))
    finally:
        bar.close()


def label_file(cfg: LabelConfig, runtime: Runtime | None, input_path, output_path, *, base_model: str,
               progress: bool = True) -> dict:
    """Label ``input_path`` into ``output_path``; returns labeled, from_cache, failed, distribution, seconds.

    ``runtime`` places the local judge's model (None: ``Runtime.resolve()``); the other judges need none."""
    start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.is_dir():
        raise MathloraError(f"output {output_path} is a directory; expected a file path")
    records = read_records(input_path)
    validate_records(records, str(input_path))
    source = judge_source(cfg, base_model)
    prompt_version = load_prompt(cfg.prompt_file).version if cfg.judge != "heuristic" else ""
    fingerprint = judge_fingerprint(source, prompt_version)
    cache_path = Path(cfg.cache) if cfg.cache else default_cache_path(output_path)

    with LabelCache(cache_path, fingerprint) as cache:
        cached = cache.labels()
        earlier_failures = cache.failures()
        unique: dict[str, dict] = {}
        for rec in records:
            unique.setdefault(rec["id"], rec)
        pending = [rec for rid, rec in unique.items()
                   if rid not in cached and (cfg.retry_failed or rid not in earlier_failures)]
        from_cache = sum(1 for rid in unique if rid in cached)
        _run_judge(cfg, runtime, base_model, pending, cache.put, progress)
        labels = cache.labels()
        failures = cache.failures()

    out, distribution = [], Counter()
    for rec in records:
        verdict = labels.get(rec["id"])
        if verdict is None:
            continue
        level, probs = verdict
        row = {k: v for k, v in rec.items() if k not in ("difficulty", "difficulty_source", "difficulty_probs")}
        row["difficulty"] = level
        row["difficulty_source"] = source
        if probs is not None:
            row["difficulty_probs"] = probs
        out.append(row)
        distribution[level] += 1
    secret = os.environ.get(cfg.endpoint.api_key_env) if cfg.judge == "openai" else None
    failed_rows = [{"id": rid, "error": scrub(failures[rid][0], secret), "attempts": failures[rid][1]}
                   for rid in unique if rid in failures and rid not in labels]
    write_jsonl(output_path.with_name(FAILURES_FILE), failed_rows)
    write_jsonl(output_path, out)
    return {
        "records": len(records),
        "written": len(out),
        "labeled": sum(1 for rec in pending if rec["id"] in labels),
        "from_cache": from_cache,
        "failed": len(failed_rows),
        "first_error": failed_rows[0]["error"] if failed_rows else None,
        "unique": len(unique),
        "distribution": {level: distribution.get(level, 0) for level in range(6)},
        "source": source,
        "cache": str(cache_path),
        "failures_file": str(output_path.with_name(FAILURES_FILE)),
        "seconds": round(time.perf_counter() - start, 3),
    }
