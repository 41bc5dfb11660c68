"""Benchmark: ``mathlora serve`` answering 8 concurrent requests against the same 8 sent one after another,
with the gathering window off (``--gather-ms 0``: the first request starts alone, as before the window) and on.

For each window the script starts ``python -m mathlora serve --run RUN --port 0 --gather-ms MS`` (this
checkout's code), waits for its ready line, sends one warm-up request, then the problems serially and then all
at once (a thread each, httpx), and stops the server with SIGTERM. Prints wall time, per-request latency and
requests/s of each, whether every concurrent answer equals the serial one (greedy decoding), and one JSON line.

The run folder is made here (``bench/ask_startup.make_run``: ``--model``, default ``tiny-random-llama``)
unless ``--run DIR`` names a finished run folder (only read).

    .venv/bin/python bench/serve_concurrency.py
    .venv/bin/python bench/serve_concurrency.py --run runs/demo --max-tokens 48 --gather-ms 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ["计算 1.5 + 2.25 等于多少？", "计算 -3828.45 - 756.08 等于多少？", "计算 12 * 7 等于多少？",
            "求以下数据的平均值：[74, 13, 94]", "计算 100 / 8 等于多少？", "计算 0.25 + 0.5 等于多少？",
            "计算 999 - 1234 等于多少？", "计算 3.5 * 4 等于多少？"]


def start_server(run: Path, gather_ms: float, timeout: float = 600) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mathlora", "serve", "--run", str(run), "--port", "0",
                             "--gather-ms", str(gather_ms), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            if "serving" in line:
                return proc, line.split(" on ", 1)[1].split(" ", 1)[0]
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise SystemExit(f"the server did not start (exit {proc.poll()})")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ask(client, url: str, problem: str, max_tokens: int) -> tuple[float, str]:
    start = time.perf_counter()
    r = client.post(f"{url}/completions", json={"prompt": problem, "max_tokens": max_tokens})
    r.raise_for_status()
    return time.perf_counter() - start, r.json()["choices"][0]["text"]


def pattern(url: str, problems: list[str], max_tokens: int, concurrent: bool) -> dict:
    import httpx

    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=len(problems))) as client:
        start = time.perf_counter()
        if concurrent:
            with ThreadPoolExecutor(len(problems)) as pool:
                done = list(pool.map(lambda p: ask(client, url, p, max_tokens), problems))
        else:
            done = [ask(client, url, p, max_tokens) for p in problems]
        wall = time.perf_counter() - start
    latencies = [d[0] for d in done]
    return {"wall_s": wall, "requests_per_s": len(problems) / wall, "latency_mean_s": statistics.mean(latencies),
            "latency_median_s": statistics.median(latencies), "latency_max_s": max(latencies),
            "latencies_s": latencies, "answers": [d[1] for d in done]}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="a finished run folder (default: a tiny-model run "
                                                           "made here)")
    ap.add_argument("--model", default="tiny-random-llama", help="the base model of the run made here (e.g. "
                                                              "smollm2-135m-instruct; default tiny-random-llama)")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--gather-ms", type=float, default=20.0, help="the window of the 'on' server (default 20)")
    ap.add_argument("--json-out", type=Path, default=None)
    a = ap.parse_args()
    problems = [PROBLEMS[i % len(PROBLEMS)] for i in range(a.requests)]
    results, loads = {}, [load()]
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        if a.run is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from ask_startup import make_run

            run = make_run(Path(tmp) / "run", a.model)
        else:
            run = a.run.resolve()
        for window in (0.0, a.gather_ms):
            proc, url = start_server(run, window)
            try:
                ask(__import__("httpx").Client(timeout=600), url, problems[0], a.max_tokens)  # warm-up
                serial = pattern(url, problems, a.max_tokens, concurrent=False)
                together = pattern(url, problems, a.max_tokens, concurrent=True)
            finally:
                stop_server(proc)
            results[f"gather_{window:g}ms"] = {"serial": serial, "concurrent": together,
                                               "same_answers": serial["answers"] == together["answers"]}
            loads.append(load())
    print(f"{'window':>12} {'pattern':>10} {'wall s':>8} {'req/s':>7} {'latency mean':>13} {'max':>7}  same")
    for name, r in results.items():
        for kind in ("serial", "concurrent"):
            x = r[kind]
            print(f"{name:>12} {kind:>10} {x['wall_s']:8.2f} {x['requests_per_s']:7.2f} "
                  f"{x['latency_mean_s']:11.2f} s {x['latency_max_s']:7.2f}  {r['same_answers']}")
    print(f"load average {loads[0]} -> {loads[-1]}")
    report = {"bench": "serve_concurrency", "run": str(a.run) if a.run else f"{a.model} run (made here)",
              "requests": a.requests, "max_tokens": a.max_tokens, "load_average": loads, "cpus": os.cpu_count(),
              "platform": platform.platform(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
              "results": {k: {**v, **{p: {key: val for key, val in v[p].items() if key != "answers"}
                                      for p in ("serial", "concurrent")}} for k, v in results.items()}}
    text = json.dumps(report, ensure_ascii=False)
    print(text)
    if a.json_out:
        a.json_out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
