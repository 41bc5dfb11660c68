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

import html
import importlib.metadata
import logging
import math
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mathlora.evaluate.config import EvalConfig
from mathlora.errors import MathloraError
from mathlora.label import heuristic
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import read_json_document, read_jsonl
from mathlora.report.scores import RunScores, retention_word, wilson_interval
from mathlora.run_dir.atomic import atomic_path, write_text_atomic
from mathlora.run_dir.manifest import Manifest
from mathlora.tracking import MLFLOW_DIR, WANDB_DIR

# -- reading ----------------------------------------------------------------------------------------------------


def _load(path: Path):
    """An artifact through ``mathlora.run_dir.records`` (None when the stage did not write it)."""
    if not path.exists():
        return None
    if path.suffix == ".jsonl":
        return list(read_jsonl(path, path.name))
    return read_json_document(path, path.name)


# -- numbers for reading ----------------------------------------------------------------------------------------


def pct(x, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.927778`` -> ``92.8%`` (``n/a`` for None)."""
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def readable(x) -> str:
    """A value as a person reads it: ints with thousands separators, floats to 4 significant digits (whole
    floats without a fraction: ``16.0`` -> ``16``), None as ``n/a``, lists joined."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        if x == int(x) and abs(x) < 1e15:
            return f"{int(x):,}"
        if abs(x) >= 1e4:
            return f"{x:,.0f}"
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)):
        return ", ".join(readable(v) for v in x)
    return str(x)


def duration(seconds) -> str:
    """Seconds as ``1 h 2 min``, ``14 min 35 s``, ``19.7 s`` or ``0.04 s``."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        return "n/a"
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def interval_text(interval: tuple[float, float] | None) -> str:
    """A Wilson interval as ``88.0-95.8%``."""
    return "n/a" if interval is None else f"{100 * interval[0]:.1f}-{100 * interval[1]:.1f}%"


# -- Markdown and HTML ------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
_MD_LINE_START = re.compile(r"^(#|>|[+\-](?=\s)|\d+[.)](?=\s))")  # a heading, quote or list item
_ENTITY = re.compile(r"&(?=#?\w+;)")


def md_escape(text) -> str:
    """``text`` as literal Markdown on one line: tags (``<``) and entities cannot form, and emphasis, code,
    links, tables, math, headings, quotes and lists are neutralised with backslashes."""
    line = _ENTITY.sub("&amp;", " ".join(str(text).split())).replace("<", "&lt;")
    return _MD_LINE_START.sub(r"\\\1", _MD_SPECIAL.sub(r"\\\1", line))


MAX_CELL_LINES = 12


def clip(value, limit: int | None = None) -> str:
    """``value``'s non-blank lines; with ``limit``, at most that many characters and ``MAX_CELL_LINES`` lines,
    then an ellipsis (a model repeating one line fills no page)."""
    lines = [line.rstrip() for line in str(value).splitlines() if line.strip()]
    if limit is None:
        return "\n".join(lines)
    text = "\n".join(lines[:MAX_CELL_LINES])
    cut = len(text) > limit or len(lines) > MAX_CELL_LINES
    return (text[:limit].rstrip() + " …") if cut else text


def md_cell(value, limit: int | None = None) -> str:
    """``value`` as one Markdown table cell: a model's text cannot end the row, open a new one or inject HTML;
    its lines stay lines (``<br>``). ``limit``: ``clip``'s."""
    return "<br>".join(md_escape(line) for line in clip(value, limit).splitlines())


def _html_text(value, limit: int | None = None) -> str:
    return html.escape(clip(value, limit) if limit is not None else str(value))


