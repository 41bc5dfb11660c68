"""The run report: ``report.md`` and ``report.html`` with PNG plots in ``plots/``, from a run folder's artifacts.

It reads only what the stages wrote (manifest, sample table, token stats, training metrics, the evaluations'
scores and predictions, the held-out problems), so it can be rebuilt at any time with ``mathlora report
--run RUN_DIR``; missing pieces are skipped. What it shows:

* the headline accuracies (base and fine-tuned, with and without the calculator) with Wilson 95% intervals;
* accuracy per problem family and per difficulty level, all four runs plotted side by side. A held-out
  problem's level is the heuristic judge's (``mathlora.label.heuristic``, the judge of ``label.judge:
  heuristic``): the run's judge rates only the training records, never the held-out set;
* accuracy over training steps when ``eval.checkpoints`` scored every checkpoint;
* the fine-tuned model's wrong answers beside the base model's, and example completions side by side. The
  per-problem views re-grade the predictions with ``mathlora.evaluate.math_grading`` under the tolerances and
  scope recorded in ``math.json`` (and are left out when the re-grading disagrees with it);
* retention, the run's settings, stage times, library versions, where the artifacts are and how to load them.

Numbers are rounded for reading; every text a model or a user wrote is escaped (Markdown and HTML), and a
multi-line completion stays inside its table cell. Plots use a font stack with CJK fallbacks (the first
installed of ``CJK_FONTS``), so Chinese family names render where such a font exists and fall back silently
where none does.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import read_json_document, read_jsonl
from mathlora.report.scores import RunScores
from mathlora.run_dir.atomic import write_text_atomic
from mathlora.run_dir.manifest import Manifest
from mathlora.modeling.tracking import MLFLOW_DIR, WANDB_DIR
from mathlora.report.grading import Run, _graded, problem_levels, report_runs
from mathlora.report.plots import _save, accuracy_figure, checkpoints_figure, plot_style
from mathlora.report.render import CSS, Doc, snippet_new_tokens
from mathlora.report.sections import _configuration, _data_sections, _math, _retention, _summary, _timings, _training
from mathlora.report.usage import base_identity, base_words, generate_lines, load_base_lines, prompt_lines
from mathlora.modeling.templates import TEMPLATES


# -- reading ----------------------------------------------------------------------------------------------------


def _load(path: Path):
    """An artifact through ``mathlora.run_dir.records`` (None when the stage did not write it)."""
    if not path.exists():
        return None
    if path.suffix == ".jsonl":
        return list(read_jsonl(path, path.name))
    return read_json_document(path, path.name)


# -- the report -------------------------------------------------------------------------------------------------


def _relative(lay: RunLayout, path: Path) -> str:
    return path.relative_to(lay.root).as_posix()


def _plots(lay: RunLayout, data: dict) -> dict[str, str]:
    """Draw the plots that have data; returns name -> path relative to the run folder."""
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    plots = lay.plots

    def save(name: str, fig) -> None:
        _save(fig, plots / f"{name}.png")
        out[name] = _relative(lay, plots / f"{name}.png")

    dist = data.get("distribution")
    if dist:
        fig, ax = plt.subplots(figsize=(5, 3))
        levels = list(range(6))
        ax.bar(levels, [dist.get(str(k), dist.get(k, 0)) for k in levels], color="#4a7ab5")
        ax.set_xlabel("difficulty")
        ax.set_ylabel("records")
        ax.set_title("Difficulty labels")
        save("difficulty", fig)
    table = data.get("sample_rows")
    if table:
        fig, ax = plt.subplots(figsize=(5, 3))
        x = range(len(table))
        ax.bar([i - 0.2 for i in x], [r["requested"] for r in table], width=0.4, label="requested")
        ax.bar([i + 0.2 for i in x], [r["drawn"] for r in table], width=0.4, label="drawn")
        ax.set_xticks(list(x), [str(r["level"]) for r in table])
        ax.set_xlabel("difficulty level")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, title="Stratified sample",
                  alignment="left")
        save("sample", fig)
    hist = (data.get("tokens") or {}).get("length_histogram")
    if hist:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar([(b["from"] + b["to"]) / 2 for b in hist], [b["count"] for b in hist],
               width=(hist[0]["to"] - hist[0]["from"] + 1) * 0.9, color="#6a9f58")
        ax.set_xlabel("tokens per record")
        ax.set_ylabel("records")
        ax.set_title("Token lengths")
        save("lengths", fig)
    metrics = [m for m in data.get("metrics") or [] if isinstance(m.get("step"), int)]
    if metrics:
        steps = [m["step"] for m in metrics]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
        a1.plot(steps, [m.get("loss") for m in metrics], color="#b5544a")
        a1.set_xlabel("step")
        a1.set_title("Training loss")
        a2.plot(steps, [m.get("lr") for m in metrics], color="#4a7ab5")
        a2.set_xlabel("step")
        a2.set_title("Learning rate")
        save("training", fig)
    runs: list[Run] = data["runs"]
    families = data["families"]
    if runs and families:
        fig, _ = accuracy_figure(["ALL", *families], [
            (r.name, [r.report.get("accuracy"), *[(r.report.get("per_type", {}).get(f) or {}).get("accuracy")
                                                  for f in families]]) for r in runs],
            "Math accuracy by family, held-out set")
        save("accuracy", fig)
    by_level = data["by_level"]
    if by_level:
        graded = [r for r in runs if r.items is not None]  # the runs _level_rows scored, in order
        fig, _ = accuracy_figure([f"level {lv} (n={n})" for lv, n, _ in by_level],
                                 [(r.name, [accs[i] for _, _, accs in by_level]) for i, r in enumerate(graded)],
                                 "Math accuracy by difficulty level (heuristic judge)")
        save("levels", fig)
    rows = data["checkpoint_rows"]
    if rows:
        base = [(r.name, r.report["accuracy"]) for r in runs if r.which == "base"
                and isinstance(r.report.get("accuracy"), (int, float))]
        fig, _ = checkpoints_figure(rows, base, data["calculator"])
        save("checkpoints", fig)
    return out


def _level_rows(runs: list[Run], levels: dict[str, int]) -> list[tuple[int, int, list[float | None]]]:
    """(level, problems, accuracy of each re-graded run) per difficulty level present."""
    graded = [r for r in runs if r.items is not None]
    if not graded or not levels:
        return []
    ref = _graded(graded[-1].items)
    present = sorted({levels[k] for k in ref if k in levels})
    rows = []
    for lv in present:
        ids = [k for k in ref if levels.get(k) == lv]
        accs = []
        for r in graded:
            items = _graded(r.items)
            scored = [items[k] for k in ids if k in items]
            accs.append(sum(i.correct for i in scored) / len(scored) if scored else None)
        rows.append((lv, len(ids), accs))
    return rows


def _versions(manifest: dict) -> list[list[str]]:
    """Library versions: the run's record in the manifest where it has one, else what is installed now."""
    recorded = dict(manifest.get("versions") or {}) if isinstance(manifest.get("versions"), dict) else {}
    for key in ("mathlora_version", "python", "torch", "transformers", "peft"):
        if manifest.get(key) is not None:
            recorded.setdefault(key.removesuffix("_version"), manifest[key])
    rows = [[name, str(value), "recorded by the run"] for name, value in recorded.items()]
    runtime = manifest.get("runtime") if isinstance(manifest.get("runtime"), dict) else {}
    if runtime.get("device"):
        where = " ".join(str(runtime[k]) for k in ("device", "device_name", "precision") if runtime.get(k))
        rows.append(["device", where, "recorded by the run"])
    for package in ("torch", "transformers", "peft", "huggingface-hub", "datasets", "matplotlib"):
        if package in recorded or package.replace("-", "_") in recorded:
            continue
        try:
            rows.append([package, importlib.metadata.version(package), "installed when the report was built"])
        except importlib.metadata.PackageNotFoundError:
            continue
    return rows


