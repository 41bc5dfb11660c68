"""``mathlora predict``: greedy completions of a math test set with the training template.

Input lines ``{"id", "problem", "solution"?, "type"?}``; output lines
``{"id", "prompt", "completion", "answer", "type"?, "gold"?, "generated_tokens", "stopped"}`` where ``answer``
is the extracted final answer (``mathlora.arith.answers``) and ``gold`` the reference solution.
"""

from __future__ import annotations

from mathlora.errors import MathloraError
from mathlora.arith.answers import extract_prediction_answer, resolve_scope
from mathlora.evaluate.backend import generate
from mathlora.evaluate.config import EvalConfig
from mathlora.run_dir.records import read_records, write_jsonl
from mathlora.modeling.runtime import Runtime
from mathlora.arith.families import family_of
from mathlora.modeling.templates import get_template, render_prompt


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
                    stopped: bool, calculator: tuple[int, int] | None = None, requests: int | None = None) -> dict:
    answer = extract_prediction_answer(completion, scope)
    line = {"id": str(rec["id"]), "prompt": prompt, "completion": completion,
            "answer": answer.text if answer is not None else None}
    family = rec.get("type") or family_of(str(rec.get("problem") or ""))  # the user's data has no type
    if family is not None:
        line["type"] = family
    if rec.get("solution") is not None:
        line["gold"] = rec["solution"]
    line.update(generated_tokens=generated_tokens, stopped=stopped)
    if calculator is not None:
        line.update(calculator_calls=calculator[0], calculator_refused=calculator[1])
    if requests is not None:  # a server's completion: how many requests it took
        line["requests"] = requests
    return line


def stop_strings(cfg: EvalConfig, template: str) -> tuple[str, ...]:
    """The strings that end a completion: ``eval.stop``, or the template's own (its next section)."""
    return get_template(template).stop if cfg.stop is None else tuple(cfg.stop)


def predict_file(cfg: EvalConfig, runtime: Runtime | None, model: str, adapter: str | None, input_path, output_path,
                 *, template: str, progress: bool = True, solution_style: str = "answer",
                 calculator: bool | None = None, held=None) -> dict:
    """Generate a completion per problem and write prediction lines; returns a summary.

    The model runs on the runtime's device and dtype, or on a server (``eval.backend: openai``, no runtime).
    ``calculator`` (default ``cfg.calculator``) turns on calculator-assisted decoding; ``solution_style``
    resolves ``cfg.answer_scope: auto`` for the ``answer`` field. ``held``: a ``backend.HeldModel`` that
    keeps the loaded model for the caller's next prediction.
    """
    calculator = cfg.calculator if calculator is None else calculator
    scope = resolve_scope(cfg.answer_scope, solution_style)
    stop = stop_strings(cfg, template)
    records = read_problems(input_path)
    prompts = [render_prompt(template, r["problem"]) for r in records]
    out = generate(cfg, runtime, model, adapter, prompts, max_new_tokens=cfg.max_new_tokens, calculator=calculator,
                   progress=progress, desc="predict", stop=stop, held=held)
    gens, server = out.generations, (out.source if out.remote else {})
    write_jsonl(output_path, ({**prediction_line(r, p, g.completion, scope=scope,
                                                 generated_tokens=g.generated_tokens, stopped=g.stopped,
                                                 calculator=(g.calculator_calls, g.calculator_refused)
                                                 if calculator else None, requests=g.requests), **server}
                              | ({"skipped": g.skipped} if g.skipped else {})
                              | ({"prompt_truncated": True} if g.prompt_truncated else {})
                              for r, p, g in zip(records, prompts, gens)))
    tokens = sum(g.generated_tokens for g in gens)
    summary = {
        "count": len(records), "generated_tokens": tokens, "seconds": round(out.seconds, 3),
        "tokens_per_s": round(tokens / out.seconds, 2) if out.seconds > 0 else 0.0,
        "load_seconds": round(out.load_seconds, 3), "stopped": sum(g.stopped for g in gens), "stop": list(stop),
        "skipped_prompt_too_long": sum(g.skipped is not None for g in gens),
        "prompts_truncated": sum(g.prompt_truncated for g in gens),
        "calculator": calculator,
        **({"calculator_calls": sum(g.calculator_calls for g in gens),
            "calculator_refused": sum(g.calculator_refused for g in gens)} if calculator else {}),
        **({"requests": sum(g.requests or 0 for g in gens)} if out.remote else {}),
        "model": model, "adapter": adapter, "output": str(output_path),
    }
    if out.remote:  # the server's name for the model, and where it runs
        return {**summary, "concurrency": cfg.endpoint.concurrency, "device": f"openai {cfg.endpoint.base_url}", "dtype": "server",
                "model": server["server_model"], "adapter": None, **server}
    return {**summary, **out.source}
