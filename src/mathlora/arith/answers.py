"""Final-answer extraction from math solutions and model completions, and numeric comparison.

Rules (the same for every problem family):

* **Numbers** are integers, decimals (``1,234.5`` thousands commas allowed), ``a/b`` fractions of integers,
  scientific notation (``2.769E+34``, ``2.769 \\times 10^{34}``, ``2.769×10^34``) and percentages (``45%``).
  A ``-`` is a sign only where it cannot be a binary minus (not right after a digit, letter or bracket), so
  ``4204.22 + -2369.17`` reads ``-2369.17`` and ``5-3`` reads ``5`` and ``3``. ``\\frac{a}{b}`` reads as ``a/b``.
* **Gold solutions**: the content of the last ``\\boxed{}``; otherwise the first number after the last
  ``=``, ``≈``, ``：`` or ``: `` (so ``√5636.97 = 75.0797...`` and ``函数的值为：1.23E+15`` work, and units after
  the number like ``348 平方厘米`` are ignored); otherwise the last number of the text.
* **Predictions** (``scope="first_line"``, the default): the completion is cut at the first ``###`` (the model
  starting a new template turn); a ``\\boxed{}`` in what is left wins (the first one: what follows it is the model
  rambling on); otherwise the gold rule is applied to the first non-empty line only, since a model that does not
  stop at EOS continues with junk lines. ``scope="full"`` applies the gold rule to the whole cut completion.
  ``scope="final"`` (worked solutions: ``auto`` picks it for the ``steps`` and ``calculator`` styles) reads the
  answer after the last ``答案：`` / ``答案是`` / ``Answer:`` / ``####`` marker or in the last ``\\boxed{}``,
  whichever is later (``首先 3 + 4 = 7，所以答案是 12`` reads 12), else the full-text rule.
* **Comparison**: two ``a/b`` fractions compare exactly (``5/6 == 10/12``), except that when the gold states a
  simplest form (``最简化的形式为：5/6``) a fraction with a common factor is wrong (``10/12``, or the problem's
  own fraction echoed back). Everything else compares numerically:
  ``|pred - gold| <= atol * scale + rtol * |gold|`` in exact rational arithmetic, where ``scale`` is
  ``10**e`` when either side is written in scientific notation with exponent ``e`` (the larger one), so the
  tolerance applies to the mantissa as the 2-decimal normalization does (``2.77E+34`` matches ``2.7691E+34``).
  A fraction against a decimal compares numerically too (``0.83`` matches ``5/6`` at atol 1e-2): the
  competition compared numbers. When exactly one side is a percentage, ``p`` and ``p*100`` (or ``p/100``) are
  both tried.
* **Caps**: a number with more than ``MAX_DIGITS`` digits or an exponent beyond ``MAX_EXPONENT`` is not read
  (it would cost seconds of exact arithmetic): it becomes a non-numeric answer, graded unparsable.
* ``\\boxed{}`` content that is not a number (``\\sqrt{2}``, ``x+1``) is compared with math-verify when it is
  installed (``pip install mathlora[math-verify]``); without it such answers are unparsable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
import math
from fractions import Fraction
from typing import Literal

Kind = Literal["integer", "decimal", "fraction", "scientific"]


@dataclass(frozen=True)
class Answer:
    """A parsed final answer. ``value`` is exact; ``latex`` keeps the boxed source for math-verify."""

    text: str
    value: Fraction | None
    kind: Kind | None = None
    exponent: int | None = None
    percent: bool = False
    latex: str | None = None
    lowest_terms: bool = True  # False for an ``a/b`` written with a common factor (``10/12``)
    too_large: bool = False  # a number beyond MAX_DIGITS / MAX_EXPONENT: not evaluated

    @property
    def is_number(self) -> bool:
        return self.value is not None


_SIGN = r"(?P<sign>(?<![0-9A-Za-z)\]}])[-−+])?"
# a mixed number's whole part (``2 1/2``): digits, a space, then a fraction
_WHOLE = r"(?:(?P<whole>\d+)[ \u00a0](?=\d+\s*/\s*\d))?"
# digits grouped by one separator throughout: ``1,234,567``, ``1 000 000``, ``1_000`` (thin and no-break spaces too)
_GROUPED = r"\d{1,3}(?P<sep>[,_ \u00a0\u2009\u202f])\d{3}(?:(?P=sep)\d{3})*(?!\d)"
_MANTISSA = r"(?P<mant>(?:" + _GROUPED + r"|\d+)(?:\.\d+)?|\.\d+)"
_SUFFIX = (r"(?:(?P<den>\s*/\s*\d+(?!\d|\.\d|,\d{3}))"
           r"|[eE](?P<exp>[-+−]?\d+)"
           r"|\s*(?:×|\\times|\\cdot|\*)\s*10\s*\^\s*\{?\s*(?P<exp2>[-+−]?\d+)\s*\}?)?")
_PERCENT = r"(?P<pct>\s*(?:%|\\%|％))?"
NUMBER_RE = re.compile(_SIGN + _WHOLE + _MANTISSA + _SUFFIX + _PERCENT)
_GROUP_CHARS = ",_ \u00a0\u2009\u202f"


def _digits(text: str) -> str:
    """A mantissa without its group separators."""
    return text.translate({ord(c): None for c in _GROUP_CHARS})

_SEPARATOR_RE = re.compile(r"=|＝|≈|：|:(?=\s|$)")
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}")
_FRAC_SHORT_RE = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_TEXT_RE = re.compile(r"\\(?:text|mbox|mathrm|textbf|mathbf)\s*\{([^{}]*)\}")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_RE = re.compile(r"[{}]")
_LATEX_NOISE = [
    (re.compile(r"\\left|\\right|\\!|\\;|\\:|\\ |\$"), ""),
    (re.compile(r"\\,"), ""),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\^\s*\{?\\circ\}?|°"), ""),
    (re.compile(r"\\(?:dfrac|tfrac)"), r"\\frac"),
]


# The default tolerances. The organisers' tolerance is unpublished; one contestant's judge used numpy's
# isclose with atol 1e-2 (and numpy's default rtol 1e-5 with it: ``eval.rtol=1e-5`` grades like that judge).
# atol 1e-2 is the recipe's two decimals. rtol 1e-12 only matters for large values: a gold printed with the
# source's 28 significant digits (``k*x**n`` rounded twice) is known to about 1e-27 relative, so a value above
# about 1e25 could never meet 0.01 absolute; below 1e10 it adds less than 0.01.
DEFAULT_ATOL = 1e-2
DEFAULT_RTOL = 1e-12

MAX_DIGITS = 400      # digits of a number's mantissa (or denominator)
MAX_EXPONENT = 1000   # |exponent| of scientific notation


def _to_fraction(text: str) -> Fraction | None:
    digits = _digits(text)
    if sum(c.isdigit() for c in digits) > MAX_DIGITS:
        return None
    try:
        return Fraction(Decimal(digits))
    except (InvalidOperation, ValueError):
        return None


def _over_cap(m: re.Match) -> bool:
    """Whether a match is too large to evaluate exactly in bounded time (see MAX_DIGITS, MAX_EXPONENT)."""
    if sum(c.isdigit() for c in m.group("mant")) > MAX_DIGITS:
        return True
    den = m.group("den")
    if den is not None and sum(c.isdigit() for c in den) > MAX_DIGITS:
        return True
    exp = m.group("exp") or m.group("exp2")
    if exp is not None:
        digits = exp.lstrip("+-−").lstrip("0")
        return len(digits) > len(str(MAX_EXPONENT)) or int(digits or "0") > MAX_EXPONENT
    return False


def parse_number_match(m: re.Match) -> Answer | None:
    """The Answer of one ``NUMBER_RE`` match (None for a zero denominator; a non-numeric Answer for a
    number beyond the caps)."""
    if _over_cap(m):
        return Answer(text=m.group(0).strip(), value=None, too_large=True)
    sign = -1 if m.group("sign") in ("-", "−") else 1
    mant = m.group("mant")
    value = _to_fraction(mant)
    if value is None:
        return None
    kind: Kind = "decimal" if "." in mant else "integer"
    exponent = None
    if m.group("den") is not None:
        den = int(m.group("den").replace("/", "").strip())
        if den == 0:
            return None
        value /= den
        kind = "fraction" if "." not in mant else "decimal"
        lowest = kind != "fraction" or math.gcd(int(_digits(mant)), den) == 1
        if m.group("whole") is not None:  # 2 1/2 = 5/2; "2 3/2" is no mixed number: not read as one
            if kind != "fraction" or value >= 1 or len(m.group("whole")) > MAX_DIGITS:
                return Answer(text=m.group(0).strip(), value=None)
            value += int(m.group("whole"))
    value *= sign
    exp = m.group("exp") or m.group("exp2")
    if exp is not None:
        exponent = int(exp.replace("−", "-"))
        value *= Fraction(10) ** exponent
        kind = "scientific"
    text = m.group(0).strip()
    return Answer(text=text, value=value, kind=kind, exponent=exponent, percent=m.group("pct") is not None,
                  lowest_terms=m.group("den") is None or lowest)


def latex_to_plain(text: str) -> str:
    """Turn the LaTeX that answers use into plain text: ``\\frac{3}{4}`` -> ``3/4``, ``\\text{cm}`` -> ``cm``."""
    for pattern, repl in _LATEX_NOISE:
        text = pattern.sub(repl, text)
    text = _TEXT_RE.sub(r" \1", text)
    text = _FRAC_SHORT_RE.sub(r"\1/\2", text)
    prev = None
    while prev != text:  # innermost first; nested fractions stop at the first non-number part
        prev = text
        text = _FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}" if _is_plain_number(m.group(1))
                            and _is_plain_number(m.group(2)) else m.group(0), text)
    return text


def _is_plain_number(text: str) -> bool:
    m = NUMBER_RE.fullmatch(text.strip())
    return bool(m) and m.group("den") is None


def numbers_in(text: str) -> list[Answer]:
    return [a for m in NUMBER_RE.finditer(text) if (a := parse_number_match(m)) is not None]


def final_number(text: str) -> Answer | None:
    """The gold rule on plain text: first number after the last separator, else the last number."""
    text = latex_to_plain(text)
    separators = list(_SEPARATOR_RE.finditer(text))
    if separators:
        tail = numbers_in(text[separators[-1].end():])
        if tail:
            return tail[0]
    found = numbers_in(text)
    return found[-1] if found else None


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` (balanced braces), in order."""
    # one pass over the braces (a text of unclosed \\boxed{ is linear, not quadratic)
    opens = {m.end() - 1 for m in _BOXED_RE.finditer(text)}
    if not opens:
        return []
    found, stack = [], []
    for m in _BRACE_RE.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            start = stack.pop()
            if start in opens:
                found.append((start, text[start + 1:m.start()]))
    return [content for _, content in sorted(found)]