class Doc:
    """Builds the same content as Markdown and HTML; every text is escaped for both."""

    def __init__(self):
        self.md: list[str] = []
        self.html: list[str] = []

    def h(self, text: str, level: int = 2) -> None:
        self.md.append(f"\n{'#' * level} {md_escape(text)}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.md.append(md_escape(text) + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def bullets(self, items: list[str]) -> None:
        self.md.append("\n".join(f"- {md_escape(item)}" for item in items) + "\n")
        self.html.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>")

    def code(self, text: str, lang: str = "") -> None:
        fence = "~~~~" if "```" in text else "```"
        self.md.append(f"{fence}{lang}\n{text}\n{fence}\n")
        self.html.append(f"<pre><code>{html.escape(text)}</code></pre>")

    def table(self, header: list[str], rows: list[list], *, pre: frozenset[int] = frozenset(),
              mono: frozenset[int] = frozenset(), limit: int | None = None) -> None:
        """A table; columns in ``pre`` hold multi-line text (``<br>`` in Markdown, pre-wrapped in HTML; those
        also in ``mono``, a model's completions, in a monospace font), cut at ``limit`` characters."""
        self.md.append("| " + " | ".join(md_cell(h) for h in header) + " |")
        self.md.append("|" + "---|" * len(header))
        for r in rows:
            self.md.append("| " + " | ".join(md_cell(c, limit if i in pre else None) for i, c in enumerate(r))
                           + " |")
        self.md.append("")
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(
            f"<td class='{'pre mono' if i in mono else 'pre'}'>{_html_text(c, limit)}</td>" if i in pre
            else f"<td>{_html_text(c)}</td>"
            for i, c in enumerate(r)) + "</tr>" for r in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def img(self, rel: str, alt: str) -> None:
        self.md.append(f"![{md_escape(alt)}]({rel})\n")
        self.html.append(f'<img src="{html.escape(rel)}" alt="{html.escape(alt)}">')


# the page's font stack: system UI fonts, then CJK families (Chinese problems and family names), then generic
HTML_FONTS = ('system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", '
              '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Hiragino Sans GB", '
              '"Microsoft YaHei", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", sans-serif')
CSS = ("body{font-family:" + HTML_FONTS + ";max-width:1100px;margin:2em auto;padding:0 1em;color:#222;"
       "line-height:1.4}table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;"
       "padding:3px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}"
       "td.pre{white-space:pre-wrap;overflow-wrap:anywhere;min-width:5em;max-width:420px}td.mono{min-width:14em}td.mono{font-family:ui-monospace,"
       "\"DejaVu Sans Mono\",Menlo,Consolas,\"Noto Sans Mono CJK SC\",monospace;font-size:.85em}"
       "pre{background:#f6f6f6;padding:.6em;overflow-x:auto}img{max-width:100%;margin:.5em 0}")

# -- plots ------------------------------------------------------------------------------------------------------

# CJK families matplotlib may find, in order of preference; the first installed ones follow DejaVu Sans
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
             "Hiragino Sans GB", "Heiti SC", "AR PL UMing CN", "Droid Sans Fallback", "Arial Unicode MS")


_CJK_FILES = re.compile(r"(?i)notosanscjk|notoserifcjk|sourcehan|wqy|wenquanyi|droidsansfallback|uming|ukai|"
                        r"msyh|simhei|pingfang|hiragino")


def font_stack() -> list[str]:
    """Matplotlib's sans-serif list for the plots: DejaVu Sans (Latin, always there), then every installed CJK
    family of ``CJK_FONTS`` (matplotlib falls back glyph by glyph along the list). A CJK font installed after
    matplotlib built its font cache is found among the system's font files and added."""
    from matplotlib import font_manager

    def installed() -> set[str]:
        return {f.name for f in font_manager.fontManager.ttflist}

    if not installed() & set(CJK_FONTS):
        for path in font_manager.findSystemFonts():
            if _CJK_FILES.search(Path(path).name):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue  # a font file matplotlib cannot read: the next one
    found = installed()
    return ["DejaVu Sans", *[name for name in CJK_FONTS if name in found]]


@contextmanager
def plot_style():
    """The plots' settings, for the duration of a block: the Agg backend, the ``font_stack`` (CJK fallbacks),
    and a glyph no installed font has falling back silently (never a warning per character)."""
    import matplotlib

    matplotlib.use("Agg")
    stack = font_stack()  # named in font.family itself: matplotlib falls back glyph by glyph only along that list
    fonts_log = logging.getLogger("matplotlib.font_manager")  # "Failed to find font weight ..." of a CJK family
    level = fonts_log.level
    fonts_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), matplotlib.rc_context({"font.family": stack, "font.sans-serif": stack}):
            warnings.filterwarnings("ignore", message=r"(?s).*[Gg]lyph.*missing from")
            yield
    finally:
        fonts_log.setLevel(level)


