"""``mathlora predict``: greedy completions of a math test set with the training template.

Input lines ``{"id", "problem", "solution"?, "type"?}``; output lines
``{"id", "prompt", "completion", "answer", "type"?, "gold"?, "generated_tokens", "stopped"}`` where ``answer``
is the extracted final answer (``mathlora.evaluate.answers``) and ``gold`` the reference solution.
"""

from __future__ import annotations

import sys
import time

from mathlora.errors import MathloraError
from mathlora.evaluate.answers import extract_prediction_answer, resolve_scope
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.generation import generate_greedy, load_inference_model
from mathlora.evaluate.memory import resolve_batch_size
from mathlora.records import read_records, write_jsonl
from mathlora.runtime import Runtime
from mathlora.templates import get_template, render_prompt


def read_problems(input_path) -> list[dict]:
    records = read_records(input_path, "test set")
    if not records:
        raise MathloraError(f"test set {input_path} is empty")
    seen: set[str] = set()
    for n, rec in enumerate(records, 1):
        for key in ("id", "problem"):
            if key not in rec:
                raise MathloraError(f"test set {input_path}: record {n} has no {key!r} "
                                    f"(expected lines of {{\"id\", \"problem\", \"solution\"}})")
        if not isinstance(rec["problem"], str):
            raise MathloraError(f"test set {input_path}: record {n}: 'problem' must be a string")
        rec_id = str(rec["id"])
        if rec_id in seen:
            raise MathloraError(f"test set {input_path}: duplicate id {rec_id!r}")
        seen.add(rec_id)
    return records


def prediction_line(rec: dict, prompt: str, completion: str, *, scope: str, generated_tokens: int,
                    stopped: bool, calculator: tuple[int, int] | None = None) -> dict:
    answer = extract_prediction_answer(completion, scope)
    line = {"id": str(rec["id"]), "prompt": prompt, "completion": completion,
            "answer": answer.text if answer is not None else None}
    if rec.get("type") is not None:
        line["type"] = rec["type"]
    if rec.get("solution") is not None:
        line["gold"] = rec["solution"]
    line.update(generated_tokens=generated_tokens, stopped=stopped)
    if calculator is not None:
        line.update(calculator_calls=calculator[0], calculator_refused=calculator[1])
    return line


def predict_file(cfg: EvalConfig, runtime: Runtime | None, model: str, adapter: str | None, input_path, output_path,
                 *, template: str, progress: bool = True, solution_style: str = "answer",
                 calculator: bool | None = None) -> dict:
    """Generate a completion per problem and write prediction lines; returns a summary.

    The model runs on the runtime's device and dtype (None: ``Runtime.resolve()``).
    ``calculator`` (default ``cfg.calculator``) turns on calculator-assisted decoding; ``solution_style``
    resolves ``cfg.answer_scope: auto`` for the ``answer`` field.
    """
    calculator = cfg.calculator if calculator is None else calculator
    scope = resolve_scope(cfg.answer_scope, solution_style)
    get_template(template)
    records = read_problems(input_path)
    prompts = [render_prompt(template, r["problem"]) for r in records]
    if cfg.backend == "openai":
        if calculator:  # the calculator forces tokens while decoding: only local generation can
            print("warning: eval.calculator is not applied with eval.backend=openai (the server decodes alone); "
                  "use eval.backend=local for calculator-assisted predictions", file=sys.stderr)
        return _predict_remote(model, adapter, records, prompts, output_path, cfg=cfg, scope=scope,
                               progress=progress)
    start = time.perf_counter()
    lm, tokenizer = load_inference_model(model, adapter, runtime, merge=cfg.merge_adapter)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    batch_size = resolve_batch_size(cfg.batch_size, lm, max_length=cfg.max_length, prompts=len(prompts))
    gens = generate_greedy(lm, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, max_length=cfg.max_length,
                           batch_size=batch_size, progress=progress, desc="predict", calculator=calculator,
                           long_prompts=cfg.long_prompts, batch_tokens=cfg.batch_tokens)
    seconds = time.perf_counter() - start
    write_jsonl(output_path, (prediction_line(r, p, g.completion, scope=scope,
                                              generated_tokens=g.generated_tokens, stopped=g.stopped,
                                              calculator=(g.calculator_calls, g.calculator_refused)
                                              if calculator else None)
                              | ({"skipped": g.skipped} if g.skipped else {})
                              | ({"prompt_truncated": True} if g.prompt_truncated else {})
                              for r, p, g in zip(records, prompts, gens)))
    tokens = sum(g.generated_tokens for g in gens)
    return {
        "count": len(records), "generated_tokens": tokens, "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else 0.0,
        "load_seconds": round(load_seconds, 3), "stopped_at_eos": sum(g.stopped for g in gens),
        "skipped_prompt_too_long": sum(g.skipped is not None for g in gens),
        "prompts_truncated": sum(g.prompt_truncated for g in gens),
        "calculator": calculator,
        **({"calculator_calls": sum(g.calculator_calls for g in gens),
            "calculator_refused": sum(g.calculator_refused for g in gens)} if calculator else {}),
        "batch_size": batch_size, "device": str(next(lm.parameters()).device),
        "dtype": str(next(lm.parameters()).dtype).replace("torch.", ""),
        "model": model, "adapter": adapter, "output": str(output_path),
    }


def _predict_remote(model: str, adapter, records: list[dict], prompts: list[str], output_path, *, cfg: EvalConfig,
                    scope: str, progress: bool) -> dict:
    """``eval.backend: openai``: the same prediction lines, generated by a completions server; each line
    records the server and the served model."""
    from mathlora.evaluate.remote import remote_generate, require_no_adapter, server_info

    require_no_adapter(adapter)
    info = server_info(cfg, model)
    start = time.perf_counter()
    gens = remote_generate(cfg, prompts, fallback_model=model, max_new_tokens=cfg.max_new_tokens,
                           progress=progress, desc="predict")
    seconds = time.perf_counter() - start
    write_jsonl(output_path, ({**prediction_line(r, p, g.completion, scope=scope,
                                                 generated_tokens=g.generated_tokens, stopped=g.stopped), **info}
                              for r, p, g in zip(records, prompts, gens)))
    tokens = sum(g.generated_tokens for g in gens)
    return {
        "count": len(records), "generated_tokens": tokens, "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else 0.0, "load_seconds": 0.0,
        "stopped_at_eos": sum(g.stopped for g in gens), "skipped_prompt_too_long": 0,
        "calculator": False, "concurrency": cfg.concurrency, "device": f"openai {cfg.base_url}", "dtype": "server",
        "model": info["server_model"], "adapter": None, "output": str(output_path), **info,
    }
