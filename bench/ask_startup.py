"""Benchmark: ``mathlora ask``'s time to the first answer, in fresh processes, before and after a change.

Each repeat starts ``python -m mathlora ask --run RUN PROBLEM`` in a new process and times it from the start
to the first ``answer:`` line on its standard output (and to its exit). "before" runs the code of a git ref
(checked out into a temporary ``git worktree``, put first on PYTHONPATH); "after" the code of this checkout;
the two alternate, repeat by repeat, so a busy machine weighs on both alike. Prints a table and one JSON line.

The run folder is made here (``make_run``: ``--model``, default ``tiny-random-llama``, with a fresh LoRA adapter
and its merged folder, as the pipeline leaves them: the imports and the start-up path of a real run) unless
``--run DIR`` names a finished run folder (only read, never written). A fresh process that only imports torch and
transformers' tokenizer and Llama code is timed beside them: the floor under any first answer.

    .venv/bin/python bench/ask_startup.py --before HEAD~3 --repeats 5
    .venv/bin/python bench/ask_startup.py --before ab26e52 --model smollm2-135m-instruct
    .venv/bin/python bench/ask_startup.py --before ab26e52 --run runs/demo --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = "计算 1.5 + 2.25 等于多少？"


def make_run(folder: Path, model: str = "tiny-random-llama") -> Path:
    """A finished-run-shaped folder: ``config.yaml`` (``model``, calculator style, alpaca), a fresh (untrained)
    LoRA adapter in ``train/adapter`` and, as the pipeline's merge stage writes it, ``merged/``."""
    import yaml

    from mathlora.app.config import load_config
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.checkpoint import save_adapter
    from mathlora.train.distributed import adapter_state
    from mathlora.train.job import TrainJob
    from mathlora.train.lora import build_model
    from mathlora.train.merge import merge_adapter

    cfg = load_config(None, {"model": model, "solution_style": "calculator", "template": "alpaca"})
    (folder / "train").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True),
                                        encoding="utf-8")
    runtime = Runtime(device="cpu", precision="fp32")
    lm = build_model(TrainJob(cfg.train, cfg.lora, cfg.seed, cfg.model, 64, runtime), runtime)
    save_adapter(lm, adapter_state(lm), folder / "train" / "adapter")
    merge_adapter(runtime, model, folder / "train" / "adapter", folder / "merged", template="alpaca")
    return folder


def checkout(ref: str, where: Path) -> Path:
    """The ``src`` folder of ``ref`` checked out into a temporary worktree at ``where``."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(where), ref],
                   check=True, capture_output=True)
    return where / "src"


def drop_worktree(where: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)


def time_ask(src: Path, run: Path, extra: list[str], timeout: float) -> dict:
    """One fresh ``ask``: seconds to the first answer line and to the exit, and the answer printed."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "mathlora", "ask", "--run", str(run), *extra, PROBLEM]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first, lines = None, []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if first is None and line.startswith("answer:"):
                first = time.perf_counter() - start
        err = proc.stderr.read()
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    total = time.perf_counter() - start
    if proc.returncode != 0 or first is None:
        raise SystemExit(f"ask failed ({proc.returncode}): {err.strip().splitlines()[-1:] or lines}")
    return {"first_answer_s": first, "exit_s": total, "output": lines}


FLOOR = ("import time; t = time.perf_counter(); import torch; from transformers import AutoTokenizer; "
         "import transformers.models.llama.modeling_llama; print(time.perf_counter() - t)")


def time_imports() -> float:
    """Seconds a fresh process spends importing what any local ``ask`` needs (torch, transformers' tokenizer
    and Llama model code): the floor under the first answer."""
    out = subprocess.run([sys.executable, "-c", FLOOR], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def summary(times: list[float]) -> dict:
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": times}


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, metavar="REF", help="git ref of the code to compare against")
    ap.add_argument("--run", type=Path, default=None, help="a finished run folder (default: a tiny-model run "
                                                           "made here)")
    ap.add_argument("--model", default="tiny-random-llama", help="the base model of the run made here (e.g. "
                                                              "smollm2-135m-instruct; default tiny-random-llama)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json-out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args()
    extra = ["--max-new-tokens", str(a.max_new_tokens)]
    with tempfile.TemporaryDirectory(prefix="ask-startup-") as tmp:
        tmp = Path(tmp)
        run = a.run.resolve() if a.run else make_run(tmp / "run", a.model)
        old = checkout(a.before, tmp / "before")
        try:
            sides = {"before": old, "after": ROOT / "src"}
            time_ask(sides["after"], run, extra, a.timeout)  # warm the file cache (and any model cache) first
            results: dict[str, list[dict]] = {k: [] for k in sides}
            floor: list[float] = []
            loads = [load()]
            for _ in range(a.repeats):
                for side, src in sides.items():
                    results[side].append(time_ask(src, run, extra, a.timeout))
                floor.append(time_imports())
                loads.append(load())
        finally:
            drop_worktree(tmp / "before")
    same = all(r["output"] == results["before"][0]["output"] for rs in results.values() for r in rs)
    report = {"bench": "ask_startup", "run": str(a.run) if a.run else f"{a.model} run (made here)",
              "before_ref": a.before, "after_ref": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                          capture_output=True, text=True).stdout.strip() + "+wt",
              "repeats": a.repeats, "max_new_tokens": a.max_new_tokens, "same_output": same,
              "load_average": loads, "cpus": os.cpu_count(), "platform": platform.platform(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
              "imports_only_s": summary(floor),
              **{side: {"first_answer_s": summary([r["first_answer_s"] for r in rs]),
                        "exit_s": summary([r["exit_s"] for r in rs])} for side, rs in results.items()}}
    print(f"{'':8} {'first answer (median, min-max)':>34} {'exit (median)':>14}")
    for side in ("before", "after"):
        f, e = report[side]["first_answer_s"], report[side]["exit_s"]
        print(f"{side:8} {f['median']:>17.2f} s ({f['min']:.2f}-{f['max']:.2f} s) {e['median']:>12.2f} s")
    print(f"{'imports':8} {statistics.median(floor):>17.2f} s ({min(floor):.2f}-{max(floor):.2f} s)  "
          "(torch + transformers' tokenizer and Llama code alone, in a fresh process)")
    print(f"same output before and after: {same}; load average {loads[0]} -> {loads[-1]}")
    text = json.dumps(report, ensure_ascii=False)
    print(text)
    if a.json_out:
        a.json_out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
