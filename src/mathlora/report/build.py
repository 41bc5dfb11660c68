"""The run report: ``report.md`` and ``report.html`` with PNG plots in ``plots/``, from a run folder's artifacts.

It reads only what the stages wrote (manifest, sample table, token stats, training metrics, evaluation
results), so it can be rebuilt at any time with ``mathlora report RUN_DIR``; missing pieces are skipped.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from mathlora.layout import RunLayout
from mathlora.records import read_json_document, read_jsonl
from mathlora.report.scores import RunScores, retention_word
from mathlora.run_dir.manifest import Manifest
from mathlora.run_dir.atomic import atomic_path, write_text_atomic


def _load(path: Path):
    """An artifact through ``mathlora.records`` (None when the stage did not write it)."""
    if not path.exists():
        return None
    if path.suffix == ".jsonl":
        return list(read_jsonl(path, path.name))
    return read_json_document(path, path.name)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


class Doc:
    """Builds the same content as Markdown and HTML."""

    def __init__(self):
        self.md: list[str] = []
        self.html: list[str] = []

    def h(self, text: str, level: int = 2) -> None:
        self.md.append(f"\n{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list]) -> None:
        self.md.append("| " + " | ".join(header) + " |")
        self.md.append("|" + "---|" * len(header))
        for r in rows:
            self.md.append("| " + " | ".join(md_cell(c) for c in r) + " |")
        self.md.append("")
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def img(self, rel: str, alt: str) -> None:
        self.md.append(f"![{alt}]({rel})\n")
        self.html.append(f'<img src="{html.escape(rel)}" alt="{html.escape(alt)}">')


def md_cell(value) -> str:
    """``value`` as one Markdown table cell: a model's text cannot end the row, open a new one or inject HTML."""
    text = " ".join(str(value).split())
    return html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)