def parse_boxed(content: str) -> Answer:
    """A boxed answer: a single number (after ``=`` if any), else a non-numeric Answer keeping the LaTeX."""
    plain = latex_to_plain(content)
    separators = list(_SEPARATOR_RE.finditer(plain))
    tail = plain[separators[-1].end():] if separators else plain
    found = numbers_in(tail)
    leftover = NUMBER_RE.sub("", tail)
    # Units (\text{cm}, 平方厘米) may follow the number; other maths (\sqrt, \pi, x) makes it non-numeric.
    if len(found) == 1 and not re.search(r"\\(?!text)[A-Za-z]+|[A-Za-z]\s*[\^(]|[+*/^()]", leftover):
        a = found[0]
        if a.too_large:
            return a
        return Answer(text=a.text, value=a.value, kind=a.kind, exponent=a.exponent, percent=a.percent,
                      latex=content)
    return Answer(text=content.strip(), value=None, latex=content)


def extract_gold_answer(solution: str) -> Answer | None:
    """The final answer of a reference solution (see the module docstring)."""
    if not solution:
        return None
    boxed = boxed_contents(solution)
    if boxed:
        return parse_boxed(boxed[-1])
    return final_number(solution)


def cut_at_marker(completion: str) -> str:
    """The completion up to the first ``###`` (where a model starts another template turn); GSM8K's ``####``
    answer marker is not a template turn."""
    return _TURN_RE.split(completion, 1)[0]


