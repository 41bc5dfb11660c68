"""Reading a difficulty out of a judge's reply: text (robustly) and, where given, token logprobs."""

from __future__ import annotations

import json
import math
import re

LEVELS = range(6)

_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
_KEYED = re.compile(r"(?:difficulty|level|rating|score|难度)\**(?:\s*(?:level|is|of|:|=|：|\*))*\s*(-?\d+(?:\.\d+)?)",
                    re.I)
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?(?!\d|\.\d)")  # "a 3." ends a sentence
# the scale restated around the verdict: "(0-5)", "[0 to 5]", "0–5", "out of 5", "/5"
_SCALE = re.compile(r"[(\[]?\s*\b0\s*(?:-|–|—|~|to|\.\.)\s*5\b\s*[)\]]?|(?:/|out\s+of)\s*5\b", re.I)


def _as_level(value) -> int | None:
    """An integer 0..5 (``3``, ``"3"``, ``3.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and float(value).is_integer() and int(value) in LEVELS:
        return int(value)
    return None


def parse_difficulty(text: str | None) -> tuple[int | None, str | None]:
    """(level, None) for a usable reply, or (None, reason).

    Accepts a bare digit, ``Difficulty: 3``, JSON ``{"difficulty": 3}`` (fenced or not), and digits
    inside prose (the first number). A restated scale (``Difficulty (0-5): 4``, ``3/5``, ``3 out of 5``) is
    not the verdict. A number outside 0..5 is out of range, not a level.
    """
    if text is None or not text.strip():
        return None, "empty reply"
    stripped = text.strip()
    without_scale = _SCALE.sub(" ", stripped).strip()
    for blob in _JSON_OBJECT.findall(stripped):
        try:
            obj = json.loads(blob)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            for key in ("difficulty", "level", "rating", "score"):
                if key in obj:
                    level = _as_level(obj[key])
                    return (level, None) if level is not None else (None, f"out of range: {obj[key]!r}")
    keyed = _KEYED.search(without_scale)
    match = keyed.group(1) if keyed else None
    if match is None:
        first = _NUMBER.search(without_scale)
        match = first.group(0) if first else None
    if match is None:
        return None, f"no digit in reply: {stripped[:60]!r}"
    level = _as_level(match)
    return (level, None) if level is not None else (None, f"out of range: {match}")


def probs_from_logprobs(content: list[dict] | None) -> list[float] | None:
    """Probabilities of 0..5 at the first generated token that is a digit 0..5.

    ``content`` is ``choices[0].logprobs.content`` of a chat completion; each entry has ``token`` and
    ``top_logprobs`` (list of {token, logprob}). Digits missing from the top list get probability 0;
    the rest are renormalised to sum to 1. None when there is no such position.
    """
    if not content:
        return None
    for entry in content:
        if not isinstance(entry, dict) or _as_digit_token(entry.get("token")) is None:
            continue
        top = entry.get("top_logprobs") or [{"token": entry.get("token"), "logprob": entry.get("logprob")}]
        best: dict[int, float] = {}
        for alt in top:
            if not isinstance(alt, dict):
                continue
            digit = _as_digit_token(alt.get("token"))
            lp = alt.get("logprob")
            if digit is None or not isinstance(lp, (int, float)) or math.isnan(lp):
                continue
            best[digit] = max(best.get(digit, -math.inf), float(lp))
        if not best:
            return None
        peak = max(best.values())
        weights = [math.exp(best[d] - peak) if d in best else 0.0 for d in LEVELS]
        total = sum(weights)
        return [w / total for w in weights]
    return None


def _as_digit_token(token) -> int | None:
    if not isinstance(token, str):
        return None
    t = token.strip().replace("Ġ", "").replace("▁", "")
    return int(t) if len(t) == 1 and t.isdigit() and int(t) in LEVELS else None
