"""The difficulty rubric prompt: a versioned default, replaceable by a user file.

A prompt is text with ``{problem}`` and ``{solution}`` placeholders (other braces are left alone).
Its version enters the cache key, so editing the rubric never reuses labels made with another one:
the packaged rubric is ``rubric-v1``; a user file is ``file-<sha256 prefix of its text>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mathlora.run_dir.hashing import digest
from mathlora.errors import MathloraError

RUBRIC_V1 = """\
Rate the difficulty of the math problem below on a scale from 0 to 5.

0 = trivial: one step with small whole numbers (e.g. 3 + 4).
1 = easy: one arithmetic operation, possibly with decimals or negative numbers.
2 = moderate: a power, a simple linear equation, a mean, an area, or simplifying a fraction.
3 = medium: several steps, large exponents, evaluating a function, or a short word problem.
4 = hard: a multi-step word problem or algebra needing careful reasoning.
5 = very hard: competition-level reasoning with many steps or a clever insight.

Problem:
{problem}

Reference solution:
{solution}

Answer with a single digit from 0 to 5 and nothing else."""

# The local judge reads the next-token distribution after this text in the assistant's turn.
ANSWER_PREFIX = "Difficulty: "


@dataclass(frozen=True)
class RubricPrompt:
    template: str
    version: str

    def render(self, problem: str, solution: str) -> str:
        return self.template.replace("{problem}", problem).replace("{solution}", solution)


def default_prompt() -> RubricPrompt:
    return RubricPrompt(RUBRIC_V1, "rubric-v1")


def load_prompt(path: str | None) -> RubricPrompt:
    """The packaged rubric, or the user's file (must contain a ``{problem}`` placeholder)."""
    if path is None:
        return default_prompt()
    p = Path(path)
    if not p.exists():
        raise MathloraError(f"prompt file not found: {p}")
    if p.is_dir():
        raise MathloraError(f"prompt file {p} is a directory; expected a text file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MathloraError(f"prompt file {p} is not UTF-8 text") from None
    if "{problem}" not in text:
        raise MathloraError(f"prompt file {p} has no {{problem}} placeholder")
    return RubricPrompt(text, "file-" + digest(text, 12))