def _artifacts(lay: RunLayout) -> list[list[str]]:
    found = [
        (lay.train_adapter, "the LoRA adapter (peft format)"),
        (lay.merged, "the adapter merged into the base model: a plain transformers folder"),
        (lay.train_checkpoints, "every checkpoint: adapter and full training state (resume)"),
        (lay.eval("base").root, "the base model's predictions and scores"),
        (lay.eval("tuned").root, "the fine-tuned model's predictions and scores"),
        (lay.eval_checkpoints, "each checkpoint's predictions and scores"),
        (lay.train_metrics, "training metrics, one JSON line per logged step"),
        (lay.train_tensorboard, "TensorBoard logs (tensorboard --logdir)"),
        (lay.train / MLFLOW_DIR, "the MLflow file store (train.report_to: mlflow)"),
        (lay.train / WANDB_DIR, "the W&B run folder (train.report_to: wandb; offline: wandb sync uploads it)"),
        (lay.tokens, "the training tokens (Parquet) and their statistics"),
        (lay.config, "the resolved config: `mathlora run --config` reruns it"),
        (lay.manifest, "per stage: fingerprint, outputs, counts, seconds; library versions, device"),
        (lay.run_log, "what each mathlora run printed"),
    ]
    return [[_relative(lay, p) + ("/" if p.is_dir() else ""), what] for p, what in found if p.exists()]


