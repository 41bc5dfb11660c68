"""Labeling throughput, side by side in one run (results go to BENCHMARKS.md).

(a) local judges on the same model and the same records: the logit judge (one forward pass per
    batch, next-token distribution over "0".."5") vs a generative judge (HF ``generate``, greedy, a
    few new tokens, reply parsed like the openai judge's), batched the same way, and one record at
    a time (how generative judges are often run);
(b) the openai judge against a loopback stub that answers after 50 ms, at several concurrencies.

    .venv/bin/python bench/label_throughput.py --records 256 --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.loopback
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "label"))

from chat_stub import serve_in_child, stub_records  # noqa: E402
from competition_style import competition_records  # noqa: E402


def bench_local(model_spec: str, n: int, batch_size: int, new_tokens: int, skip_unbatched: bool) -> list[dict]:
    import torch

    from mathlora.label.local import load_local_judge
    from mathlora.label.reply import parse_difficulty
    from mathlora.modeling.runtime import Runtime

    torch.manual_seed(0)
    judge = load_local_judge(model_spec, __import__("mathlora.label.prompt", fromlist=["x"]).default_prompt(),
                             Runtime(device="cpu"), batch_size=batch_size)
    records = competition_records(n, 0)
    texts = judge.texts(records)
    tok, model = judge.tokenizer, judge.model
    lengths = [len(tok.encode(t, add_special_tokens=False)) for t in texts]
    rows = []

    start = time.perf_counter()
    got = []
    judge.judge(records, got.extend)
    secs = time.perf_counter() - start
    rows.append({"judge": f"logit (1 forward/batch, batch {batch_size})", "records": n, "seconds": secs,
                 "records_per_s": n / secs, "parsed": n})

    def generate(batch_texts):
        tok.padding_side = "left"
        enc = tok(batch_texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def run_generative(bs):
        order = sorted(range(n), key=lambda i: len(texts[i]))
        replies = []
        start = time.perf_counter()
        for s in range(0, n, bs):
            replies.extend(generate([texts[i] for i in order[s:s + bs]]))
        secs = time.perf_counter() - start
        parsed = sum(parse_difficulty(r)[0] is not None for r in replies)
        return secs, parsed

    secs, parsed = run_generative(batch_size)
    rows.append({"judge": f"generative (generate {new_tokens} tokens, batch {batch_size})", "records": n,
                 "seconds": secs, "records_per_s": n / secs, "parsed": parsed})
    if not skip_unbatched:
        secs, parsed = run_generative(1)
        rows.append({"judge": f"generative (generate {new_tokens} tokens, one at a time)", "records": n,
                     "seconds": secs, "records_per_s": n / secs, "parsed": parsed})
    for r in rows:
        r["speedup_of_logit"] = rows[0]["records_per_s"] / r["records_per_s"]
        r["mean_prompt_tokens"] = sum(lengths) / n
    return rows


def bench_openai(n: int, concurrencies: list[int], delay: float) -> list[dict]:
    from mathlora.label.config import LabelConfig
    from mathlora.label.run import label_file
    from mathlora.run_dir.records import write_jsonl

    rows = []
    base_url, stop_stub = serve_in_child(delay=delay)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        write_jsonl(src, stub_records(n))
        for c in concurrencies:
            out = Path(tmp) / f"c{c}" / "out.jsonl"
            cfg = LabelConfig(judge="openai", model="stub", base_url=base_url, concurrency=c)
            start = time.perf_counter()
            summary = label_file(cfg, None, src, out, base_model="unused", progress=False)
            secs = time.perf_counter() - start
            rows.append({"judge": f"openai, stub {delay * 1000:.0f} ms, concurrency {c}", "records": n,
                         "seconds": secs, "records_per_s": n / secs, "labeled": summary["labeled"],
                         "ideal_records_per_s": c / delay})
    stop_stub()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=256)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=4)
    ap.add_argument("--skip-unbatched", action="store_true")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--openai-records", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    rows = []
    rows += bench_openai(args.openai_records, [int(c) for c in args.concurrency.split(",")], 0.05)
    if not args.skip_local:
        rows += bench_local(args.model, args.records, args.batch_size, args.new_tokens, args.skip_unbatched)
    print("| judge | records | seconds | records/s | notes |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        notes = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                          if k not in ("judge", "records", "seconds", "records_per_s"))
        print(f"| {r['judge']} | {r['records']} | {r['seconds']:.1f} | {r['records_per_s']:.1f} | {notes} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
