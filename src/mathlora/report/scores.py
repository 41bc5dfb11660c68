"""A run's scores, read once from its evaluation artifacts (``eval/{base,tuned}/math*.json``, ``squad.json``,
``eval/checkpoints/scores.json``): the run's last line (``headline``), the report and the published model card
all read them from here. ``wilson_interval`` is the 95% interval every headline accuracy carries."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.run_dir.records import read_json_document


def _read(path: Path, strict: bool) -> dict | None:
    if not path.exists():
        return None
    try:
        data = read_json_document(path, path.name)
    except MathloraError:
        if strict:
            raise
        return None
    return data if isinstance(data, dict) else None


Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson_interval(correct: int, count: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``correct`` successes in ``count`` trials (95% by default), as fractions
    (None without trials). Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n:
    0 of 10 gives (0, 0.278), 60 of 120 gives (0.412, 0.588)."""
    if count <= 0:
        return None
    p, z2 = correct / count, z * z
    centre = (p + z2 / (2 * count)) / (1 + z2 / count)
    half = z * math.sqrt(p * (1 - p) / count + z2 / (4 * count * count)) / (1 + z2 / count)
    return (0.0 if correct <= 0 else max(0.0, centre - half)), (1.0 if correct >= count else min(1.0, centre + half))


def retention_word(verdict: dict) -> str:
    """PASSED, FAILED, or "not measurable" (a base F1 of 0: nothing to retain) for a retention verdict."""
    passed = verdict.get("passed")
    return "not measurable (base F1 is 0)" if passed is None else "PASSED" if passed else "FAILED"


@dataclass(frozen=True)
class RunScores:
    base_math: dict | None = None
    tuned_math: dict | None = None
    base_math_nocalc: dict | None = None
    tuned_math_nocalc: dict | None = None
    base_squad: dict | None = None
    tuned_squad: dict | None = None
    checkpoints: dict | None = None  # eval/checkpoints/scores.json (eval.checkpoints): accuracy per step
    grpo_math: dict | None = None  # eval/grpo/ (grpo.enabled): the GRPO model, its math against the tuned one's
    grpo_math_nocalc: dict | None = None
    grpo_squad: dict | None = None

    @classmethod
    def read(cls, run_dir: str | os.PathLike, *, strict: bool = True) -> "RunScores":
        """The scores in ``run_dir`` (None for a missing file; a damaged one is an error, or None when not
        ``strict``)."""
        lay = RunLayout(run_dir)
        base, tuned, grpo = lay.eval("base"), lay.eval("tuned"), lay.eval("grpo")
        return cls(_read(base.math, strict), _read(tuned.math, strict), _read(base.math_nocalc, strict),
                   _read(tuned.math_nocalc, strict), _read(base.squad, strict), _read(tuned.squad, strict),
                   _read(lay.checkpoint_scores, strict), _read(grpo.math, strict), _read(grpo.math_nocalc, strict),
                   _read(grpo.squad, strict))

    def math(self, which: str, *, calculator: bool = True) -> dict | None:
        """The math report of the ``base``, ``tuned`` or ``grpo`` model (``calculator=False``: without it)."""
        return getattr(self, f"{which}_math" if calculator else f"{which}_math_nocalc")

    def accuracy(self, which: str, *, calculator: bool = True) -> float | None:
        """Math accuracy of the ``base`` or ``tuned`` model (``calculator=False``: the run without it)."""
        report = self.math(which, calculator=calculator)
        return report.get("accuracy") if report else None

    def interval(self, which: str, *, calculator: bool = True) -> tuple[float, float] | None:
        """The Wilson 95% interval of ``accuracy(which, calculator=...)`` (None when not recorded)."""
        report = self.math(which, calculator=calculator) or {}
        correct, count = report.get("correct"), report.get("count")
        if not isinstance(correct, int) or not isinstance(count, int):
            return None
        return wilson_interval(correct, count)

    def checkpoint_rows(self) -> list[dict]:
        """The scored checkpoints, by step: ``step``, ``accuracy``, ``correct``, ``count`` (+ ``_nocalc``)."""
        rows = (self.checkpoints or {}).get("checkpoints")
        ok = [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int)] if isinstance(rows, list) else []
        return sorted(ok, key=lambda r: r["step"])

    def squad(self, which: str, key: str) -> float | None:
        """SQuAD ``f1`` or ``em`` of the ``base`` or ``tuned`` model."""
        report = getattr(self, f"{which}_squad")
        return report.get(key) if report else None

    @property
    def retention(self) -> dict | None:
        """The tuned model's retention verdict against the base (``passed``, ``keep``, F1/EM both ways)."""
        ret = (self.tuned_squad or {}).get("retention")
        return ret if isinstance(ret, dict) else None

    def headline(self, report_html: Path) -> str:
        """The last line of ``run``: where the report is, accuracy before -> after, the retention verdict."""
        base, tuned = self.base_math or {}, self.tuned_math or {}
        acc = (f"math accuracy {100 * base.get('accuracy', 0):.1f}% -> {100 * tuned.get('accuracy', 0):.1f}%"
               if base and tuned else "math accuracy: n/a")
        base_plain, tuned_plain = self.base_math_nocalc or {}, self.tuned_math_nocalc or {}
        if base and tuned and base_plain and tuned_plain:
            acc += (f" with the calculator ({100 * base_plain.get('accuracy', 0):.1f}% -> "
                    f"{100 * tuned_plain.get('accuracy', 0):.1f}% without)")
        elif base and tuned:  # scored once: eval.calculator was off, so the model computed alone
            acc += " without a tool"
        ret = self.retention
        verdict = f"retention {retention_word(ret)}" if ret else "retention: n/a"
        if ret:
            verdict += (f" (F1 {ret['base_f1']:.1f} -> {ret['f1']:.1f}, EM {ret['base_em']:.1f} -> {ret['em']:.1f}, "
                        f"keep {ret['keep']:.0%})")
        grpo = self.grpo_math or {}
        if grpo and tuned:  # GRPO after SFT: the configured run's accuracy, SFT -> GRPO
            acc += f"; GRPO {100 * tuned.get('accuracy', 0):.1f}% -> {100 * grpo.get('accuracy', 0):.1f}%"
        return f"report: {report_html} | {acc} | {verdict}"


def headline(run_dir: str | os.PathLike) -> str:
    """``RunScores.headline`` of ``run_dir``."""
    return RunScores.read(run_dir).headline(RunLayout(run_dir).report_html)
