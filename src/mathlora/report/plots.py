"""The report's plots: the font stack with CJK fallbacks, the accuracy and checkpoint figures."""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

from mathlora.report.scores import wilson_interval
from mathlora.run_dir.atomic import atomic_path


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
