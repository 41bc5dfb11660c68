"""Data-preparation throughput: mathlora's ingest -> normalize -> convert -> tokenize vs the competition scripts.

Both run side by side in one invocation, each in its own subprocess (so peak memory is its own), on
the same generated competition-style records and the same SmolLM2 tokenizer.

Baseline = what the competition scripts do: load the whole JSON, loop record by record (float-based
rounding with a regex, a dict per conversation, json.dump of the whole list), one tokenizer call per
text, labels padded to seq_length.

    python bench/prep_throughput.py                 # 800,000 records (about 5 minutes on 2 cores)
    python bench/prep_throughput.py --count 20000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(data: Path, work: Path, model: str) -> dict:
    from mathlora.data.config import ConvertConfig, IngestConfig, NormalizeConfig, TokenizeConfig
    from mathlora.data.convert import convert_file
    from mathlora.data.ingest import ingest_file
    from mathlora.data.normalize import normalize_file
    from mathlora.data.tokenize import tokenize_file
    from mathlora.modeling.models import load_tokenizer

    load_tokenizer(model)  # warm the tokenizer cache outside the timings, as the baseline does
    times = {}
    t = time.perf_counter()
    ingest_file(IngestConfig(), data, work / "records.jsonl")
    times["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    normalize_file(NormalizeConfig(), work / "records.jsonl", work / "normalized.jsonl")
    times["normalize"] = time.perf_counter() - t
    t = time.perf_counter()
    convert_file(ConvertConfig(), work / "normalized.jsonl", work / "conversations.json")
    times["convert"] = time.perf_counter() - t
    t = time.perf_counter()
    stats = tokenize_file(TokenizeConfig(), work / "conversations.json", work / "tokens", model=model,
                          progress=False)
    times["tokenize"] = time.perf_counter() - t
    return {"times": times, "records": stats["kept"]}


def run_baseline(data: Path, work: Path, model: str) -> dict:
    import numpy as np

    from mathlora.modeling.models import load_tokenizer
    from mathlora.modeling.templates import render_prompt

    tok = load_tokenizer(model)
    times = {}
    t = time.perf_counter()
    records = [json.loads(line) for line in open(data, encoding="utf-8")]
    times["ingest"] = time.perf_counter() - t

    t = time.perf_counter()
    pattern = re.compile(r"-?\d+\.\d{3,}")
    for r in records:  # float rounding, record by record
        for k in ("problem", "solution"):
            r[k] = pattern.sub(lambda m: str(round(float(m.group()), 2)), r[k])
    with open(work / "normalized.json", "w", encoding="utf-8") as fh:
        json.dump(records, fh, ensure_ascii=False, indent=2)
    times["normalize"] = time.perf_counter() - t

    t = time.perf_counter()
    with open(work / "normalized.json", encoding="utf-8") as fh:
        records = json.load(fh)
    conversations = []
    for i, r in enumerate(records):
        conversations.append({"id": str(i), "conversations": [
            {"from": "human", "value": render_prompt("alpaca", r["problem"])},
            {"from": "gpt", "value": r["solution"]}]})
    with open(work / "conversations.json", "w", encoding="utf-8") as fh:
        json.dump(conversations, fh, ensure_ascii=False, indent=2)
    times["convert"] = time.perf_counter() - t

    t = time.perf_counter()
    with open(work / "conversations.json", encoding="utf-8") as fh:
        conversations = json.load(fh)
    seq = 256
    ids_all, labels_all = [], []
    for c in conversations:  # one tokenizer call per text
        prompt, answer = c["conversations"][0]["value"], c["conversations"][1]["value"]
        p = tok(prompt)["input_ids"]
        full = tok(prompt + answer)["input_ids"] + [tok.eos_token_id]
        labels = [-100] * len(p) + full[len(p):]
        full, labels = full[:seq], labels[:seq]
        pad = seq - len(full)
        ids_all.append(full + [tok.pad_token_id] * pad)
        labels_all.append(labels + [-100] * pad)
    np.save(work / "input_ids.npy", np.array(ids_all, dtype=np.int32))
    np.save(work / "labels.npy", np.array(labels_all, dtype=np.int32))
    times["tokenize"] = time.perf_counter() - t
    return {"times": times, "records": len(ids_all)}


def worker(which: str, data: Path, model: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"prep-{which}-") as d:
        result = (run_ours if which == "ours" else run_baseline)(data, Path(d), model)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print("RESULT " + json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=800_000)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, Path(args.data), args.model)
        return

    from mathlora.run_dir.records import write_jsonl
    from mathlora.synth.competition import generate

    with tempfile.TemporaryDirectory(prefix="prep-bench-") as d:
        data = Path(d) / "train.json"
        t = time.perf_counter()
        write_jsonl(data, ({"problem": r["problem"], "solution": r["solution"]} for r in generate(args.count, 0)))
        print(f"generated {args.count} records in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        results = {}
        for which in ("ours", "baseline"):
            proc = subprocess.run([sys.executable, __file__, "--worker", which, "--data", str(data),
                                   "--model", args.model], capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode or not line:
                sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
            results[which] = json.loads(line[7:])
    print(f"{'stage':<10} {'mathlora rec/s':>15} {'baseline rec/s':>15}")
    for stage in ("ingest", "normalize", "convert", "tokenize"):
        o, b = results["ours"]["times"][stage], results["baseline"]["times"][stage]
        print(f"{stage:<10} {args.count / o:>15,.0f} {args.count / b:>15,.0f}")
    total = {k: sum(v["times"].values()) for k, v in results.items()}
    print(f"{'total s':<10} {total['ours']:>15.1f} {total['baseline']:>15.1f}   speedup "
          f"{total['baseline'] / total['ours']:.2f}x")
    print(f"{'peak MB':<10} {results['ours']['peak_rss_mb']:>15.0f} {results['baseline']['peak_rss_mb']:>15.0f}")
    print(json.dumps({"bench": "prep_throughput", "count": args.count, "results": results,
                      "speedup": round(total["baseline"] / total["ours"], 2),
                      "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                  "python": platform.python_version()}}))


if __name__ == "__main__":
    main()
