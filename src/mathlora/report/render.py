"""How the report and the model cards write for reading: numbers (percentages, durations, Wilson intervals),
Markdown and HTML escaping, the ``Doc`` that writes both, the page's CSS."""

from __future__ import annotations

import html
import math
import re
from mathlora.evaluate.config import EvalConfig


# -- numbers for reading ----------------------------------------------------------------------------------------


def snippet_new_tokens(eval_section) -> int:
    """The ``max_new_tokens`` of a usage snippet (the report's and the model cards'): the run's
    ``eval.max_new_tokens``, else the evaluation's default."""

    value = eval_section.get("max_new_tokens") if isinstance(eval_section, dict) else None
    return value if isinstance(value, int) and value > 0 else EvalConfig.model_fields["max_new_tokens"].default


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


# -- the per-family table ---------------------------------------------------------------------------------------


def family_table(columns: list[tuple[str, dict | None]], *, total: bool = True, count_from: dict | None = None,
                 changes: list[tuple[str, dict | None, dict | None]] = ()) -> tuple[list[str], list[list[str]]]:
    """The math accuracy per problem family, as the report and the model cards both show it: ``(header, rows)``
    for ``Doc.table``.

    ``columns``: (heading, math report) per accuracy column (a missing report or family reads ``n/a``). One row
    per family found in any report's ``per_type``, sorted, after an ``ALL`` row (the whole set) when ``total``;
    ``problems`` is ``count_from``'s count (else the first column's that has it); ``changes``: (heading, later,
    earlier) columns of the difference in points (a family missing from a report counts 0; ``n/a`` when either
    report is missing)."""
    reports = [report or {} for _, report in columns]
    families = sorted({name for report in reports for name in (report.get("per_type") or {})})

    def entry(report: dict | None, family: str | None) -> dict:
        report = report or {}
        return report if family is None else ((report.get("per_type") or {}).get(family) or {})

    def accuracy(report: dict | None, family: str | None):
        return entry(report, family).get("accuracy")

    rows = []
    for family in ([None] if total else []) + families:
        count = next((entry(r, family)["count"] for r in (count_from, *reports) if "count" in entry(r, family)),
                     None)
        rows.append([family or "ALL", readable(count), *[pct(accuracy(r, family)) for r in reports],
                     *[f"{100 * (accuracy(later, family) or 0) - 100 * (accuracy(earlier, family) or 0):+.1f}"
                       if later is not None and earlier is not None else "n/a" for _, later, earlier in changes]])
    return ["family", "problems", *[name for name, _ in columns], *[name for name, _, _ in changes]], rows


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