def _usage(doc: Doc, lay: RunLayout, cfg: dict) -> None:
    """"How to use these artifacts": the commands and the Python that load them."""

    run = lay.root.as_posix()
    calculator = bool((cfg.get("eval") or {}).get("calculator"))
    problem = "计算 1.5 + 2.25 等于多少？"
    doc.p("From the shell, with this run's model, prompt template and solution style"
          + (" (the calculator on, as in the evaluation):" if calculator else ":"))
    doc.code(f'mathlora ask --run {run} "{problem}"\n'
             f"mathlora serve --run {run} --port 8080    # an OpenAI-compatible endpoint: /v1/chat/completions\n"
             f"mathlora report --run {run}               # rebuild this report", "bash")
    merged = f"{run}/{_relative(lay, lay.merged)}"
    lines = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
             f'tok = AutoTokenizer.from_pretrained("{merged}")',
             f'model = AutoModelForCausalLM.from_pretrained("{merged}")',
             *prompt_lines(TEMPLATES.get(str(cfg.get("template"))), problem),
             *generate_lines(new_tokens=snippet_new_tokens(cfg.get("eval")), calculator=calculator)]
    if lay.merged.exists():
        doc.p(f"The merged model in plain transformers ({_relative(lay, lay.merged)}/ needs no peft):")
        doc.code("\n".join(lines), "python")
    model = str(cfg.get("model"))
    identity = base_identity(model)
    doc.p(f"The adapter with peft, on the base model it was trained on ({base_words(model, identity)}):")
    doc.code("\n".join(["from peft import PeftModel", "from transformers import AutoModelForCausalLM", "",
                        *load_base_lines(model, identity),
                        f'model = PeftModel.from_pretrained(base, "{run}/{_relative(lay, lay.train_adapter)}")']),
             "python")
    doc.p("On vLLM: serve the merged folder (or the base with the adapter as a LoRA module)"
          + (", and put mathlora serve in front of it for the calculator:" if calculator else ":"))
    vllm = f"vllm serve {merged} --port 8000"
    if calculator:
        vllm += (f" &\nmathlora serve --run {run} --upstream http://127.0.0.1:8000/v1 --served-model {merged}"
                 " --port 8080")
    doc.code(vllm, "bash")


def build_report(run_dir: str | os.PathLike) -> dict:
    lay = RunLayout(run_dir)
    manifest = Manifest(lay).read()
    scores = RunScores.read(lay.root)
    stages = manifest.get("stages", {})
    cfg = manifest.get("config", {}) if isinstance(manifest.get("config"), dict) else {}
    calculator = bool((cfg.get("eval") or {}).get("calculator")) or bool(
        scores.base_math_nocalc or scores.tuned_math_nocalc)
    sample = _load(lay.sample_table) or {}
    runs = report_runs(lay, scores, calculator)
    test_records = _load(lay.test_records) if lay.test_records.exists() else None
    levels = problem_levels(test_records)
    families = sorted({t for r in runs for t in (r.report.get("per_type") or {})})
    data = {
        "distribution": (stages.get("label", {}).get("counts") or {}).get("distribution"),
        "sample_rows": sample.get("rows") if isinstance(sample, dict) else None,
        "tokens": _load(lay.tokens_stats),
        "metrics": _load(lay.train_metrics),
        "train": _load(lay.train_summary),
        "runs": runs, "families": families, "by_level": _level_rows(runs, levels),
        "checkpoint_rows": scores.checkpoint_rows(), "calculator": calculator,
        "checkpoint_skipped": [s for s in (scores.checkpoints or {}).get("skipped") or [] if isinstance(s, dict)],
    }
    with plot_style():
        plots = _plots(lay, data)

    doc = Doc()
    doc.h("mathlora run report", 1)
    _summary(doc, scores, runs, stages)
    _configuration(doc, cfg, data["train"])
    _data_sections(doc, stages, data, plots)
    _training(doc, data["train"], plots)
    _math(doc, lay, runs, data, levels, test_records, plots, cfg)
    _retention(doc, scores)
    doc.h("Where the artifacts are")
    doc.p(f"Run folder: {lay.root}")
    doc.table(["path", "what"], _artifacts(lay))
    doc.h("How to use these artifacts")
    _usage(doc, lay, cfg)
    _timings(doc, stages)
    doc.h("Library versions")
    doc.table(["library", "version", "source"], _versions(manifest))

    md = "\n".join(doc.md) + "\n"
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>mathlora report</title><style>" + CSS
            + "</style></head><body>" + "\n".join(doc.html) + "</body></html>\n")
    write_text_atomic(lay.report_md, md)
    write_text_atomic(lay.report_html, page)
    return {"report_html": str(lay.report_html), "report_md": str(lay.report_md), "plots": len(plots)}