COLORS = {"base": "#9ecae1", "base + calculator": "#3182bd", "fine-tuned": "#fdae6b",
          "fine-tuned + calculator": "#e6550d"}


def accuracy_figure(labels: list[str], series: list[tuple[str, list[float | None]]], title: str):
    """Horizontal grouped bars, one group per label and one bar per series, each bar labelled with its
    percentage (a 0% bar shows its "0"), the legend above the axes where it covers no bar."""
    import matplotlib.pyplot as plt

    n = max(1, len(series))
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + len(labels) * (0.14 * n + 0.12)))
    height = 0.8 / n
    for j, (name, values) in enumerate(series):
        pos = [i + (j - (n - 1) / 2) * height for i in range(len(labels))]
        bars = ax.barh(pos, [100 * v if v is not None else 0 for v in values], height=height * 0.92,
                       color=COLORS.get(name), label=name)
        ax.bar_label(bars, labels=["n/a" if v is None else f"{100 * v:.0f}" for v in values], padding=2,
                     fontsize=7)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("accuracy %")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=min(n, 4), frameon=False, fontsize=8,
              title=title, title_fontsize=10, alignment="left")
    return fig, ax


def checkpoints_figure(rows: list[dict], base: list[tuple[str, float]], calculator: bool):
    """Accuracy over training steps (with its Wilson 95% band), the base model's accuracy as dashed lines."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    steps = [r["step"] for r in rows]
    runs = [("fine-tuned + calculator", ""), ("fine-tuned", "_nocalc")] if calculator else [("fine-tuned", "")]
    for name, tag in runs:
        acc = [r.get(f"accuracy{tag}") for r in rows]
        if all(a is None for a in acc):
            continue
        color = COLORS[name]
        ax.plot(steps, [100 * a if a is not None else float("nan") for a in acc], marker="o", ms=3,
                color=color, label=name)
        bands = [wilson_interval(r[f"correct{tag}"], r["count"]) if isinstance(r.get(f"correct{tag}"), int)
                 and isinstance(r.get("count"), int) else None for r in rows]
        if all(b is not None for b in bands):
            ax.fill_between(steps, [100 * b[0] for b in bands], [100 * b[1] for b in bands], color=color,
                            alpha=0.15, linewidth=0)
    for name, value in base:
        ax.axhline(100 * value, color=COLORS[name], linestyle="--", linewidth=1, label=name)
    ax.set_ylim(0, 105)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy %")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4, frameon=False, fontsize=8,
              title="Math accuracy per checkpoint (95% band)", title_fontsize=10, alignment="left")
    return fig, ax


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)


# -- per-problem grading and levels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One math evaluation as the report shows it: its name, its scores and (when re-graded) its items."""
    name: str
    which: str  # base | tuned
    calculator: bool
    report: dict
    items: dict | None  # id -> GradedItem (None: predictions missing or not re-gradable)


def regrade(predictions: Path, report: dict):
    """The per-problem grades of ``predictions`` under ``report``'s recorded rules (id -> ``GradedItem``); None
    when the file is missing or damaged, or when the grades disagree with the recorded count."""
    from mathlora.evaluate.math_grading import grade_predictions

    if not predictions.is_file() or not all(k in report for k in ("atol", "rtol", "scope")):
        return None
    try:
        items = grade_predictions(predictions, gold_path=report.get("gold"), atol=report["atol"],
                                  rtol=report["rtol"], scope=report["scope"])
    except (MathloraError, OSError):
        return None
    if sum(i.correct for i in items) != report.get("correct"):
        return None
    return {i.id: i for i in items}


def report_runs(lay: RunLayout, scores: RunScores, calculator: bool) -> list[Run]:
    """The math evaluations of the run, in the order the report shows them (the ones recorded)."""
    if calculator:
        wanted = [("base", "base", False), ("base + calculator", "base", True),
                  ("fine-tuned", "tuned", False), ("fine-tuned + calculator", "tuned", True)]
    else:
        wanted = [("base", "base", True), ("fine-tuned", "tuned", True)]  # the configured run: no calculator
    runs = []
    for name, which, with_calc in wanted:
        report = scores.math(which, calculator=with_calc)
        if report:
            tag = "" if with_calc else "_nocalc"
            items = regrade(lay.eval(which).math_files(tag)[0], report)
            runs.append(Run(name, which, calculator and with_calc, report, items))
    return runs


