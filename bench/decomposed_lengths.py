"""Solution lengths in tokens per family and style (issue 27): what `tokenize.seq_length` a style needs.

    python bench/decomposed_lengths.py                      # generated records (equal mix) + the real sample
    python bench/decomposed_lengths.py --tokenizer PATH     # also a second tokenizer (a folder or tokenizer.json)

For every Chinese record: the worked solution in each style, its token count under SmolLM2's tokenizer (the
packaged GGUF, loaded as the pipeline loads it) and the whole training row (alpaca prompt + solution + EOS, as
the tokenize stage builds it). Prints, per family: the share rewritten in the decomposed style (the rest fall
back to the steps style), the median / 95th percentile / max of solution tokens, and the share of rows that
fit 256, 384 and 512 tokens.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "contest_sample.jsonl"
STYLES = ("steps", "calculator", "decomposed")
LIMITS = (256, 384, 512)


def pct(values: list[int], q: float) -> int:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(records: list[tuple[str, str]], tokenizers: dict) -> dict:
    from mathlora.modeling.templates import render_prompt
    from mathlora.arith.worked import rewrite_solution

    out: dict = defaultdict(lambda: defaultdict(list))
    fallback: dict = defaultdict(int)
    for problem, solution in records:
        for style in STYLES:
            r = rewrite_solution(problem, solution, style)
            if r.status != "rewritten":
                continue
            if style == "decomposed" and r.fallback:
                fallback[r.family] += 1
            for name, tok in tokenizers.items():
                sol = len(tok(r.solution, add_special_tokens=False)["input_ids"])
                prompt = len(tok(render_prompt("alpaca", problem), add_special_tokens=False)["input_ids"])
                out[(name, style, r.family)]["solution"].append(sol)
                out[(name, style, r.family)]["row"].append(sol + prompt + 1)
    return {"lengths": out, "fallback": fallback}


def report(title: str, result: dict, tokenizers: dict) -> list[dict]:
    rows = []
    for name in tokenizers:
        print(f"\n== {title}: {name}")
        print(f"{'family':<18} {'style':<11} {'n':>5} {'decomposed':>10} {'median':>6} {'p95':>5} {'max':>5} "
              + " ".join(f"{'fit' + str(n):>7}" for n in LIMITS))
        families = sorted({f for (t, s, f) in result["lengths"] if t == name})
        for family in families:
            for style in STYLES:
                data = result["lengths"].get((name, style, family))
                if not data:
                    continue
                sol, row = data["solution"], data["row"]
                share = "" if style != "decomposed" else \
                    f"{100 * (1 - result['fallback'][family] / len(sol)):.0f}%"
                fits = [sum(r <= n for r in row) / len(row) for n in LIMITS]
                print(f"{family:<18} {style:<11} {len(sol):>5} {share:>10} {statistics.median(sol):>6.0f} "
                      f"{pct(sol, 0.95):>5} {max(sol):>5} " + " ".join(f"{100 * f:>6.1f}%" for f in fits))
                rows.append({"set": title, "tokenizer": name, "family": family, "style": style, "n": len(sol),
                             "decomposed_share": share, "median": statistics.median(sol), "p95": pct(sol, 0.95),
                             "max": max(sol), "row_max": max(row),
                             "fits": {n: round(f, 4) for n, f in zip(LIMITS, fits)}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2800, help="generated records (equal mix)")
    ap.add_argument("--tokenizer", action="append", default=[], help="another tokenizer: a folder or tokenizer.json")
    args = ap.parse_args()
    from mathlora.modeling.models import load_tokenizer
    from mathlora.synth.competition import generate

    tokenizers = {"SmolLM2": load_tokenizer("smollm2-135m-instruct")}
    for spec in args.tokenizer:
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        tokenizers[spec] = (PreTrainedTokenizerFast(tokenizer_file=spec) if spec.endswith(".json")
                            else AutoTokenizer.from_pretrained(spec))
    generated = [(r["problem"], r["solution"]) for r in generate(args.count, 0, mix="equal")
                 if r["type"] != "english_math"]
    rows = report("generated (equal mix)", measure(generated, tokenizers), tokenizers)
    if SAMPLE.is_file():
        sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
        real = [(r["problem"], r["solution"]) for r in sample if re.search(r"[\u4e00-\u9fff]", r["problem"])]
        rows += report("real sample", measure(real, tokenizers), tokenizers)
    print(json.dumps({"bench": "decomposed_lengths", "rows": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
