"""CLI: ``mathlora ask`` (one question, or many, from the shell) and ``mathlora serve`` (an OpenAI-compatible
endpoint). Heavy imports happen inside the commands.

Which model a user means: the base model of the config, an ``--adapter``, or a finished run folder
(``--run DIR``: its ``config.yaml`` gives the model, the prompt template and the solution style,
``train/adapter`` the adapter; ``--config`` beside it is refused, ``--set`` applies). The calculator is on by
default for a ``calculator``-style model (the run's, or the config's ``solution_style``), off otherwise;
``--calculator`` / ``--no-calculator`` decide instead.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from mathlora.cliargs import add_config_args, add_runtime_args, flag, option
from mathlora.config import Config
from mathlora.errors import MathloraError


@dataclass(frozen=True)
class Target:
    cfg: Config               # the config in force (the run's when --run)
    model: str
    adapter: str | None
    template: str
    solution_style: str
    calculator: bool
    name: str                 # what the model is called (the run folder's name, the adapter's, the model's)


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", default=None, metavar="DIR", help="a finished run folder: its model, template, "
                                                              "solution style and train/adapter")
    p.add_argument("--model", "-m", default=None, help="base model (default: the run's or the config's)")
    p.add_argument("--adapter", default=None, help="peft LoRA adapter folder (default: the base model alone; "
                                                  "with --run: the run's train/adapter)")
    p.add_argument("--calculator", action=argparse.BooleanOptionalAction, default=None,
                   help="calculator-assisted decoding (default: on for calculator-style models; --no-calculator: "
                        "decode plainly)")
    p.add_argument("--template", default=None, help="prompt template (default: the run's or the config's)")
    add_config_args(p, positional=False)  # with --run, the run's config.yaml is the config


def resolve_target(args: argparse.Namespace, *, need_adapter: bool | None = None) -> Target:
    """The target of ``args`` (see the module docstring); one-line errors for a bad run folder or adapter.
    ``need_adapter`` False: a run's adapter is not looked for (a server elsewhere applies it); None: looked for
    unless ``eval.backend`` is ``openai``."""
    from mathlora.adapters import require_adapter_dir
    from mathlora.cliargs import config_from_args
    from mathlora.run_dir.layout import RunLayout
    from mathlora.templates import get_template

    adapter = args.adapter
    layout = None
    if args.run is not None:
        root = Path(args.run)
        if not root.is_dir():
            raise MathloraError(f"run folder not found: {root}")
        layout = RunLayout(root)
        if not layout.config.is_file():
            raise MathloraError(f"{root} is not a mathlora run folder (no config.yaml)")
        if args.config is not None and Path(args.config).resolve() != layout.config.resolve():  # never dropped silently
            raise MathloraError(f"--run reads the run's own config ({layout.config}), not --config {args.config}; "
                                "leave one out (a setting: --set KEY=VALUE)")
        args.config = str(layout.config)
    cfg = config_from_args(args)
    if args.model is not None:
        cfg = cfg.model_copy(update={"model": args.model})
    if need_adapter is None:
        need_adapter = cfg.eval.backend != "openai"
    if layout is not None and adapter is None and need_adapter:
        if not layout.train_adapter.exists():
            raise MathloraError(f"run {args.run} has no trained adapter yet ({layout.train_adapter}); finish it "
                                "with `mathlora run`, or give --adapter")
        adapter = str(layout.train_adapter)
    if adapter is not None and need_adapter:
        require_adapter_dir(adapter)
    template = args.template or cfg.template
    get_template(template)
    calculator = args.calculator if args.calculator is not None else cfg.solution_style == "calculator"
    name = (Path(args.run).resolve().name if args.run else Path(adapter).resolve().name if adapter else cfg.model)
    return Target(cfg, cfg.model, adapter, template, cfg.solution_style, calculator, name)


def register(sub) -> None:
    from mathlora.evaluate.commands import add_served_model

    a = sub.add_parser("ask", help="answer math problems from the shell (the base model, --adapter or --run)",
                       description="Prints the worked solution and the final answer of each problem: the "
                                   "arguments, the lines of --file, or the lines of standard input. The calculator "
                                   "is on by default for calculator-style models.")
    a.add_argument("problem", nargs="*", help="a problem, e.g. \"计算 1.5 + 2.25 等于多少？\"")
    a.add_argument("--file", default=None, help="problems, one a line (or JSON lines with \"problem\"); - = stdin")
    flag(a, "--json", help="one JSON object a problem instead of text")
    add_target_args(a)
    add_runtime_args(a)
    option(a, "--max-new-tokens", field="eval.max_new_tokens", type=int, help="new tokens at most")
    option(a, "--backend", field="eval.backend", choices=["local", "openai"],
           help="local (this process) or openai (a completions server that applies the adapter)")
    option(a, "--base-url", field="eval.endpoint.base_url", help="openai backend: server URL")
    add_served_model(a)
    a.set_defaults(func=cmd_ask)

    s = sub.add_parser("serve", help="an OpenAI-compatible endpoint for the model (calculator included)",
                       description="Serves /v1/completions, /v1/chat/completions and /v1/models: the local model "
                                   "with its adapter, or a proxy in front of an upstream OpenAI-compatible server "
                                   "(--upstream). Clients send only the problem; the template is applied here.")
    add_target_args(s)
    add_runtime_args(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    s.add_argument("--name", default=None, help="the model name clients use (default: the run's, the adapter's, "
                                                "the model's or the upstream's)")
    s.add_argument("--upstream", default=None, metavar="URL",
                   help="proxy mode: the upstream server's /v1 URL (e.g. vLLM with --enable-lora)")
    s.add_argument("--upstream-model", default=None, metavar="NAME", help="proxy mode: the upstream's model name")
    s.add_argument("--max-tokens-limit", type=int, default=1024, help="the most new tokens a request may ask for")
    s.add_argument("--max-prompt-chars", type=int, default=4000, help="the longest problem accepted, in characters")
    s.set_defaults(func=cmd_serve)


def read_problems(args) -> list[str]:
    """The problems to ask: the arguments, else ``--file``'s lines, else standard input's."""
    import json
    import sys
    from pathlib import Path

    if args.problem and args.file:
        raise MathloraError("give problems as arguments or with --file, not both")
    if args.problem:
        lines = args.problem
    elif args.file and args.file != "-":
        try:
            lines = Path(args.file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise MathloraError(f"cannot read {args.file}: {e}") from None
    elif args.file == "-" or not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    else:
        raise MathloraError("give a problem (mathlora ask \"计算 1.5 + 2.25 等于多少？\"), --file FILE, or lines on "
                            "standard input")
    problems = []
    for line in (x.strip() for x in lines):
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("problem"), str):
                line = record["problem"].strip()
        if line:
            problems.append(line)
    if not problems:
        raise MathloraError("no problem to ask (every line was empty)")
    return problems


def cmd_ask(args) -> int:
    import json

    from mathlora.cliargs import runtime_from
    from mathlora.evaluate.answers import extract_prediction_answer, resolve_scope
    from mathlora.evaluate.backend import generate
    from mathlora.templates import render_prompt

    import sys

    from mathlora.cliargs import on_off

    problems = read_problems(args)
    target = resolve_target(args)
    cfg = target.cfg
    print(f"ask: calculator {on_off(target.calculator)}, template {target.template}, model {target.name} "
          f"(config: {args.config_layers})", file=sys.stderr, flush=True)
    remote = cfg.eval.backend == "openai"
    out = generate(cfg.eval, None if remote else runtime_from(cfg), target.model, target.adapter,
                   [render_prompt(target.template, p) for p in problems], max_new_tokens=cfg.eval.max_new_tokens,
                   calculator=target.calculator, progress=False, desc="ask")
    scope = resolve_scope(cfg.eval.answer_scope, target.solution_style)
    for n, (problem, gen) in enumerate(zip(problems, out.generations)):
        found = extract_prediction_answer(gen.completion, scope)
        answer = found.text if found is not None else None
        if args.json:
            print(json.dumps({"problem": problem, "completion": gen.completion, "answer": answer,
                              "calculator_calls": gen.calculator_calls,
                              "calculator_refused": gen.calculator_refused}, ensure_ascii=False), flush=True)
            continue
        calc = (f"  [calculator: {gen.calculator_calls} call(s), {gen.calculator_refused} refused]"
                if target.calculator else "")
        if len(problems) > 1:
            print(("\n" if n else "") + f"Q: {problem}")
        print(gen.completion.strip() or (f"(skipped: {gen.skipped})" if gen.skipped else "(no text)"))
        print(f"answer: {answer if answer is not None else '(none found)'}{calc}", flush=True)
    return 0


def cmd_serve(args) -> int:
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise MathloraError(f"mathlora serve needs {' and '.join(missing)}: pip install 'mathlora[serve]'")
    from mathlora.cliargs import runtime_from
    from mathlora.evaluate.answers import resolve_scope
    from mathlora.serve.app import build_app
    from mathlora.serve.protocol import Limits
    from mathlora.serve.run import serve_app

    for flag, value in (("--max-tokens-limit", args.max_tokens_limit), ("--max-prompt-chars", args.max_prompt_chars)):
        if value < 1:
            raise MathloraError(f"{flag} must be at least 1, got {value}")
    if not 0 <= args.port <= 65535:
        raise MathloraError(f"--port must be 0-65535, got {args.port}")
    target = resolve_target(args, need_adapter=args.upstream is None)
    cfg = target.cfg
    if args.upstream is not None:
        if args.adapter is not None:
            raise MathloraError("with --upstream the upstream server applies the adapter (vllm serve BASE "
                                "--enable-lora --lora-modules NAME=ADAPTER_DIR); give --upstream-model NAME instead")
        engine, served, mode = _proxy(args, cfg, target.calculator)
    else:
        from mathlora.evaluate.generation import load_inference_model
        from mathlora.serve.engines import LocalEngine

        lm, tok = load_inference_model(target.model, target.adapter, runtime_from(cfg), merge=cfg.eval.merge_adapter)
        batch = cfg.eval.batch_size if isinstance(cfg.eval.batch_size, int) else 16
        engine = LocalEngine(lm, tok, max_length=cfg.eval.max_length, batch_size=batch, calculator=target.calculator,
                             long_prompts=cfg.eval.long_prompts)
        served = args.name or target.name
        mode = f"{target.model}" + (f" + {target.adapter}" if target.adapter else "")
    limits = Limits(max_tokens=args.max_tokens_limit, prompt_chars=args.max_prompt_chars,
                    default_max_tokens=min(cfg.eval.max_new_tokens, args.max_tokens_limit))
    scope = resolve_scope(cfg.eval.answer_scope, target.solution_style)

    def ready(port: int) -> None:
        print(f"serving {served!r} on http://{args.host}:{port}/v1 ({mode}; calculator "
              f"{'on' if target.calculator else 'off'}; template {target.template}); Ctrl-C or SIGTERM stops it",
              flush=True)

    return serve_app(lambda on_ready: build_app(engine, served=served, template=target.template, scope=scope,
                                                limits=limits, on_ready=on_ready), args.host, args.port, ready)


def _proxy(args, cfg, calculator: bool):
    from mathlora.evaluate.remote import CompletionsClient
    from mathlora.serve.engines import ProxyEngine

    end = cfg.eval.endpoint
    upstream_model = args.upstream_model or cfg.eval.model
    if not upstream_model:
        raise MathloraError("give --upstream-model NAME: the upstream's name for the model (or LoRA)")
    client = CompletionsClient(base_url=args.upstream, model=upstream_model, api_key=end.api_key(),
                               concurrency=end.concurrency, timeout=end.timeout, policy=end.policy())
    return ProxyEngine(client, calculator=calculator), args.name or upstream_model, \
        f"proxy for {args.upstream} ({upstream_model})"