def problem_levels(records: list[dict] | None) -> dict[str, int]:
    """id -> difficulty 0-5 of each held-out problem, by the heuristic judge."""
    from mathlora.label.heuristic import heuristic_difficulty

    out = {}
    for rec in records or []:
        if isinstance(rec.get("problem"), str) and "id" in rec:
            out[str(rec["id"])] = heuristic_difficulty(rec["problem"], str(rec.get("solution") or ""))
    return out


def _graded(items: dict) -> dict:
    return {k: i for k, i in items.items() if i.status != "gold_unparsable"}


def pick_examples(base: dict, tuned: dict, order: list[str], per_kind: int = 2) -> list[tuple[str, str]]:
    """(kind, id) of example problems: fixed by fine-tuning, right in both, wrong in both, broken by it; up to
    ``per_kind`` of each, in the test set's order, a family at most once per kind."""
    kinds = {"fixed by fine-tuning": (False, True), "right before and after": (True, True),
             "still wrong": (False, False), "broken by fine-tuning": (True, False)}
    out = []
    for kind, (was, now) in kinds.items():
        families: set[str] = set()
        for key in order:
            b, t = base.get(key), tuned.get(key)
            if b is None or t is None or (b.correct, t.correct) != (was, now) or t.type in families:
                continue
            families.add(t.type)
            out.append((kind, key))
            if len(families) == per_kind:
                break
    return out


def spread_wrong(tuned: dict, order: list[str], limit: int) -> list[str]:
    """Ids of up to ``limit`` wrong answers, taken in turn from each family (one family cannot fill the list)."""
    by_family: dict[str, list[str]] = {}
    for key in order:
        item = tuned.get(key)
        if item is not None and not item.correct:
            by_family.setdefault(item.type, []).append(key)
    picked: list[str] = []
    while len(picked) < limit and any(by_family.values()):
        for family in sorted(by_family):
            if by_family[family] and len(picked) < limit:
                picked.append(by_family[family].pop(0))
    return picked


