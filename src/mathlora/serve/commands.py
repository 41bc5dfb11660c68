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
import stat
import json
import sys
import importlib.util
import ipaddress
import socket
import os

from mathlora.app.cliargs import add_config_args, add_runtime_args, deprecated, flag, option
from mathlora.app.config import Config
from mathlora.errors import MathloraError
from mathlora.modeling.adapters import require_adapter_dir
from mathlora.app.cliargs import config_from_args, run_config_from_args
from mathlora.run_dir.layout import RunLayout
from mathlora.modeling.templates import get_template
from mathlora.evaluate.commands import add_served_model
from mathlora.serve.protocol import clean_text
from mathlora.app.cliargs import runtime_from
from mathlora.arith.answers import extract_prediction_answer, resolve_scope
from mathlora.evaluate.backend import backend_of, generate, hold_model
from mathlora.evaluate.predict import stop_strings
from mathlora.modeling.templates import render_prompt
from mathlora.app.cliargs import on_off
from mathlora.serve.protocol import Limits
from mathlora.serve.run import GRACE_SECONDS, serve_app
from mathlora.modeling.openai_client import checked_api_key
from mathlora.modeling.openai_client import public_url
from mathlora.serve.engines import ProxyEngine, proxy_client
from mathlora.serve.loading import MergedHeld, preload, usable_merged
from mathlora.serve.engines import LocalEngine


