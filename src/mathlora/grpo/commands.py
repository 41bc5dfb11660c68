"""``mathlora grpo``: the grpo stage on its own (TRL's GRPOTrainer from the SFT adapter, the grader as reward)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mathlora.app.cliargs import (add_config_args, add_output, add_run, add_runtime_args, config_from_args, flag,
                                  option, run_config_from_args, runtime_from, show_progress, stage_command)
from mathlora.grpo.config import LOSS_TYPES
from mathlora.run_dir.layout import RunLayout


def register(subparsers) -> None:
    p = subparsers.add_parser("grpo", help="GRPO after SFT: TRL's GRPOTrainer continues the adapter, rewarded by "
                                           "the grader (pip install 'mathlora[grpo]')",
                              description="Continue the SFT adapter with GRPO (TRL's GRPOTrainer): the training "
                                          "problems in the run's template, sampled completions rewarded by "
                                          "mathlora's grader (1 for a right final answer within eval.atol/rtol, "
                                          "plus grpo.format_reward for a readable one). Writes checkpoints, the "
                                          "adapter, merged/, metrics.jsonl and summary.json; resumes an "
                                          "interrupted run, skips a finished one.")
    add_config_args(p)
    add_run(p, help="run folder whose normalized.jsonl and train/adapter/ to read and grpo/ to write, with its "
                    "own config.yaml (default: the config's run_dir)")
    p.add_argument("--problems", default=None, help="training problems with gold solutions (default: "
                                                    "<run>/normalized.jsonl)")
    p.add_argument("--adapter", default=None, help="the SFT adapter to continue (default: <run>/train/adapter)")
    add_output(p, "GRPO output folder (default: <run>/grpo; the merged model goes to its merged/)", required=False)
    flag(p, "--resume", default=True, help="continue from the newest checkpoint of the same settings; --no-resume "
                                           "starts the folder over (default: on)")
    flag(p, "--merge", default=True, help="also write base + GRPO adapter as a plain transformers folder in "
                                          "OUTPUT/merged (default: on)")
    add_runtime_args(p)
    option(p, "--steps", field="grpo.steps", type=int, help="optimizer steps")
    option(p, "--num-generations", field="grpo.num_generations", type=int, help="completions sampled per problem")
    option(p, "--prompts-per-step", field="grpo.prompts_per_step", type=int, help="problems per step")
    option(p, "--max-completion-length", field="grpo.max_completion_length", type=int,
           help="tokens per completion at most")
    option(p, "--lr", field="grpo.lr", type=float, help="learning rate")
    option(p, "--beta", field="grpo.beta", type=float, help="KL penalty to the SFT adapter (0: none)")
    option(p, "--loss-type", field="grpo.loss_type", choices=list(LOSS_TYPES), help="TRL's loss aggregation")
    p.set_defaults(func=run_grpo)


def run_grpo(args: argparse.Namespace) -> int:
    run = getattr(args, "cfg:run_dir", None)
    if run is not None and RunLayout(run).config.is_file():  # the run's own config: its model, template, style
        run_config_from_args(args, run)  # (sets --config to it: stage_command reads the same config)
    layout = RunLayout(config_from_args(args).run_dir)
    output = Path(args.output) if args.output else layout.grpo

    def call(cfg) -> dict:
        from mathlora.grpo.trainer import grpo_train

        return grpo_train(cfg.grpo, runtime_from(cfg), args.problems or layout.normalized,
                          args.adapter or layout.train_adapter, output, model=cfg.model, template=cfg.template,
                          seed=cfg.seed, solution_style=cfg.solution_style, atol=cfg.eval.atol, rtol=cfg.eval.rtol,
                          answer_scope=cfg.eval.answer_scope, merged_dir=output / "merged" if args.merge else None,
                          resume=args.resume, progress=show_progress(args))

    def show(summary: dict, cfg) -> None:
        if summary.get("skipped"):
            print(f"grpo: {output} holds this finished run ({summary['steps']} steps); nothing to do")
            return
        print(f"grpo: {summary['steps']} steps, {summary['completions_per_step']} completions per step; reward "
              f"{summary['reward_first']} -> {summary['reward_last']}, accuracy {summary['accuracy_first']} -> "
              f"{summary['accuracy_last']} (first and last quarter); {summary['seconds_per_step']} s per step, "
              f"{summary['generation_share']} of it generating; adapter {output / 'adapter'}")
        events = {k: v for k, v in summary["reward_events"].items() if k not in ("graded", "seconds") and v}
        if events:
            print(f"grpo: completions scored 0 because grading could not run: {events}")
        print(f"grpo: {summary['calculator_note']}")

    return stage_command(args, call, title="grpo", show=show, output=output)
