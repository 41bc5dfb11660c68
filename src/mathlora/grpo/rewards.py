"""GRPO's rewards: mathlora's own grader on the final answer, and a small format reward.

``correct``: 1.0 when the completion's final answer matches the gold solution's (``evaluate.math_grading.grade_one``:
the run's ``atol``/``rtol``, the answer scope of the run's solution style), else 0.0. ``format``: 1.0 when the
grader reads a final answer at all (right or wrong), else 0.0. Both are plain callables in TRL's reward-function
form (``f(prompts, completions, **columns) -> list[float]``); the dataset's ``gold`` column reaches them as a
keyword.

A reward never raises and never hangs: each completion is graded under a guard (``graded``): a completion that is
not text, longer than ``MAX_CHARS`` characters, makes the grader raise, or takes longer than ``timeout`` seconds
is a 0.0 and a counted event (``RewardEvents``: per kind, for the summary; per batch through TRL's
``log_metric`` as ``reward_events/<kind>``). The time limit is a ``SIGALRM`` timer where the reward runs on the
main thread (TRL calls synchronous rewards there); elsewhere the grader's own caps bound the work (numbers past
``answers.MAX_DIGITS`` digits or ``MAX_EXPONENT`` are not evaluated).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from mathlora.arith.answers import DEFAULT_ATOL, DEFAULT_RTOL
from mathlora.evaluate.math_grading import GradedItem, grade_one

MAX_CHARS = 100_000  # a completion is max_completion_length tokens; this bounds a hostile caller's text
EVENT_KINDS = ("not_text", "too_long", "error", "timeout", "gold_unparsable")


class _Timeout(BaseException):
    """Raised by the alarm inside the grader (a BaseException: no ``except Exception`` in it swallows it)."""


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise ``_Timeout`` after ``seconds`` (main thread, POSIX); elsewhere no limit (the grader's caps)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, _alarm)
    old_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_timer[0] > 0:  # someone else's timer: give it back what is left of it
            signal.setitimer(signal.ITIMER_REAL, *old_timer)


@dataclass
class RewardEvents:
    """Completions that scored 0 because grading could not run on them, by kind (``EVENT_KINDS``)."""
    counts: Counter = field(default_factory=Counter)
    graded: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"graded": self.graded, "seconds": round(self.seconds, 3),
                **{k: int(self.counts.get(k, 0)) for k in EVENT_KINDS}}


def _text_of(completion) -> str | None:
    """A completion as text: TRL passes a string (a plain prompt) or messages (a conversational one)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        return content if isinstance(content, str) else None
    return None


class Grading:
    """Grades completions against gold solutions once per (completion, gold) for both rewards of a batch."""

    def __init__(self, *, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, scope: str = "first_line",
                 timeout: float = 2.0, events: RewardEvents | None = None):
        self.atol, self.rtol, self.scope, self.timeout = atol, rtol, scope, timeout
        self.events = events if events is not None else RewardEvents()
        self._batch: dict[tuple, GradedItem | str] = {}

    def graded(self, completion, gold) -> GradedItem | str:
        """The grader's verdict, or the kind of event that stood in its way (``EVENT_KINDS``)."""
        text = _text_of(completion)
        if text is None or not isinstance(gold, str):
            return "not_text"
        if len(text) > MAX_CHARS:
            return "too_long"
        key = (text, gold)
        if key in self._batch:
            return self._batch[key]
        start = time.perf_counter()
        try:
            with _time_limit(self.timeout):
                verdict: GradedItem | str = grade_one("", text, gold, atol=self.atol, rtol=self.rtol,
                                                      scope=self.scope)
        except _Timeout:
            verdict = "timeout"
        except Exception:  # noqa: BLE001 - a reward is a number, never a crash
            verdict = "error"
        self.events.seconds += time.perf_counter() - start
        if isinstance(verdict, GradedItem) and verdict.status == "gold_unparsable":
            verdict = "gold_unparsable"
        self._batch[key] = verdict
        return verdict

    def batch(self, completions, golds) -> list[GradedItem | str]:
        """Verdicts of one batch; events counted once per completion (the ``correct`` reward's call)."""
        self._batch = {}
        verdicts = [self.graded(c, g) for c, g in zip(completions, golds)]
        self.events.graded += len(verdicts)
        for v in verdicts:
            if isinstance(v, str):
                self.events.counts[v] += 1
        return verdicts


def _golds(gold, n: int) -> list:
    golds = list(gold) if isinstance(gold, (list, tuple)) else [gold] * n
    return golds + [None] * (n - len(golds))


def correct_reward(grading: Grading):
    """TRL reward function ``correct``: 1.0 for a final answer the grader accepts, else 0.0."""

    def correct(prompts=None, completions=(), gold=None, log_metric=None, **_) -> list[float]:
        completions = list(completions)
        before = Counter(grading.events.counts)
        try:
            verdicts = grading.batch(completions, _golds(gold, len(completions)))
        except Exception:  # noqa: BLE001 - the guard above should make this unreachable
            grading.events.counts["error"] += len(completions)
            return [0.0] * len(completions)
        if log_metric is not None:
            for kind in EVENT_KINDS:
                if grading.events.counts[kind] - before.get(kind, 0):
                    log_metric(f"reward_events/{kind}", float(grading.events.counts[kind] - before.get(kind, 0)))
        return [1.0 if isinstance(v, GradedItem) and v.correct else 0.0 for v in verdicts]

    correct.__name__ = "correct"
    return correct


def format_reward(grading: Grading):
    """TRL reward function ``format``: 1.0 when the grader reads a final answer (right or wrong), else 0.0."""

    def format(prompts=None, completions=(), gold=None, **_) -> list[float]:  # noqa: A001 - TRL's metric name
        completions = list(completions)
        out = []
        for c, g in zip(completions, _golds(gold, len(completions))):
            try:
                v = grading.graded(c, g)
            except Exception:  # noqa: BLE001
                v = "error"
            out.append(1.0 if isinstance(v, GradedItem) and v.status in ("correct", "wrong") else 0.0)
        return out

    format.__name__ = "format"
    return format
