"""Ingest readers side by side: mathlora's own JSON lines reader vs the ``datasets`` library, on the same file.

Which reader should plain JSON lines go through? Each candidate runs in its own subprocess (its own import
time and peak memory) on the same generated 100k-line file of ``{problem, solution}`` records:

* ``ours``: ``mathlora.data.ingest.ingest_file`` as ``mathlora run`` calls it (the line reader of
  ``mathlora.run_dir.records``: per-line rejects, UTF-8 errors named by byte, NaN refused), ids, dedup, the output file;
* ``datasets``: ``datasets.load_dataset("json")`` into a fresh cache (what a cold first run pays), then every
  row iterated as a dict (the least ingest would do on top);
* ``datasets-streaming``: the same loader streamed (no Arrow cache written), rows iterated;
* ``parquet``: ``ingest_file`` on the same records as a Parquet file (the ``datasets`` path mathlora uses for
  tables), for scale.

Then one bad line is put in the middle of the file, a ``NaN`` and a line that is not JSON: ours rejects that
line and keeps the rest; the ``datasets`` loader's outcome is printed as it comes.

Measured twice (2 busy cores, python 3.11, datasets 5.2.0, 100,000 lines, 11.6 MB): ours 6.3 / 5.4 s for the
whole ingest (44 MB peak); ``datasets`` 7.7 / 7.9 s only to load and iterate (250 MB), streamed 11.6 / 13.9 s
(385 MB); the same records as Parquet 11.5 / 11.2 s (about 5.5 s of it is importing ``datasets`` and its first
``load_dataset``; rows are read in batches of 1000, 15x faster than ``datasets``' row by row). With the bad
line, ``datasets`` keeps the NaN (written back it is invalid JSON) and fails the whole file on the non-JSON
line (``DatasetGenerationError``). So plain JSON / JSON lines stay on mathlora's reader.

    python bench/ingest_formats.py                  # 100,000 lines
    python bench/ingest_formats.py --count 20000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_data(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(count):
            a, b = i * 1.37 % 9973, i * 7.11 % 313
            fh.write(json.dumps({"problem": f"计算 {a:.2f} + {b:.2f} 等于多少？", "solution": f"{a:.2f} + {b:.2f} = "
                                 f"{a + b:.2f}", "type": "addition"}, ensure_ascii=False) + "\n")


def run(kind: str, data: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if kind in ("ours", "parquet"):
        from mathlora.data.config import IngestConfig
        from mathlora.data.ingest import ingest_file

        source = data
        if kind == "parquet":
            import pyarrow as pa
            import pyarrow.json as pj
            import pyarrow.parquet as pq

            source = work / "train.parquet"
            table: pa.Table = pj.read_json(data)
            pq.write_table(table, source)
            start = time.perf_counter()  # the conversion is not ingest's time
        counts = ingest_file(IngestConfig(), source, work / f"records-{kind}.jsonl")
        rows = counts["kept"] + counts["duplicates"]
        extra = {"rejected": counts["rejected"]}
    else:
        import datasets

        datasets.disable_progress_bars()
        try:
            ds = datasets.load_dataset("json", data_files=str(data), split="train", cache_dir=str(work / "hf"),
                                       streaming=kind == "datasets-streaming")
            rows = sum(1 for _ in ds)
            extra = {}
        except Exception as e:  # the bad-line case: how the loader reports it
            rows, extra = 0, {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    return {"kind": kind, "seconds": round(time.perf_counter() - start, 2), "rows": rows,
            "peak_rss_mb": round(peak_rss_mb()), **extra}


def in_subprocess(kind: str, data: Path, work: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", kind, "--data", str(data), "--work", str(work)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        return {"kind": kind, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run(args.one, Path(args.data), Path(args.work))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "train.jsonl"
        write_data(data, args.count)
        print(f"{args.count} lines, {data.stat().st_size / 1e6:.1f} MB; python {platform.python_version()}")
        print(f"{'reader':<20} {'seconds':>8} {'rows':>8} {'peak MB':>8}")
        for kind in ("ours", "datasets", "datasets-streaming", "parquet"):
            r = in_subprocess(kind, data, work / kind)
            print(f"{kind:<20} {r.get('seconds', '-'):>8} {r.get('rows', '-'):>8} {r.get('peak_rss_mb', '-'):>8}"
                  + (f"  {r['error']}" if "error" in r else ""))
        lines = data.read_text(encoding="utf-8").splitlines()
        for what, line in (("a NaN", '{"problem": "p", "solution": "s", "x": NaN}'), ("a non-JSON", "not json")):
            bad = work / "bad.jsonl"
            bad.write_text("\n".join(lines[:len(lines) // 2] + [line] + lines[len(lines) // 2 + 1:]) + "\n",
                           encoding="utf-8")
            print(f"{what} line in the middle:")
            for kind in ("ours", "datasets"):
                r = in_subprocess(kind, bad, work / f"bad-{kind}-{len(what)}")
                print(f"  {kind:<18} rows {r.get('rows', '-')}" +
                      (f", rejected {r['rejected']}" if "rejected" in r else "") +
                      (f"  {r['error']}" if "error" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
