"""The heuristic judge (``heuristic:v2``): a deterministic difficulty from the record itself.

For users without any LLM, and as a fast fallback. A problem of one of the contest's families
(:mod:`mathlora.arith.families`) gets its family's level, 1-4 from its numbers (the exponent of a power or a
function value, the operands' signs and sizes, the list's length, whether a fraction reduces, ...), so the
recipe's 4:3:2:1 sample over levels 1-4 keeps every family. Any other problem (English MATH, a user's own
wording) gets the general rules, in order:

1. **Operation kind** (detected from the problem text; first match wins) gives a base level:

   ==========================  ==================================================  ====
   kind                        detected by                                         base
   ==========================  ==================================================  ====
   function evaluation         函数 / "function", or ``y = ...x^n`` with ``x =``    3
   linear equation             解方程 / "solve", or ``ax + b = c`` in x            2
   fraction simplification     化简 / 约分 / 最简 / "simplify" and an ``a/b``       1
   root                        平方根 / 立方根 / ``√`` / "square root" / "sqrt"     2
   power                       次方 / 平方 / 立方 / ``^`` / ``**`` / "power"        2
   area / perimeter / volume   面积 / 周长 / 体积 / "area" / "perimeter" / "volume" 2
   mean                        平均 / "mean" / "average"                           2
   multiplication / division   ``×`` ``*`` ``÷`` ``/`` between numbers, 乘 / 除    2
   addition / subtraction      ``+`` or ``-`` between numbers                      1
   word problem                anything else (a story, English prose)               2
   ==========================  ==================================================  ====

2. **Modifiers** (added to the base):

   * exponent size (power and function kinds): exponent >= 5: +1; >= 10: +2;
   * operand magnitude: a number of 4 or more integer digits in a multiplication, division or
     power, or of 5 or more digits anywhere: +1;
   * English or LaTeX word problem (12+ English words, ``$...$`` or ``\\boxed{}``): +1;
   * many operands: 4 or more numbers in the problem (not for word problems): +1;
   * decimals: an operand with decimals in a multiplication, division, power, root or mean: +1;
   * tiny arithmetic: addition/subtraction of whole numbers below 100: -1;
   * solution length: more than 400 characters: +1; more than 1000: +2.

3. The result is clamped to 0..5.
"""

from __future__ import annotations

import re

from mathlora.arith.families import recognise

VERSION = "v2"

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_EXPONENT = re.compile(r"(?:\^|\*\*)\s*\(?\s*(-?\d+)|的\s*(-?\d+)\s*次方|to the power of\s*(-?\d+)|(\d+)(?:st|nd|rd|th) power",
                       re.I)

_KINDS: list[tuple[str, int, re.Pattern]] = [
    ("function", 3, re.compile(r"函数|\bfunction\b|y\s*=\s*[^=]*x\s*\^", re.I)),
    ("equation", 2, re.compile(r"解方程|方程|\bsolve\b|\d\s*x\s*[+\-]\s*\d[^=]*=\s*-?\d", re.I)),
    ("fraction", 1, re.compile(r"(?:化简|约分|最简|\bsimplify\b|\blowest terms\b)", re.I)),
    ("root", 2, re.compile(r"平方根|立方根|√|\bsquare root\b|\bsqrt\b", re.I)),
    ("power", 2, re.compile(r"次方|平方|立方|\^|\*\*|\bpower\b|\bsquared\b|\bcubed\b", re.I)),
    ("area", 2, re.compile(r"面积|周长|体积|\barea\b|\bperimeter\b|\bvolume\b", re.I)),
    ("mean", 2, re.compile(r"平均|\bmean\b|\baverage\b", re.I)),
    ("muldiv", 2, re.compile(r"\d\s*[×*÷/]\s*-?\(?\d|乘|除|\btimes\b|\bdivided by\b|\bproduct\b|\bquotient\b", re.I)),
    ("addsub", 1, re.compile(r"\d\s*[+\-−]\s*-?\(?\d|加|减|\bplus\b|\bminus\b|\bsum\b", re.I)),
]


def operation_kind(problem: str) -> tuple[str, int]:
    """(kind, base level) of a problem; ``("word", 3)`` when no arithmetic form is recognised."""
    for name, base, pattern in _KINDS:
        if pattern.search(problem):
            if name == "fraction" and not re.search(r"\d+\s*/\s*\d+", problem):
                continue
            if name in ("muldiv", "addsub") and _looks_like_prose(problem):
                break
            return name, base
    return "word", 2


def _looks_like_prose(text: str) -> bool:
    """English prose with at least 12 words: a word problem even if it contains a ``+``."""
    return len(re.findall(r"[A-Za-z]{2,}", text)) >= 12


def exponent_size(problem: str) -> int:
    sizes = [abs(int(next(g for g in m.groups() if g))) for m in _EXPONENT.finditer(problem)]
    return max(sizes, default=0)


def heuristic_difficulty(problem: str, solution: str = "") -> int:
    """The documented rules above, applied to one record."""
    found = recognise(problem)
    if found is not None:
        return found.difficulty()
    kind, level = operation_kind(problem)
    numbers = _NUMBER.findall(problem)
    if kind in ("power", "function"):
        exp = exponent_size(problem)
        level += 2 if exp >= 10 else 1 if exp >= 5 else 0
    digits = max((len(n.lstrip("-").split(".")[0].split("e")[0].split("E")[0]) for n in numbers), default=0)
    if digits >= 5 or (digits >= 4 and kind in ("muldiv", "power")):
        level += 1
    if kind == "word" and (_looks_like_prose(problem) or "$" in problem or "\\boxed" in solution):
        level += 1
    if kind != "word" and len(numbers) >= 4:
        level += 1
    if kind in ("muldiv", "power", "root", "mean") and any("." in n for n in numbers):
        level += 1
    if kind == "addsub" and numbers and all("." not in n and abs(float(n)) < 100 for n in numbers):
        level -= 1
    if len(solution) > 1000:
        level += 2
    elif len(solution) > 400:
        level += 1
    return max(0, min(5, level))
