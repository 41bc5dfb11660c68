"""CLI: ``mathlora predict`` and ``mathlora eval math|squad|params``. Heavy imports happen inside commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.app.cliargs import (add_config_args, add_input, add_model, add_output, add_runtime_args, config_from_args,
                              deprecated, guard_command_outputs, int_or_auto, on_off, option, runtime_from,
                              show_progress, stage_command)
from mathlora.errors import MathloraError
from mathlora.evaluate.backend import BACKENDS, backend_of
from mathlora.evaluate.predict import predict_file
from mathlora.evaluate.math_grading import grade_file
from mathlora.evaluate.math_eval import evaluate_math
from mathlora.app.cliargs import command_group, run_config_from_args
from mathlora.evaluate.math_eval import evaluate_checkpoints, math_baselines
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.guards import RunLock
from mathlora.evaluate.squad import dump_samples, evaluate_squad
from mathlora.run_dir.guards import lock_for_output
from mathlora.evaluate.params import parameter_report
from mathlora.run_dir.atomic import write_json_atomic


def _model_args(p: argparse.ArgumentParser, *, generation: bool = True) -> None:
    add_model(p)
    p.add_argument("--adapter", default=None, help="peft LoRA adapter folder (default: the base model alone)")
    if generation:
        option(p, "--batch-size", field="eval.batch_size", type=int_or_auto,
                help="prompts per batch, or auto (as many as fit on the GPU)")
        add_runtime_args(p)
        option(p, "--backend", field="eval.backend", choices=list(BACKENDS),
               help="local (this process) or openai (an OpenAI-compatible completions server, e.g. vLLM)")
        option(p, "--base-url", field="eval.endpoint.base_url", help="openai backend: server URL (default http://127.0.0.1:8000/v1)")
        add_served_model(p)
        option(p, "--concurrency", field="eval.endpoint.concurrency", type=int, help="openai backend: requests in flight")


def add_served_model(p: argparse.ArgumentParser) -> None:
    """``--served-model NAME``: the name an OpenAI-compatible server serves the model (or LoRA) under."""
    option(p, "--served-model", field="eval.model", metavar="NAME",
           help="openai backend: the name the server serves the model or LoRA under (vLLM's --served-model-name "
                "or --lora-modules NAME=DIR; default: --model)")
    deprecated(p, "--server-model", new="--served-model", dest="cfg:eval.model")


def _scope(p: argparse.ArgumentParser) -> None:
    option(p, "--scope", field="eval.answer_scope", choices=["auto", "first_line", "full", "final"],
           help="where a completion's answer is read (auto: final for worked solutions, else first_line)")


def _decoding_args(p: argparse.ArgumentParser) -> None:
    """The math test set and what shapes a completion: template, lengths, the calculator, the trained style."""
    add_input(p, "JSON lines {id, problem, solution?, type?} (e.g. test_records.jsonl from ingest)")
    option(p, "--template", field="template", help="prompt template (default: the config's, alpaca)")
    option(p, "--max-new-tokens", field="eval.max_new_tokens", type=int, help="new tokens at most")
    option(p, "--max-length", field="eval.max_length", type=int, help="prompt + completion tokens at most")
    option(p, "--calculator", field="eval.calculator", action="store_true",
           help="calculator-assisted decoding: force the result of every <<expr= the model opens (eval model: "
                "scored with and without it); the demo config turns it on, --no-calculator off")
    option(p, "--solution-style", field="solution_style", choices=["answer", "steps", "calculator", "decomposed"],
           help="the style the model was trained on (picks where the answer is read when --scope is auto)")
    _scope(p)
    add_config_args(p)


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="greedy completions of a math test set (same template as training)",
                              description="Batched greedy generation: writes {id, prompt, completion, answer, "
                                          "type, gold} lines.")
    _model_args(p)
    _decoding_args(p)
    add_output(p, "prediction JSON lines to write")
    p.set_defaults(func=cmd_predict)

    ev, sub = command_group(subparsers, "eval",
                            help="score predictions: math accuracy, SQuAD retention, parameter ratio",
                            description="Evaluate: math accuracy of prediction lines (math) or of a model on a "
                                        "test set (model), SQuAD v1.1 retention (squad), the LoRA parameter "
                                        "ratio (params).")

    m = sub.add_parser("math", help="math accuracy from prediction lines (numeric comparison)",
                       description="Grade prediction lines against their gold answers (numeric, with --atol and "
                                   "--rtol), overall and per problem type; with --baseline, before -> after.")
    m.add_argument("--predictions", required=True, help="prediction lines written by 'mathlora predict'")
    m.add_argument("--gold", default=None, help="gold lines {id, solution, type?} (default: each line's 'gold')")
    m.add_argument("--baseline", default=None, help="predictions of another model on the same problems")
    add_output(m, "report JSON (default: <predictions stem>.math.json)", required=False)
    option(m, "--atol", field="eval.atol", type=float, help="absolute tolerance (default 1e-2)")
    option(m, "--rtol", field="eval.rtol", type=float, help="relative tolerance, added to --atol (default 1e-12; 1e-5 grades like numpy.isclose)")
    _scope(m)
    option(m, "--solution-style", field="solution_style", choices=["answer", "steps", "calculator", "decomposed"],
           help="the style the model was trained on (resolves --scope auto)")
    add_config_args(m)
    m.set_defaults(func=cmd_eval_math)

    mm = sub.add_parser("model", help="predict and grade a math test set into one folder (with and without the "
                                      "calculator when eval.calculator), as `mathlora run` does",
                        description="Predict a math test set with the model (and --adapter) and grade it into one "
                                    "folder: math_predictions.jsonl and math.json, plus math_nocalc_* without the "
                                    "calculator when it is on.")
    _model_args(mm)
    _decoding_args(mm)
    add_output(mm, "folder for math_predictions.jsonl and math.json (+ math_nocalc_*)")
    mm.add_argument("--baseline", default=None, help="another model's folder of the same kind: adds the comparison")
    mm.set_defaults(func=cmd_eval_model)

    ck = sub.add_parser("checkpoints", help="score every training checkpoint of a run folder (the eval_checkpoints "
                                            "stage)",
                        description="Score each train/checkpoints/step-N/ of a run folder on its held-out problems "
                                    "like the tuned model, into eval/checkpoints/step-N/ and eval/checkpoints/"
                                    "scores.json (compared with eval/base/ when it is there). The run's config.yaml "
                                    "gives the model, the template and the eval settings.")
    ck.add_argument("--run", required=True, metavar="DIR", help="run folder (config.yaml, train/checkpoints/)")
    add_runtime_args(ck)
    add_config_args(ck, positional=False)
    ck.set_defaults(func=cmd_eval_checkpoints)

    s = sub.add_parser("squad", help="SQuAD v1.1 F1/EM (retention check against a baseline result)",
                       description="Score a model (or --predictions made elsewhere) on SQuAD v1.1: official F1/EM; "
                                   "with --baseline, the retention verdict (keep * base).")
    _model_args(s)
    s.add_argument("--data", default=None, help="SQuAD v1.1 JSON (default: the config's data.squad)")
    add_output(s, "result JSON to write (needed unless --dump-samples)", required=False)
    option(s, "--limit", field="eval.squad_limit", type=int, help="score the first N samples only")
    option(s, "--all-questions", field="eval.squad_all_questions", action="store_true",
           help="every question with all its answers (default: first question and answer per paragraph)")
    option(s, "--keep", field="eval.keep", type=float, help="retention threshold (default 0.9)")
    s.add_argument("--baseline", default=None, help="a previous result JSON (the base model's): adds the verdict")
    s.add_argument("--predictions", default=None,
                   help="score {id, prediction} lines made elsewhere instead of generating")
    s.add_argument("--save-predictions", default=None,
                   help="where generated predictions go (default: <output stem>.predictions.jsonl)")
    s.add_argument("--dump-samples", default=None,
                   help="write the samples {id, prompt, question, answers} to this file and stop")
    add_config_args(s)
    s.set_defaults(func=cmd_eval_squad)

    pr = sub.add_parser("params", help="trainable/total parameter ratio of an adapter",
                        description="Count an adapter's trainable parameters against the base model's, as the "
                                    "contest counts them (trainable / base) and as peft does; on the meta device.")
    _model_args(pr, generation=False)
    add_output(pr, "also write the report JSON here", required=False)
    add_config_args(pr)
    pr.set_defaults(func=cmd_eval_params)


def print_settings(command: str, args, cfg) -> None:
    """The settings a reader of the results must know, before the work starts (the calculator above all: the
    demo config turns it on)."""
    where = backend_of(cfg.eval).where(cfg.eval)
    print(f"{command}: calculator {on_off(cfg.eval.calculator)}, solution_style {cfg.solution_style}, template "
          f"{cfg.template}, backend {where} (config: {args.config_layers})", flush=True)


def cmd_predict(args) -> int:
    def call(cfg) -> dict:
        print_settings("predict", args, cfg)
        return predict_file(cfg.eval, runtime_from(cfg), cfg.model, args.adapter, args.input, args.output,
                            template=cfg.template, progress=show_progress(args), solution_style=cfg.solution_style)

    def show(summary: dict, cfg) -> None:
        calc = (f", calculator {summary['calculator_calls']} calls / {summary['calculator_refused']} refused"
                if summary["calculator"] else "")
        print(f"predict: {summary['count']} problems, {summary['generated_tokens']} tokens in {summary['seconds']} s "
              f"({summary['tokens_per_s']} tokens/s, {summary['device']} {summary['dtype']}, "
              f"{summary['stopped']} stopped at EOS or a stop string{calc}) -> {summary['output']}")

    return stage_command(args, call, title="predict", show=show)


def cmd_eval_math(args) -> int:
    output = args.output or str(Path(args.predictions).with_name(Path(args.predictions).stem + ".math.json"))
    return stage_command(args, lambda cfg: grade_file(cfg.eval, args.predictions, output, gold_path=args.gold,
                                                      baseline_path=args.baseline, solution_style=cfg.solution_style),
                         title="eval math", show=lambda r, cfg: _show_math(r, output), output=output)


def _show_math(r: dict, output: str) -> None:
    print(f"math accuracy {r['accuracy']:.4f} ({r['correct']}/{r['count']}, {r['unparsable']} unparsable"
          + (f", {r['gold_unparsable']} gold unparsable, left out" if r["gold_unparsable"] else "") + ")")
    comparison = r.get("comparison")
    for t, v in r["per_type"].items():
        change = f"  (before {comparison['per_type'][t]['before']:.4f}, {comparison['per_type'][t]['change']:+.4f})" \
            if comparison else ""
        print(f"  {t:<24} {v['accuracy']:.4f} ({v['correct']}/{v['count']}){change}")
    if comparison:
        print(f"before {comparison['before']:.4f} -> after {comparison['after']:.4f} "
              f"({comparison['change']:+.4f}; fixed {comparison['fixed']}, broken {comparison['broken']})")
    print(f"report -> {output}")


def cmd_eval_model(args) -> int:
    def call(cfg) -> dict:
        print_settings("eval model", args, cfg)
        return evaluate_math(cfg.eval, runtime_from(cfg), cfg.model, args.adapter, args.input, args.output,
                             baseline_dir=args.baseline, template=cfg.template, solution_style=cfg.solution_style,
                             progress=show_progress(args))

    def show(counts: dict, cfg) -> None:
        without = (f", {counts['accuracy_nocalc']:.4f} without the calculator" if "accuracy_nocalc" in counts
                   else "")
        print(f"math accuracy {counts['accuracy']:.4f} ({counts['correct']}/{counts['count']}{without}) -> "
              f"{args.output}")

    return stage_command(args, call, title="eval model", show=show, output=Path(args.output) / "math.json")


def cmd_eval_checkpoints(args) -> int:
    cfg = run_config_from_args(args, args.run)
    lay = RunLayout(args.run)
    base = lay.eval("base").root
    baseline = base if all(p.is_file() for p in math_baselines(base, cfg.eval.calculator).values()) else None
    with RunLock(lay.root):
        counts = evaluate_checkpoints(cfg.eval, runtime_from(cfg), cfg.model, lay.train_checkpoints,
                                      lay.test_records, lay.eval_checkpoints, baseline_dir=baseline,
                                      template=cfg.template, solution_style=cfg.solution_style,
                                      progress=show_progress(args))
    best = (f"; best step {counts['best_step']}: {counts['best_accuracy']:.4f}" if "best_step" in counts else "")
    print(f"scored {counts['scored']} checkpoint(s), skipped {counts['skipped']}{best} -> {lay.checkpoint_scores}")
    return 0


def cmd_eval_squad(args) -> int:
    cfg = config_from_args(args)
    data = args.data or cfg.data.squad
    if data is None:
        raise MathloraError("give --data SQUAD.json (or set data.squad in the config)")
    if args.dump_samples:
        n = dump_samples(data, args.dump_samples, all_questions=cfg.eval.squad_all_questions,
                         limit=cfg.eval.squad_limit)
        print(f"squad: wrote {n} samples -> {args.dump_samples}")
        return 0
    if args.output is None:
        raise MathloraError("give --output RESULT.json (where the SQuAD scores go)")
    guard_command_outputs(args, args.output, ("--save-predictions", args.save_predictions))

    runtime = None if args.predictions else runtime_from(cfg)
    with lock_for_output(args.output):
        r = evaluate_squad(cfg.eval, runtime, None if args.predictions else cfg.model, args.adapter, data,
                           args.output, predictions_out=args.save_predictions, progress=show_progress(args),
                           baseline_path=args.baseline, predictions_in=args.predictions)
    print(f"squad: F1 {r['f1']:.2f}  EM {r['em']:.2f}  over {r['count']} samples ({r['mode']})")
    verdict = r.get("retention")
    if verdict:
        print(f"retention (keep {verdict['keep']}): F1 {verdict['f1']:.2f} vs base {verdict['base_f1']:.2f}, "
              f"EM {verdict['em']:.2f} vs base {verdict['base_em']:.2f}: "
              + ("not measurable (base F1 is 0)" if verdict["passed"] is None else
                 "PASS" if verdict["passed"] else "FAIL"))
    print(f"result -> {args.output}; predictions -> {r['predictions']}")
    return 0 if not verdict or verdict["passed"] is not False else 1


def cmd_eval_params(args) -> int:
    cfg = config_from_args(args)
    if args.adapter is None:
        raise MathloraError("give --adapter DIR (a peft LoRA adapter folder)")
    r = parameter_report(cfg.model, args.adapter)
    print(f"trainable {r['trainable']}  base {r['base']}  ratio {r['ratio']:.6f} (contest: trainable/base)  "
          f"base+adapter {r['total']}  ratio {r['ratio_peft']:.6f} (peft)\n{r['line']}")
    if args.output:
        guard_command_outputs(args, args.output)
        write_json_atomic(args.output, r)
        print(f"report -> {args.output}")
    return 0