def _verdict(item) -> str:
    answer = item.predicted if item.predicted is not None else "(no answer)"
    return f"{'right' if item.correct else 'wrong'}: {answer}"


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
    from mathlora.adapters import hub_id
    from mathlora.models import split_hub_id
    from mathlora.templates import TEMPLATES

    run = lay.root.as_posix()
    calculator = bool((cfg.get("eval") or {}).get("calculator"))
    problem = "计算 1.5 + 2.25 等于多少？"
    doc.p("From the shell, with this run's model, prompt template and solution style"
          + (" (the calculator on, as in the evaluation):" if calculator else ":"))
    doc.code(f'mathlora ask --run {run} "{problem}"\n'
             f"mathlora serve --run {run} --port 8080    # an OpenAI-compatible endpoint: /v1/chat/completions\n"
             f"mathlora report --run {run}               # rebuild this report", "bash")
    template = TEMPLATES.get(str(cfg.get("template")))
    prompt = (f"prompt = {template.prompt.split('{problem}')[0]!r} + problem + "
              f"{template.prompt.split('{problem}', 1)[1]!r}" if template else "prompt = problem")
    merged = f"{run}/{_relative(lay, lay.merged)}"
    new_tokens = (cfg.get("eval") or {}).get("max_new_tokens", EvalConfig.model_fields["max_new_tokens"].default)
    lines = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
             f'tokenizer = AutoTokenizer.from_pretrained("{merged}")',
             f'model = AutoModelForCausalLM.from_pretrained("{merged}")',
             f'problem = "{problem}"',
             f"{prompt}  # the training prompt (template {cfg.get('template')})",
             'batch = tokenizer(prompt, return_tensors="pt")']
    if calculator:
        lines += ["# the model writes <<expr= and expects the calculator's value: force it as the evaluation did",
                  "from transformers import LogitsProcessorList",
                  "from mathlora.calculator_hf import CalculatorLogitsProcessor",
                  f"out = model.generate(**batch, max_new_tokens={new_tokens}"
                  ", do_sample=False,",
                  "                     logits_processor=LogitsProcessorList([CalculatorLogitsProcessor(tokenizer)]))"]
    else:
        lines += [f"out = model.generate(**batch, max_new_tokens={new_tokens}"
                  ", do_sample=False)"]
    lines += ['print(tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True))']
    if lay.merged.exists():
        doc.p(f"The merged model in plain transformers ({_relative(lay, lay.merged)}/ needs no peft):")
        doc.code("\n".join(lines), "python")
    model = str(cfg.get("model"))
    # the base as adapter_config.json names it (adapters.hub_id: the packaged model's repo, a Hub id, a cached
    # snapshot's repo), else the folder given; a pinned Hub revision is passed on
    repo = hub_id(model)
    pinned = split_hub_id(model) if repo and not Path(model).expanduser().exists() else None
    base = repo or (model if Path(model).is_dir() else "BASE_MODEL_FOLDER")
    revision = f', revision="{pinned[1]}"' if pinned and pinned[1] else ""
    note = ("" if base != "BASE_MODEL_FOLDER" else
            f"# BASE_MODEL_FOLDER: {model} as a transformers folder; a .gguf model is converted once:\n"
            f"#   python -c \"from mathlora.models import resolve_model_dir; print(resolve_model_dir('{model}'))\"\n")
    doc.p("The adapter with peft, on the base model:")
    doc.code("from peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n\n" + note +
             f'base = AutoModelForCausalLM.from_pretrained("{base}"{revision})\n'
             f'model = PeftModel.from_pretrained(base, "{run}/{_relative(lay, lay.train_adapter)}")', "python")
    doc.p("On vLLM: serve the merged folder (or the base with the adapter as a LoRA module)"
          + (", and put mathlora serve in front of it for the calculator:" if calculator else ":"))
    vllm = f"vllm serve {merged} --port 8000"
    if calculator:
        vllm += (f" &\nmathlora serve --run {run} --upstream http://127.0.0.1:8000/v1 --upstream-model {merged}"
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
    _math(doc, lay, runs, families, data, levels, test_records, plots, cfg)
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


def _total_seconds(stages: dict) -> float | None:
    seconds = [rec.get("seconds") for rec in stages.values() if isinstance(rec, dict)]
    seconds = [s for s in seconds if isinstance(s, (int, float)) and not isinstance(s, bool)]
    return sum(seconds) if seconds else None


def _summary(doc: Doc, scores: RunScores, runs: list[Run], stages: dict) -> None:
    base = next((r for r in reversed(runs) if r.which == "base"), None)
    tuned = next((r for r in reversed(runs) if r.which == "tuned"), None)
    if base and tuned:
        change = 100 * ((tuned.report.get("accuracy") or 0) - (base.report.get("accuracy") or 0))
        ret = scores.retention
        verdict = ("n/a" if not ret else
                   f"{retention_word(ret)} (keep >= {ret.get('keep', 0.9):.0%} of base F1 and EM)")
        doc.p(f"Math accuracy {pct(base.report.get('accuracy'))} -> {pct(tuned.report.get('accuracy'))} "
              f"({change:+.1f} points) on {readable(tuned.report.get('count'))} held-out problems"
              f"{' with the calculator' if tuned.calculator else ''}; retention {verdict}.")
    if runs:
        rows = []
        for r in runs:
            interval = wilson_interval(r.report.get("correct", 0), r.report.get("count", 0)) \
                if isinstance(r.report.get("correct"), int) and isinstance(r.report.get("count"), int) else None
            rows.append([r.name, pct(r.report.get("accuracy")), interval_text(interval),
                         f"{readable(r.report.get('correct'))} / {readable(r.report.get('count'))}"])
        doc.table(["model", "accuracy", "95% interval (Wilson)", "correct"], rows)
        count = (tuned or runs[-1]).report.get("count")
        if isinstance(count, int) and count > 0:
            half = 100 * 1.96 * math.sqrt(0.25 / count)
            doc.p(f"With {count} problems an accuracy is known to about ±{half:.0f} points at most (95%): "
                  "differences inside the intervals are noise.")
    total = _total_seconds(stages)
    if total is not None:
        doc.p(f"Total time: {duration(total)} (the stages' recorded times; see Stage timings).")


def _configuration(doc: Doc, cfg: dict, trained: dict | None) -> None:
    doc.h("Configuration")
    lora, train = cfg.get("lora", {}), cfg.get("train", {})
    runtime, trained = cfg.get("runtime", {}), trained or {}
    sample, normalize = cfg.get("sample", {}), cfg.get("normalize", {})
    doc.table(["setting", "value"], [
        ["model", readable(cfg.get("model"))], ["template", readable(cfg.get("template"))],
        ["seed", readable(cfg.get("seed"))],
        ["solution style", f"{readable(cfg.get('solution_style', 'answer'))}"
                           f"{' (calculator-assisted decoding)' if cfg.get('eval', {}).get('calculator') else ''}"],
        ["judge", readable(cfg.get("label", {}).get("judge"))],
        ["sample", f"{readable(sample.get('total'))} records, ratios {readable(sample.get('ratios'))}"],
        ["decimals", f"{readable(normalize.get('decimals'))} ({readable(normalize.get('mode'))})"],
        ["seq_length", readable(cfg.get("tokenize", {}).get("seq_length"))],
        ["LoRA", f"r={readable(lora.get('r'))} alpha={readable(lora.get('alpha'))} "
                 f"dropout={readable(lora.get('dropout'))} targets={','.join(lora.get('target_modules', []))}"],
        ["optimizer", f"AdamW betas=({readable(train.get('betas'))}) eps={readable(train.get('eps'))} "
                      f"wd={readable(train.get('weight_decay'))}"],
        ["schedule", f"cosine lr={readable(train.get('lr'))} -> {readable(train.get('lr_end'))}, warmup "
                     f"{readable(train.get('warmup_ratio'))}"],
        ["batch", f"global {readable(train.get('global_batch_size'))} (micro "
                  f"{readable(train.get('micro_batch_size'))}), epochs {readable(train.get('epochs'))}"],
        ["runtime", f"trained on {readable(trained.get('device'))} in {readable(trained.get('dtype'))}" if trained
                    else f"device {readable(runtime.get('device'))}, precision {readable(runtime.get('precision'))}"],
    ])


def _data_sections(doc: Doc, stages: dict, data: dict, plots: dict) -> None:
    doc.h("Data funnel")
    ingest = stages.get("ingest", {}).get("counts", {})
    label = stages.get("label", {}).get("counts", {})
    tokens = data["tokens"] or {}
    doc.table(["step", "records"], [[name, readable(value)] for name, value in [
        ["read", ingest.get("read")], ["rejected", ingest.get("rejected")],
        ["duplicates", ingest.get("duplicates")], ["kept", ingest.get("kept")],
        ["labeled", label.get("labeled")], ["label failures", label.get("failed")],
        ["sampled", sum(r["drawn"] for r in data["sample_rows"]) if data["sample_rows"] else None],
        ["tokenized", tokens.get("kept")], ["truncated", tokens.get("truncated")],
        ["dropped (too long)", tokens.get("dropped")], ["rejected (no learnable token)", tokens.get("rejected")],
    ]])
    reasons = ingest.get("reject_reasons") or {}
    if reasons:
        doc.table(["reject reason", "lines"],
                  sorted(([k, readable(v)] for k, v in reasons.items()), key=lambda r: r[0]))

    doc.h("Difficulty and sampling")
    if "difficulty" in plots:
        doc.img(plots["difficulty"], "difficulty histogram")
    if data["sample_rows"]:
        doc.table(["level", "available", "requested", "drawn"],
                  [[r["level"], readable(r["available"]), readable(r["requested"]), readable(r["drawn"])]
                   for r in data["sample_rows"]])
        if "sample" in plots:
            doc.img(plots["sample"], "sampled vs requested")
    if tokens:
        doc.h("Tokens")
        doc.p(f"{readable(tokens.get('kept'))} records, {readable(tokens.get('tokens'))} tokens "
              f"({readable(tokens.get('learnable_tokens'))} learnable), mean length "
              f"{readable(tokens.get('mean_length'))}, max {readable(tokens.get('max_length'))} of "
              f"{readable(tokens.get('seq_length'))}.")
        if "lengths" in plots:
            doc.img(plots["lengths"], "token length histogram")


def _training(doc: Doc, tr: dict | None, plots: dict) -> None:
    if not tr:
        return
    doc.h("Training")
    doc.table(["metric", "value"], [
        ["steps", readable(tr.get("steps"))], ["epochs", readable(tr.get("epochs"))],
        ["final loss", readable(tr.get("final_loss"))], ["learnable tokens", readable(tr.get("learnable_tokens"))],
        ["learnable tokens/s", readable(tr.get("tokens_per_s"))], ["time", duration(tr.get("seconds"))],
        ["trainable parameters", readable(tr.get("ratio_line"))],
    ])
    if "training" in plots:
        doc.img(plots["training"], "loss and learning rate")


def _math(doc: Doc, lay: RunLayout, runs: list[Run], families: list[str], data: dict, levels: dict,
          test_records: list[dict] | None, plots: dict, cfg: dict) -> None:
    if not runs:
        return
    doc.h("Math accuracy by family (held-out)")
    base = next((r for r in reversed(runs) if r.which == "base"), None)
    tuned = next((r for r in reversed(runs) if r.which == "tuned"), None)

    def accuracy(report: dict, family: str | None):
        return report.get("accuracy") if family is None else (report.get("per_type", {}).get(family) or {}).get(
            "accuracy")

    rows = []
    ref = (tuned or runs[-1]).report
    for family in [None, *families]:
        count = ref.get("count") if family is None else (ref.get("per_type", {}).get(family) or {}).get("count", 0)
        change = (f"{100 * (accuracy(tuned.report, family) or 0) - 100 * (accuracy(base.report, family) or 0):+.1f}"
                  if base and tuned else "n/a")
        rows.append([family or "ALL", readable(count), *[pct(accuracy(r.report, family)) for r in runs], change])
    doc.table(["family", "problems", *[r.name for r in runs],
               f"change (points, {tuned.name if tuned else 'fine-tuned'} - {base.name if base else 'base'})"],
              rows)
    if "accuracy" in plots:
        doc.img(plots["accuracy"], "accuracy by family, base and fine-tuned, with and without the calculator")

    doc.h("Accuracy by difficulty level")
    if data["by_level"]:
        graded = [r for r in runs if r.items is not None]
        judge = (cfg.get("label") or {}).get("judge")
        doc.p(f"Levels 0-5 of the held-out problems by the heuristic judge (heuristic:{heuristic.VERSION}), the recipe's "
              "difficulty axis: the run's judge"
              + (f" ({judge})" if judge else "") + " rates only the training records.")
        doc.table(["level", "problems", *[r.name for r in graded]],
                  [[lv, readable(n), *[pct(a) for a in accs]] for lv, n, accs in data["by_level"]])
        if "levels" in plots:
            doc.img(plots["levels"], "accuracy by difficulty level")
    else:
        doc.p("Not shown: the held-out problems or the predictions are missing, or the predictions no longer "
              "match their recorded scores.")

    rows = data["checkpoint_rows"]
    if rows:
        doc.h("Accuracy per checkpoint")
        with_calc = data["calculator"]
        header = ["step", "scored", "accuracy" + (" (calculator)" if with_calc else ""), "95% interval"]
        if with_calc:
            header += ["without the calculator"]
        body = []
        for r in rows:
            interval = (wilson_interval(r["correct"], r["count"])
                        if isinstance(r.get("correct"), int) and isinstance(r.get("count"), int) else None)
            line = [r["step"], "merged/" if r.get("model") == "merged" else "base + adapter",
                    pct(r.get("accuracy")), interval_text(interval)]
            if with_calc:
                line.append(pct(r.get("accuracy_nocalc")))
            body.append(line)
        doc.table(header, body)
        skipped = (data.get("checkpoint_skipped") or [])
        if skipped:
            doc.p("Not scored: " + "; ".join(f"step {s.get('step')} ({s.get('reason')})" for s in skipped))
        if "checkpoints" in plots:
            doc.img(plots["checkpoints"], "accuracy over training steps")

    if not (base and tuned and base.items is not None and tuned.items is not None):
        if tuned:
            doc.h("Wrong answers")
            doc.p("Not shown: the predictions are missing or no longer match their recorded scores.")
        return
    problems = {str(r["id"]): r for r in test_records or [] if isinstance(r, dict) and "id" in r}
    order = [k for k in problems if k in tuned.items] or list(tuned.items)
    b_items, t_items = _graded(base.items), _graded(tuned.items)
    wrong = [k for k in order if k in t_items and not t_items[k].correct]
    doc.h(f"Wrong answers ({tuned.name})")
    doc.p(f"{len(wrong)} of {len(t_items)} wrong ({sum(t_items[k].status == 'unparsable' for k in wrong)} without a "
          f"readable answer); up to 10, taken in turn from each family, beside the answer of {base.name}.")
    picked = spread_wrong(t_items, order, 10)
    if picked:
        doc.table(["family", "level", "problem", "gold", tuned.name, base.name, f"{tuned.name}: completion"], [
            [t_items[k].type, levels.get(k, "n/a"), (problems.get(k) or {}).get("problem", ""),
             t_items[k].gold_answer, t_items[k].predicted or "(no answer)",
             (b_items[k].predicted or "(no answer)") if k in b_items else "n/a", t_items[k].completion]
            for k in picked], pre=frozenset({2, 3, 4, 5, 6}), mono=frozenset({6}), limit=240)

    examples = pick_examples(b_items, t_items, order)
    if examples:
        doc.h("Example completions, base and fine-tuned side by side")
        doc.table(["", "problem", "gold", base.name, tuned.name], [
            [kind, f"{clip((problems.get(k) or {}).get('problem', ''), 400)}\n({t_items[k].type}, level "
                   f"{levels.get(k, 'n/a')})", t_items[k].gold_answer,
             *[f"{clip(items[k].completion, 400)}\n→ {_verdict(items[k])}" for items in (b_items, t_items)]]
            for kind, k in examples], pre=frozenset({1, 2, 3, 4}), mono=frozenset({3, 4}))


def _retention(doc: Doc, scores: RunScores) -> None:
    base_squad, tuned_squad = scores.base_squad, scores.tuned_squad
    if not (base_squad and tuned_squad):
        return
    doc.h("Retention (reading comprehension)")
    ret = scores.retention or {}
    keep = ret.get("keep")
    measurable = ret.get("measurable", True)

    def row(name: str, key: str) -> list:
        b, t = base_squad.get(key), tuned_squad.get(key)
        ratio = ret.get(f"{key}_ratio")
        if not ret:
            ratio_text, needed = "n/a", "n/a"
        elif ratio is None:  # a base of 0: anything keeps 90% of nothing
            ratio_text, needed = f"n/a (base {name} is 0)", "not measurable"
        else:
            ratio_text = f"{ratio:.2f}"
            needed = ("ok" if ret.get(f"{key}_ok") else "FAIL") if measurable else "not measurable"
        return [name, readable(round(b, 2)) if isinstance(b, (int, float)) else "n/a",
                readable(round(t, 2)) if isinstance(t, (int, float)) else "n/a", ratio_text, needed]

    doc.table(["score", "base", "fine-tuned", "ratio", f"needed (>= {keep:.0%} of base)" if keep else "needed"],
              [row("F1", "f1"), row("EM", "em")])
    doc.p(f"{readable(tuned_squad.get('count'))} samples from {Path(str(tuned_squad.get('data', ''))).name}; "
          f"verdict {retention_word(ret) if ret else 'n/a'}.")


def _timings(doc: Doc, stages: dict) -> None:
    doc.h("Stage timings")
    total = _total_seconds(stages) or 0
    rows = [[name, duration(rec.get("seconds")),
             f"{100 * rec['seconds'] / total:.0f}%" if total and isinstance(rec.get("seconds"), (int, float)) else "",
             readable(rec.get("finished_at"))] for name, rec in stages.items() if isinstance(rec, dict)]
    if total:
        rows.append(["total", duration(total), "100%", ""])
    doc.table(["stage", "time", "share", "finished"], rows)