_TURN_RE = re.compile(r"(?<!#)###(?!#)")


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


# Where a worked solution states its final answer: 答案：12, 答案是 12, 最终答案为 12, Answer: 12, #### 12.
_FINAL_MARKER_RE = re.compile(r"(?:最终)?答案\s*(?:是|为)?\s*[：:]?|(?<![A-Za-z])answer\s*(?:is)?\s*[:：]|####",
                              re.IGNORECASE)


def final_marked_answer(text: str) -> Answer | None:
    """The answer after the last final-answer marker (``答案：``, ``Answer:``, ``####``) or in the last
    ``\\boxed{}``, whichever comes later; None when the text has neither."""
    markers = list(_FINAL_MARKER_RE.finditer(text))
    boxed_at = [m.start() for m in _BOXED_RE.finditer(text)]
    if boxed_at and (not markers or boxed_at[-1] > markers[-1].start()):
        return parse_boxed(boxed_contents(text)[-1]) if boxed_contents(text) else None
    end = len(text)
    for m in reversed(markers):  # each marker's own stretch, up to the next one: linear in the text
        found = numbers_in(latex_to_plain(text[m.end():end]))
        if found:
            return found[0]
        end = m.start()
    return None


def resolve_scope(scope: str, solution_style: str = "answer") -> str:
    """``auto`` -> ``final`` for worked solutions (steps, calculator), ``first_line`` for answer-only ones."""
    if scope != "auto":
        return scope
    return "first_line" if solution_style == "answer" else "final"