def _plots(lay: RunLayout, data: dict) -> dict[str, str]:
    """Draw the plots that have data; returns name -> path relative to the run folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    plots = lay.plots
    dist = data.get("distribution")
    if dist:
        fig, ax = plt.subplots(figsize=(5, 3))
        levels = list(range(6))
        ax.bar(levels, [dist.get(str(k), dist.get(k, 0)) for k in levels], color="#4a7ab5")
        ax.set_xlabel("difficulty")
        ax.set_ylabel("records")
        ax.set_title("Difficulty labels")
        _save(fig, plots / "difficulty.png")
        out["difficulty"] = (plots / "difficulty.png").relative_to(lay.root).as_posix()
    table = data.get("sample_rows")
    if table:
        fig, ax = plt.subplots(figsize=(5, 3))
        x = range(len(table))
        ax.bar([i - 0.2 for i in x], [r["requested"] for r in table], width=0.4, label="requested")
        ax.bar([i + 0.2 for i in x], [r["drawn"] for r in table], width=0.4, label="drawn")
        ax.set_xticks(list(x), [str(r["level"]) for r in table])
        ax.set_xlabel("difficulty level")
        ax.legend()
        ax.set_title("Stratified sample")
        _save(fig, plots / "sample.png")
        out["sample"] = (plots / "sample.png").relative_to(lay.root).as_posix()
    hist = (data.get("tokens") or {}).get("length_histogram")
    if hist:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar([(b["from"] + b["to"]) / 2 for b in hist], [b["count"] for b in hist],
               width=(hist[0]["to"] - hist[0]["from"] + 1) * 0.9, color="#6a9f58")
        ax.set_xlabel("tokens per record")
        ax.set_ylabel("records")
        ax.set_title("Token lengths")
        _save(fig, plots / "lengths.png")
        out["lengths"] = (plots / "lengths.png").relative_to(lay.root).as_posix()
    metrics = data.get("metrics")
    if metrics:
        steps = [m["step"] for m in metrics]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
        a1.plot(steps, [m.get("loss") for m in metrics], color="#b5544a")
        a1.set_xlabel("step")
        a1.set_title("Training loss")
        a2.plot(steps, [m.get("lr") for m in metrics], color="#4a7ab5")
        a2.set_xlabel("step")
        a2.set_title("Learning rate")
        _save(fig, plots / "training.png")
        out["training"] = (plots / "training.png").relative_to(lay.root).as_posix()
    base, tuned = data.get("base_math"), data.get("tuned_math")
    if base and tuned:
        types = sorted(set(base.get("per_type", {})) | set(tuned.get("per_type", {})))
        fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(types) + 2), 3.5))
        x = range(len(types) + 1)
        b = [base["accuracy"]] + [base["per_type"].get(t, {}).get("accuracy", 0) for t in types]
        t_ = [tuned["accuracy"]] + [tuned["per_type"].get(t, {}).get("accuracy", 0) for t in types]
        ax.bar([i - 0.2 for i in x], [100 * v for v in b], width=0.4, label="base")
        ax.bar([i + 0.2 for i in x], [100 * v for v in t_], width=0.4, label="fine-tuned")
        ax.set_xticks(list(x), ["ALL"] + types, rotation=45, ha="right")
        ax.set_ylabel("accuracy %")
        ax.legend()
        ax.set_title("Math accuracy, held-out test set")
        _save(fig, plots / "accuracy.png")
        out["accuracy"] = (plots / "accuracy.png").relative_to(lay.root).as_posix()
    return out


def build_report(run_dir: str | os.PathLike) -> dict:
    lay = RunLayout(run_dir)
    manifest = Manifest(lay).read()
    scores = RunScores.read(lay.root)
    stages = manifest.get("stages", {})
    sample = _load(lay.sample_table) or {}
    data = {
        "distribution": (stages.get("label", {}).get("counts") or {}).get("distribution"),
        "sample_rows": sample.get("rows") if isinstance(sample, dict) else None,
        "tokens": _load(lay.tokens_stats),
        "metrics": _load(lay.train_metrics),
        **{name: getattr(scores, name) for name in ("base_math", "tuned_math", "base_math_nocalc",
                                                    "tuned_math_nocalc", "base_squad", "tuned_squad")},
        "train": _load(lay.train_summary),
    }
    plots = _plots(lay, data)
    doc = Doc()
    doc.h("mathlora run report", 1)
    cfg = manifest.get("config", {})
    base_math, tuned_math = data["base_math"], data["tuned_math"]
    tuned_squad = data["tuned_squad"] or {}
    retention = tuned_squad.get("retention")
    if base_math and tuned_math:
        verdict = ("n/a" if not retention else
                   f"{retention_word(retention)} (keep >= {retention['keep']:.0%} of base F1 and EM)")
        plain = (f" With the calculator; without it {_pct(data['base_math_nocalc']['accuracy'])} -> "
                 f"{_pct(data['tuned_math_nocalc']['accuracy'])}."
                 if data["base_math_nocalc"] and data["tuned_math_nocalc"] else "")
        doc.p(f"Math accuracy {_pct(base_math['accuracy'])} -> {_pct(tuned_math['accuracy'])} "
              f"({100 * (tuned_math['accuracy'] - base_math['accuracy']):+.1f} points) on {tuned_math['count']} "
              f"held-out problems; retention {verdict}.{plain}")

    doc.h("Configuration")
    lora, train = cfg.get("lora", {}), cfg.get("train", {})
    runtime, trained = cfg.get("runtime", {}), data["train"] or {}
    doc.table(["setting", "value"], [
        ["model", cfg.get("model")], ["template", cfg.get("template")], ["seed", cfg.get("seed")],
        ["solution style", f"{cfg.get('solution_style', 'answer')}"
                           f"{' (calculator-assisted decoding)' if cfg.get('eval', {}).get('calculator') else ''}"],
        ["judge", cfg.get("label", {}).get("judge")],
        ["sample", f"{cfg.get('sample', {}).get('total')} records, ratios {cfg.get('sample', {}).get('ratios')}"],
        ["decimals", f"{cfg.get('normalize', {}).get('decimals')} ({cfg.get('normalize', {}).get('mode')})"],
        ["seq_length", cfg.get("tokenize", {}).get("seq_length")],
        ["LoRA", f"r={lora.get('r')} alpha={lora.get('alpha')} dropout={lora.get('dropout')} "
                 f"targets={','.join(lora.get('target_modules', []))}"],
        ["optimizer", f"AdamW betas={train.get('betas')} eps={train.get('eps')} wd={train.get('weight_decay')}"],
        ["schedule", f"cosine lr={train.get('lr')} -> {train.get('lr_end')}, warmup {train.get('warmup_ratio')}"],
        ["batch", f"global {train.get('global_batch_size')} (micro {train.get('micro_batch_size')}), "
                  f"epochs {train.get('epochs')}"],
        ["runtime", f"trained on {trained.get('device')} in {trained.get('dtype')}" if trained else
                    f"device {runtime.get('device')}, precision {runtime.get('precision')}"],
    ])

    doc.h("Data funnel")
    ingest = stages.get("ingest", {}).get("counts", {})
    label = stages.get("label", {}).get("counts", {})
    tokens = data["tokens"] or {}
    doc.table(["step", "records"], [
        ["read", ingest.get("read", "n/a")], ["rejected", ingest.get("rejected", "n/a")],
        ["duplicates", ingest.get("duplicates", "n/a")], ["kept", ingest.get("kept", "n/a")],
        ["labeled", label.get("labeled", "n/a")], ["label failures", label.get("failed", "n/a")],
        ["sampled", sum(r["drawn"] for r in data["sample_rows"]) if data["sample_rows"] else "n/a"],
        ["tokenized", tokens.get("kept", "n/a")], ["truncated", tokens.get("truncated", "n/a")],
        ["dropped (too long)", tokens.get("dropped", "n/a")], ["rejected (no learnable token)", tokens.get("rejected", "n/a")],
    ])
    reasons = ingest.get("reject_reasons") or {}
    if reasons:
        doc.table(["reject reason", "lines"], sorted(([k, v] for k, v in reasons.items()), key=lambda r: -r[1]))

    doc.h("Difficulty and sampling")
    if "difficulty" in plots:
        doc.img(plots["difficulty"], "difficulty histogram")
    if data["sample_rows"]:
        doc.table(["level", "available", "requested", "drawn"],
                  [[r["level"], r["available"], r["requested"], r["drawn"]] for r in data["sample_rows"]])
        doc.img(plots["sample"], "sampled vs requested")
    if tokens:
        doc.h("Tokens")
        doc.p(f"{tokens.get('kept')} records, {tokens.get('tokens')} tokens ({tokens.get('learnable_tokens')} "
              f"learnable), mean length {tokens.get('mean_length')}, max {tokens.get('max_length')} of "
              f"{tokens.get('seq_length')}.")
        if "lengths" in plots:
            doc.img(plots["lengths"], "token length histogram")

    tr = data["train"]
    if tr:
        doc.h("Training")
        doc.table(["metric", "value"], [
            ["steps", tr.get("steps")], ["epochs", tr.get("epochs")], ["final loss", tr.get("final_loss")],
            ["learnable tokens", tr.get("learnable_tokens")], ["learnable tokens/s", tr.get("tokens_per_s")],
            ["seconds", tr.get("seconds")], ["trainable parameters", tr.get("ratio_line")],
        ])
        if "training" in plots:
            doc.img(plots["training"], "loss and learning rate")

    if base_math and tuned_math:
        doc.h("Math accuracy (held-out)")
        types = sorted(set(base_math.get("per_type", {})) | set(tuned_math.get("per_type", {})))
        # with the calculator: base and fine-tuned each without and with it (the base gets the same tool)
        columns = ([("base", data["base_math_nocalc"]), ("base + calculator", base_math),
                    ("fine-tuned", data["tuned_math_nocalc"]), ("fine-tuned + calculator", tuned_math)]
                   if data["base_math_nocalc"] and data["tuned_math_nocalc"]
                   else [("base", base_math), ("fine-tuned", tuned_math)])

        def accuracy(report: dict, t: str | None):
            return report["accuracy"] if t is None else report["per_type"].get(t, {}).get("accuracy")

        rows = []
        for t in [None, *types]:
            count = tuned_math["count"] if t is None else tuned_math["per_type"].get(t, {}).get("count", 0)
            change = 100 * ((accuracy(tuned_math, t) or 0) - (accuracy(base_math, t) or 0))
            rows.append([t or "ALL", count, *[_pct(accuracy(r, t)) for _, r in columns], f"{change:+.1f}"])
        doc.table(["type", "problems", *[name for name, _ in columns], "change (points)"], rows)
        if "accuracy" in plots:
            doc.img(plots["accuracy"], "accuracy before and after")
        wrong = tuned_math.get("wrong_samples") or []
        if wrong:
            doc.table(["type", "predicted", "gold", "completion"],
                      [[w.get("type"), w.get("predicted"), w.get("gold_answer"), (w.get("completion") or "")[:80]]
                       for w in wrong[:8]])

    base_squad = data["base_squad"]
    if base_squad and tuned_squad:
        doc.h("Retention (reading comprehension)")
        keep = retention["keep"] if retention else None
        doc.table(["score", "base", "fine-tuned", "ratio", f"needed (>= {keep})" if keep else "needed"], [
            ["F1", f"{base_squad['f1']:.2f}", f"{tuned_squad['f1']:.2f}",
             retention.get("f1_ratio") if retention else "", "ok" if retention and retention["f1_ok"] else "FAIL"],
            ["EM", f"{base_squad['em']:.2f}", f"{tuned_squad['em']:.2f}",
             retention.get("em_ratio") if retention else "", "ok" if retention and retention["em_ok"] else "FAIL"],
        ])
        doc.p(f"{tuned_squad.get('count')} samples from {Path(str(tuned_squad.get('data', ''))).name}.")

    doc.h("Stage timings")
    doc.table(["stage", "seconds", "finished"],
              [[name, rec.get("seconds"), rec.get("finished_at")] for name, rec in stages.items()])

    md = "\n".join(doc.md) + "\n"
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>mathlora report</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;"
            "text-align:left}th{background:#f0f0f0}img{max-width:100%;margin:.5em 0}</style></head><body>"
            + "\n".join(doc.html) + "</body></html>\n")
    write_text_atomic(lay.report_md, md)
    write_text_atomic(lay.report_html, page)
    return {"report_html": str(lay.report_html), "report_md": str(lay.report_md), "plots": len(plots)}