@dataclass(frozen=True)
class Target:
    cfg: Config               # the config in force (the run's when --run)
    model: str
    adapter: str | None
    template: str
    solution_style: str
    calculator: bool
    name: str                 # what the model is called (the run folder's name, the adapter's, the model's)
    run: str | None = None    # --run
    own: bool = False         # the run's own model and adapter (no --model, no --adapter)


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
    unless the backend is a server (``eval.backend: openai``)."""

    adapter = args.adapter
    layout = None
    if args.run is not None:
        cfg = run_config_from_args(args, args.run)  # the one reader of a run's own config
        layout = RunLayout(Path(args.run))
    else:
        cfg = config_from_args(args)
    if args.model is not None:
        cfg = cfg.model_copy(update={"model": args.model})
    if need_adapter is None:
        need_adapter = backend_of(cfg.eval).holds_model
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
    return Target(cfg, cfg.model, adapter, template, cfg.solution_style, calculator, name, args.run,
                  own=args.run is not None and args.adapter is None and args.model is None)


def register(sub) -> None:
    a = sub.add_parser("ask", help="answer math problems from the shell (the base model, --adapter or --run)",
                       description="Prints the worked solution and the final answer of each problem: the "
                                   "arguments, the lines of --file, or the lines of standard input. The calculator "
                                   "is on by default for calculator-style models.")
    a.add_argument("problem", nargs="*", help="a problem, e.g. \"计算 1.5 + 2.25 等于多少？\"")
    a.add_argument("--file", default=None, help="problems, one a line (or JSON lines with \"problem\"); - = stdin")
    flag(a, "--json", help="one JSON object a problem instead of text")
    flag(a, "--interactive", help="a prompt loop: one problem a line from standard input, each answered as "
                                        "it comes, the model loaded once, while the first is typed (quit, exit or "
                                        "end of input ends it)")
    add_target_args(a)
    add_runtime_args(a)
    option(a, "--max-new-tokens", field="eval.max_new_tokens", type=int, help="new tokens at most")
    option(a, "--backend", field="eval.backend", choices=["local", "openai"],
           help="local (this process) or openai (a completions server that applies the adapter)")
    option(a, "--base-url", field="eval.endpoint.base_url", help="openai backend: server URL")
    add_served_model(a)
    a.set_defaults(func=cmd_ask, quick_exit=True)  # prints only: no file to finish at exit (app.cli.main)

    s = sub.add_parser("serve", help="an OpenAI-compatible endpoint for the model (calculator included)",
                       description="Serves /v1/completions, /v1/chat/completions and /v1/models: the local model "
                                   "with its adapter, or a proxy in front of an upstream OpenAI-compatible server "
                                   "(--upstream). Clients send only the problem; the template is applied here. Beyond "
                                   "127.0.0.1 clients must send an API key (--api-key or $MATHLORA_API_KEY). SIGTERM "
                                   "lets requests in flight finish within --shutdown-grace, then answers the rest 503.")
    add_target_args(s)
    add_runtime_args(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    s.add_argument("--name", default=None, help="the model name clients use (default: the run's, the adapter's, "
                                                "the model's or the upstream's)")
    s.add_argument("--upstream", default=None, metavar="URL",
                   help="proxy mode: the upstream server's /v1 URL (e.g. vLLM with --enable-lora)")
    s.add_argument("--served-model", dest="upstream_model", default=None, metavar="NAME",
                   help="proxy mode: the name the upstream server serves the model (or LoRA) under")
    deprecated(s, "--upstream-model", new="--served-model", dest="upstream_model")
    s.add_argument("--api-key", default=None, metavar="KEY",
                   help=f"the key clients must send (Authorization: Bearer KEY); default ${API_KEY_ENV} (better: a "
                        "command line is visible to other users). Needed to "
                        "listen beyond loopback")
    s.add_argument("--shutdown-grace", type=float, default=None, metavar="SECONDS",
                   help="after SIGTERM/SIGINT, how long requests in flight may still take (default 30); the "
                        "rest are answered 503")
    s.add_argument("--upstream-deadline", type=float, default=120.0, metavar="SECONDS",
                   help="proxy mode: the longest a request may wait on the upstream, retries included "
                        "(default 120; then 504)")
    s.add_argument("--gather-ms", type=float, default=GATHER_MS, metavar="MS",
                   help=f"local model: a request that finds the model idle waits this many milliseconds for other "
                        f"requests to decode with it as one batch (default {GATHER_MS:g}; 0: start at once; 0-1000)")
    s.add_argument("--max-tokens-limit", type=int, default=1024, help="the most new tokens a request may ask for")
    s.add_argument("--max-prompt-chars", type=int, default=4000, help="the longest problem accepted, in characters")
    s.set_defaults(func=cmd_serve)


API_KEY_ENV = "MATHLORA_API_KEY"
GATHER_MS = 0.0  # serve --gather-ms default: off (BENCHMARKS.md, "serve concurrency")
MAX_ASK_BYTES = 16 << 20  # ask --file / standard input: more than this is refused, not read on


def _read_capped(stream, what: str) -> str:
    """At most ``MAX_ASK_BYTES`` of ``stream`` (binary) as text: invalid UTF-8 becomes U+FFFD."""
    data = stream.read(MAX_ASK_BYTES + 1)
    if len(data) > MAX_ASK_BYTES:
        raise MathloraError(f"{what} is over {MAX_ASK_BYTES >> 20} MiB; ask fewer problems at a time")
    return data.decode("utf-8", "replace")


def _read_file(name: str) -> str:
    """``--file``'s text: a regular file or a pipe (``<(...)``), read up to the cap; anything else says what it
    is."""

    path = Path(name)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MathloraError(f"cannot read {name}: not found") from None
    except OSError as e:
        raise MathloraError(f"cannot read {name}: {e.strerror or e}") from None
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket")]
    what = next((label for test, label in kinds if test(mode)), None)
    if what is not None:
        raise MathloraError(f"--file {name} is {what}, not a file of problems (one a line)")
    try:
        with open(path, "rb") as f:
            return _read_capped(f, f"--file {name}")
    except OSError as e:
        raise MathloraError(f"cannot read {name}: {e.strerror or e}") from None


def read_problems(args) -> list[str]:
    """The problems to ask: the arguments, else ``--file``'s lines, else standard input's (at most
    ``MAX_ASK_BYTES``). A line that is a JSON object must have a non-empty ``"problem"`` string; lone
    surrogates (undecodable bytes) become U+FFFD."""


    if args.problem and args.file:
        raise MathloraError("give problems as arguments or with --file, not both")
    where = "argument"
    if args.problem:
        lines = args.problem
    elif args.file and args.file != "-":
        lines, where = _read_file(args.file).splitlines(), f"{args.file} line"
    elif args.file == "-" or not sys.stdin.isatty():
        stream = getattr(sys.stdin, "buffer", None)
        text = _read_capped(stream, "standard input") if stream is not None else sys.stdin.read(MAX_ASK_BYTES + 1)
        lines, where = text.splitlines(), "standard input line"
    else:
        raise MathloraError("give a problem (mathlora ask \"计算 1.5 + 2.25 等于多少？\"), --file FILE, or lines on "
                            "standard input")
    problems = []
    for n, line in enumerate((clean_text(x).strip() for x in lines), 1):
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None  # not JSON: a problem that starts with '{'
            if isinstance(record, dict):
                problem = record.get("problem")
                if not isinstance(problem, str):
                    raise MathloraError(f"{where} {n}: a JSON object without a \"problem\" string (keys: "
                                        f"{', '.join(map(str, list(record)[:8])) or 'none'})")
                line = clean_text(problem).strip()
                if not line:
                    raise MathloraError(f"{where} {n}: \"problem\" is empty")
        if line:
            problems.append(line)
    if not problems:
        raise MathloraError("no problem to ask (every line was empty)")
    return problems


def cmd_ask(args) -> int:
    interactive = bool(getattr(args, "interactive", False))
    if interactive and (args.problem or args.file):
        raise MathloraError("--interactive reads its problems from standard input: give no problem or --file")
    problems = [] if interactive else read_problems(args)
    target = resolve_target(args)
    cfg = target.cfg
    print(f"ask: calculator {on_off(target.calculator)}, template {target.template}, model {target.name} "
          f"(config: {args.config_layers})", file=sys.stderr, flush=True)
    held = _held(target)  # loaded once, for every problem
    if not interactive:
        _answer(args, target, held, problems, numbered=len(problems) > 1)
        return 0
    loaded = preload(held, target.model, target.adapter)  # the model loads while the first problem is typed
    while True:
        print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        problem = clean_text(line).strip()
        if not line or problem.lower() in ("quit", "exit"):
            print(file=sys.stderr, flush=True)
            return 0
        if problem:
            try:
                loaded()
            except MathloraError:
                if not sys.stdin.isatty():  # the error on its own line, not after the prompt
                    print(file=sys.stderr, flush=True)
                raise
            _answer(args, target, held, [problem], numbered=False)



def _held(target: Target):
    """The model ``target`` names, loaded on first use (from the run's merged folder where that is the same
    model: ``serve.loading``); None for a server backend."""
    cfg = target.cfg
    if not backend_of(cfg.eval).holds_model:
        return hold_model(cfg.eval, None, target.model, target.adapter)
    runtime = runtime_from(cfg)
    merged = usable_merged(target.run, target.adapter, own_target=target.own, merge=cfg.eval.merge_adapter,
                           runtime=runtime)
    if merged is not None:
        return MergedHeld(target.model, target.adapter, runtime, merged)
    return hold_model(cfg.eval, runtime, target.model, target.adapter)


def _answer(args, target: Target, held, problems: list[str], *, numbered: bool) -> None:
    """Generate and print the answers of ``problems`` (text, or one JSON object a problem with --json)."""
    cfg = target.cfg
    out = generate(cfg.eval, None if held is None else held.runtime, target.model, target.adapter,
                   [render_prompt(target.template, p) for p in problems], max_new_tokens=cfg.eval.max_new_tokens,
                   calculator=target.calculator, progress=False, desc="ask",
                   stop=stop_strings(cfg.eval, target.template), held=held)  # as predict and eval stop
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
        if numbered:
            print(("\n" if n else "") + f"Q: {problem}")
        print(gen.completion.strip() or (f"(skipped: {gen.skipped})" if gen.skipped else "(no text)"))
        print(f"answer: {answer if answer is not None else '(none found)'}{calc}", flush=True)


def cmd_serve(args) -> int:
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise MathloraError(f"mathlora serve needs {' and '.join(missing)}: pip install 'mathlora[serve]'")
    from mathlora.serve.app import build_app

    for flag, value in (("--max-tokens-limit", args.max_tokens_limit), ("--max-prompt-chars", args.max_prompt_chars)):
        if value < 1:
            raise MathloraError(f"{flag} must be at least 1, got {value}")
    if not 0 <= args.gather_ms <= 1000:
        raise MathloraError(f"--gather-ms must be 0-1000 milliseconds, got {args.gather_ms:g}")
    if not 0 <= args.port <= 65535:
        raise MathloraError(f"--port must be 0-65535, got {args.port}")
    for flag, value in (("--shutdown-grace", args.shutdown_grace), ("--upstream-deadline", args.upstream_deadline)):
        if value is not None and not 0 <= value <= 3600:
            raise MathloraError(f"{flag} must be 0-3600 seconds, got {value:g}")
    api_key = server_api_key(args.api_key, args.host)
    target = resolve_target(args, need_adapter=args.upstream is None)
    cfg = target.cfg
    stop = stop_strings(cfg.eval, target.template)  # the template's next section: served text stops as predict's
    if args.upstream is not None:
        if args.adapter is not None:
            raise MathloraError("with --upstream the upstream server applies the adapter (vllm serve BASE "
                                "--enable-lora --lora-modules NAME=ADAPTER_DIR); give --served-model NAME instead")
        engine, served, mode = _proxy(args, cfg, target.calculator, stop)
    else:
        (lm, tok), _ = _held(target).get(target.model, target.adapter)
        batch = cfg.eval.batch_size if isinstance(cfg.eval.batch_size, int) else 16
        engine = LocalEngine(lm, tok, max_length=cfg.eval.max_length, batch_size=batch, calculator=target.calculator,
                             long_prompts=cfg.eval.long_prompts, stop=stop, gather=args.gather_ms / 1000)
        served = args.name or target.name
        mode = f"{target.model}" + (f" + {target.adapter}" if target.adapter else "")
        mode += f"; batches gathered for {args.gather_ms:g} ms" if args.gather_ms else "; no gathering window"
    limits = Limits(max_tokens=args.max_tokens_limit, prompt_chars=args.max_prompt_chars,
                    default_max_tokens=min(cfg.eval.max_new_tokens, args.max_tokens_limit))
    scope = resolve_scope(cfg.eval.answer_scope, target.solution_style)

    def ready(port: int) -> None:
        access = ("clients must send its API key (Authorization: Bearer)" if api_key else
                  "no API key: this machine only")
        print(f"serving {served!r} on http://{args.host}:{port}/v1 ({mode}; calculator "
              f"{'on' if target.calculator else 'off'}; template {target.template}; {access}); Ctrl-C or SIGTERM "
              "stops it", flush=True)

    grace = GRACE_SECONDS if args.shutdown_grace is None else args.shutdown_grace
    return serve_app(lambda on_ready, shutdown: build_app(
        engine, served=served, template=target.template, scope=scope, limits=limits, on_ready=on_ready,
        api_key=api_key, shutdown=shutdown), args.host, args.port, ready, grace=grace)


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is this machine's loopback (127.0.0.0/8, ::1)."""

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def server_api_key(given: str | None, host: str) -> str | None:
    """The key clients must send: ``--api-key``, else ``$MATHLORA_API_KEY``; a one-line error when there is
    none and ``host`` is beyond loopback (anyone on the network could use the model, and a proxy's upstream
    key)."""


    source = "--api-key" if given is not None else f"${API_KEY_ENV}"
    value = given if given is not None else os.environ.get(API_KEY_ENV)
    key = checked_api_key(value, source.lstrip("$")) if value is not None else "EMPTY"
    key = None if key == "EMPTY" else key
    if key is None and value is not None:
        raise MathloraError(f"{source} is empty; give the key clients must send")
    if key is None and not is_loopback(host):
        raise MathloraError(f"--host {host} listens beyond this machine: give an API key that clients must send "
                            f"(--api-key KEY or ${API_KEY_ENV}), or listen on 127.0.0.1")
    return key


def _proxy(args, cfg, calculator: bool, stop=()):
    end = cfg.eval.endpoint
    upstream_model = args.upstream_model or cfg.eval.model
    if not upstream_model:
        raise MathloraError("give --served-model NAME: the name the upstream serves the model (or LoRA) under (eval.model)")
    client = proxy_client(base_url=args.upstream, model=upstream_model, api_key=end.api_key(),
                          concurrency=end.concurrency, timeout=min(end.timeout, args.upstream_deadline),
                          policy=end.policy(), stop=stop)
    return ProxyEngine(client, calculator=calculator, deadline=args.upstream_deadline), \
        args.name or upstream_model, f"proxy for {public_url(args.upstream)} ({upstream_model})"
