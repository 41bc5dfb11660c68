"""``mathlora predict``: greedy completions of a math test set with the training template.

Input lines ``{"id", "problem", "solution"?, "type"?}``; output lines
``{"id", "prompt", "completion", "answer", "type"?, "gold"?, "generated_tokens", "stopped"}`` where ``answer``
is the extracted final answer (``mathlora.evaluate.answers``) and ``gold`` the reference solution.
"""

from __future__ import annotations

import time

from mathlora.errors import MathloraError
from mathlora.evaluate.answers import extract_prediction_answer
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.generation import generate_greedy, load_inference_model
from mathlora.records import read_records, write_jsonl
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
                    stopped: bool) -> dict:
    answer = extract_prediction_answer(completion, scope)
    line = {"id": str(rec["id"]), "prompt": prompt, "completion": completion,
            "answer": answer.text if answer is not None else None}
    if rec.get("type") is not None:
        line["type"] = rec["type"]
    if rec.get("solution") is not None:
        line["gold"] = rec["solution"]
    line.update(generated_tokens=generated_tokens, stopped=stopped)
    return line


def predict_file(model: str, adapter: str | None, input_path, output_path, *, template: str, cfg: EvalConfig,
                 precision: str = "auto", progress: bool = True) -> dict:
    """Generate a completion per problem and write prediction lines; returns a summary.

    ``precision`` ``auto`` defers to ``cfg.precision`` (itself ``auto``: bf16 on GPU, fp32 on CPU).
    """
    get_template(template)
    records = read_problems(input_path)
    prompts = [render_prompt(template, r["problem"]) for r in records]
    start = time.perf_counter()
    lm, tokenizer = load_inference_model(model, adapter, precision=precision if precision != "auto" else cfg.precision,
                                         merge=cfg.merge_adapter)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    gens = generate_greedy(lm, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, max_length=cfg.max_length,
                           batch_size=cfg.batch_size, progress=progress, desc="predict",
                           long_prompts=cfg.long_prompts, batch_tokens=cfg.batch_tokens)
    seconds = time.perf_counter() - start
    write_jsonl(output_path, (prediction_line(r, p, g.completion, scope=cfg.answer_scope,
                                              generated_tokens=g.generated_tokens, stopped=g.stopped)
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
        "batch_size": cfg.batch_size, "device": str(next(lm.parameters()).device),
        "dtype": str(next(lm.parameters()).dtype).replace("torch.", ""),
        "model": model, "adapter": adapter, "output": str(output_path),
    }