def extract_prediction_answer(completion: str, scope: str = "first_line") -> Answer | None:
    """The final answer of a model completion (see the module docstring)."""
    if not completion:
        return None
    text = cut_at_marker(completion)
    if scope == "final":
        marked = final_marked_answer(text)
        return marked if marked is not None else final_number(text)
    boxed = boxed_contents(text)
    if boxed:
        return parse_boxed(boxed[0] if scope == "first_line" else boxed[-1])
    if scope == "first_line":
        text = first_line(text)
    return final_number(text)


def _tolerance_scale(pred: Answer, gold: Answer) -> Fraction:
    exponents = [a.exponent for a in (pred, gold) if a.exponent is not None]
    return Fraction(10) ** max(exponents) if exponents else Fraction(1)


def numbers_match(pred: Answer, gold: Answer, *, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                  lowest_terms: bool = False) -> bool:
    """Numeric equality under the competition's rules (see the module docstring). Both must be numbers.

    ``lowest_terms``: the gold is a simplest form (``最简``), so a fraction written with a common factor
    does not count (otherwise echoing the problem's ``495/810`` would "simplify" it).
    """
    if pred.value is None or gold.value is None:
        raise ValueError("numbers_match needs two numeric answers")
    if lowest_terms and not pred.lowest_terms:
        return False
    if pred.kind == "fraction" and gold.kind == "fraction" and pred.percent == gold.percent:
        return pred.value == gold.value
    tol = Fraction(repr(float(atol))) * _tolerance_scale(pred, gold) + Fraction(repr(float(rtol))) * abs(gold.value)
    candidates = [pred.value]
    if gold.percent and not pred.percent:
        candidates.append(pred.value * 100)
    elif pred.percent and not gold.percent:
        candidates.append(pred.value / 100)
    return any(abs(c - gold.value) <= tol for c in candidates)


def latex_equivalent(pred_latex: str, gold_latex: str) -> bool | None:
    """math-verify's verdict on two LaTeX answers, or None when math-verify is not installed."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    try:
        gold = parse(f"\\boxed{{{gold_latex}}}")
        pred = parse(f"\\boxed{{{pred_latex}}}")
        return bool(gold) and bool(pred) and bool(verify(gold, pred))
    except Exception:  # math-verify raises on odd LaTeX; treat as not equal
        return False


def requires_lowest_terms(gold_solution: str) -> bool:
    """Whether the gold states a simplest form (``最简``, "simplest form", "lowest terms")."""
    lowered = gold_solution.lower()
    return "最简" in gold_solution or "simplest form" in lowered or "lowest terms" in lowered


def answers_match(pred: Answer | None, gold: Answer | None, *, atol: float = DEFAULT_ATOL,
                  rtol: float = DEFAULT_RTOL, lowest_terms: bool = False) -> bool:
    """True when the prediction's answer equals the gold answer (numbers, or LaTeX via math-verify)."""
    if pred is None or gold is None:
        return False
    if pred.is_number and gold.is_number:
        return numbers_match(pred, gold, atol=atol, rtol=rtol, lowest_terms=lowest_terms)
    if pred.latex is not None and gold.latex is not None:
        if re.sub(r"\s+", "", pred.latex) == re.sub(r"\s+", "", gold.latex):
            return True  # the same LaTeX, with or without math-verify
        return bool(latex_equivalent(pred.latex, gold.latex))
    return False
