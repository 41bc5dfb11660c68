"""A bounded, exact calculator for ``<<expr=value>>`` annotations in worked solutions.

``calculate("4204.22 + -2369.17")`` -> ``"1835.05"``. The expression is parsed with :mod:`ast` and only a
whitelist of nodes is evaluated (numbers, ``+ - * / ^`` (``**``), unary minus/plus, parentheses, ``√x`` /
``sqrt(x)``, ``gcd(a, b)`` and ``count(a, b, ...)``, the number of its arguments); names, attributes, calls to
anything else, subscripts and strings are refused. Nothing is ever passed to ``eval``. Precedence is
mathematical: ``-456.58^4`` is -(456.58^4); a negative base is written ``(-456.58)^4``.

Arithmetic is exact (``fractions.Fraction``) while a value has at most ``MAX_RESULT_DIGITS`` digits; beyond
that (``57 * 4.03^54``, ``86 * 0.54^90``) it is rounded to ``SIGNIFICANT_DIGITS`` significant digits instead of
being refused, so the work is bounded by significant digits and magnitude (``MAX_MAGNITUDE``), not by the
exponent. A square root is computed with 40 significant digits (``decimal``). The result is formatted by
:func:`mathlora.arith.numbers.format_result`: the normalize rule (more than two decimals -> rounded half-up to
two) for ordinary numbers, and scientific notation with 10 significant digits (``2.769155521E+34``,
``7.078428268E-23``) for a magnitude of 1e28 or more or a nonzero one below 1e-6 (where the source switches too), where two decimals would
lose the value, so the calculator's output and the training text share one number format.

The annotation protocol is read and written here only: ``OPEN``/``EQUALS``/``CLOSE`` are its markers,
``annotate(expr, value)`` writes one, ``annotations(text)`` reads the complete ones, ``strip_annotations`` turns
them into plain ``expr = value`` text and ``open_annotation(text)`` finds the one a text being generated has
opened and not yet closed (the calculator-assisted decoders' question).

Bounded: input length, number length, exponent size and result magnitude are capped, so a hostile or huge
expression (``9^9^9``, ``10^100000``, 10 kB of text) is refused in microseconds with a
:class:`CalculatorError` saying why.
"""

from __future__ import annotations

import ast
import math
import re
from decimal import Context, Decimal
from fractions import Fraction
from typing import Iterator

from mathlora.arith.numbers import format_result
from mathlora.errors import MathloraError

MAX_EXPR_CHARS = 200
MAX_NUMBER_CHARS = 40
MAX_EXPONENT = 999          # |n| in x^n
MAX_RESULT_DIGITS = 120     # digits of numerator or denominator kept exactly; beyond: rounded
SIGNIFICANT_DIGITS = 40     # significant digits of a value rounded for size
MAX_MAGNITUDE = 400         # |log10| of any nonzero intermediate value at most
MAX_NODES = 64
_SQRT_CONTEXT = Context(prec=40)
_ROUND_CONTEXT = Context(prec=SIGNIFICANT_DIGITS, Emax=10 * MAX_MAGNITUDE, Emin=-10 * MAX_MAGNITUDE)


class CalculatorError(MathloraError):
    """The expression was refused: the message says why."""


# -- the <<expr=value>> annotation ---------------------------------------------------------------------------

OPEN, EQUALS, CLOSE = "<<", "=", ">>"
_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def annotate(expr: str, value: str) -> str:
    """``annotate("2 + 3", "5")`` -> ``<<2 + 3=5>>``: one computation as the calculator style writes it."""
    return f"{OPEN}{expr}{EQUALS}{value}{CLOSE}"


def annotations(text: str) -> Iterator[tuple[str, str]]:
    """``(expr, value)`` of every complete annotation in ``text``, in order (an expression has no ``=``)."""
    for m in _ANNOTATION.finditer(text):
        yield m.group(1), m.group(2)


def strip_annotations(text: str) -> str:
    """``<<a + b=c>>`` -> ``a + b = c``: a calculator-style solution read as a steps-style one."""
    return _ANNOTATION.sub(lambda m: f"{m.group(1)} = {m.group(2)}", text)


def open_annotation(text: str) -> tuple[int, int] | None:
    """The annotation ``text`` leaves open (its last ``<<`` with no ``>>`` after it) as (where its expression
    starts, where its first ``=`` is, -1 before the ``=`` is written); None when no annotation is open."""
    opened = text.rfind(OPEN)
    if opened < 0 or text.find(CLOSE, opened) >= 0:
        return None
    start = opened + len(OPEN)
    return start, text.find(EQUALS, start)


# Unicode operators that worked solutions and models write, mapped to Python syntax.
_TRANSLATE = str.maketrans({"×": "*", "÷": "/", "−": "-", "＋": "+", "－": "-", "（": "(", "）": ")",
                            "，": ","})
_SQRT_SIGN = re.compile(r"√\s*(\d+(?:\.\d+)?|\([^()]*\))")
_ALLOWED_CHARS = re.compile(r"[0-9.+\-*/^()√,\sa-z]*")


def _digits(value: Fraction) -> int:
    return max(len(str(abs(value.numerator))), len(str(value.denominator)))


def _magnitude(value: Fraction) -> int:
    """About log10(|value|) (within 1), from the digit counts: cheap for any size."""
    return len(str(abs(value.numerator))) - len(str(value.denominator))


def _checked(value: Fraction) -> Fraction:
    """``value`` itself while it is small enough to keep exactly, else rounded to SIGNIFICANT_DIGITS digits."""
    if _digits(value) <= MAX_RESULT_DIGITS:
        return value
    if value and abs(_magnitude(value)) > MAX_MAGNITUDE:
        raise CalculatorError(f"result out of range (beyond 10^±{MAX_MAGNITUDE})")
    return Fraction(_ROUND_CONTEXT.divide(Decimal(value.numerator), Decimal(value.denominator)))


def _sqrt(x: Fraction) -> Fraction:
    if x < 0:
        raise CalculatorError("square root of a negative number")
    if x == 0:
        return Fraction(0)
    n, d = x.numerator, x.denominator
    rn, rd = math.isqrt(n), math.isqrt(d)
    if rn * rn == n and rd * rd == d:
        return Fraction(rn, rd)
    root = _SQRT_CONTEXT.sqrt(_SQRT_CONTEXT.divide(Decimal(n), Decimal(d)))
    return Fraction(root)


def _gcd(args: list[Fraction]) -> Fraction:
    if len(args) != 2 or any(a.denominator != 1 for a in args):
        raise CalculatorError("gcd() takes two integers")
    return Fraction(math.gcd(args[0].numerator, args[1].numerator))


_FUNCTIONS = {"sqrt": lambda args: _sqrt(args[0]) if len(args) == 1 else _bad("sqrt() takes one number"),
              "gcd": _gcd,
              "count": lambda args: Fraction(len(args)) if args else _bad("count() takes at least one number")}


def _bad(reason: str):
    raise CalculatorError(reason)


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        if exponent == Fraction(1, 2):
            return _sqrt(base)
        raise CalculatorError("only integer exponents (and 1/2) are supported")
    n = exponent.numerator
    if abs(n) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {n} too large (at most {MAX_EXPONENT})")
    if base == 0:
        if n < 0:
            raise CalculatorError("division by zero")
        return Fraction(0 if n else 1)
    # bound the size before computing: the magnitude grows n times, the digits about n times
    if abs(base) != 1 and abs(n) * (abs(_magnitude(base)) + 1) > 2 * MAX_MAGNITUDE \
            and abs(n) * abs(math.log10(abs(base))) > MAX_MAGNITUDE:
        raise CalculatorError(f"result out of range (beyond 10^±{MAX_MAGNITUDE})")
    if _digits(base) * abs(n) <= MAX_RESULT_DIGITS * 2:
        return _checked(base ** n)
    # too many digits to keep exactly: computed with SIGNIFICANT_DIGITS + 10 digits, then rounded
    context = Context(prec=SIGNIFICANT_DIGITS + 10, Emax=10 * MAX_MAGNITUDE, Emin=-10 * MAX_MAGNITUDE)
    approx = context.power(context.divide(Decimal(base.numerator), Decimal(base.denominator)), n)
    return _checked(Fraction(approx))


def _evaluate(node: ast.AST, numbers: list[Fraction], budget: list[int]) -> Fraction:
    """Evaluate a whitelisted node; numbers were lifted out of the text as names ``_n0``, ``_n1``, ..."""
    budget[0] -= 1
    if budget[0] < 0:
        raise CalculatorError(f"expression too long (over {MAX_NODES} operations)")
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, numbers, budget)
    if isinstance(node, ast.Name) and re.fullmatch(r"_n\d+", node.id):
        return numbers[int(node.id[2:])]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, numbers, budget)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, numbers, budget), _evaluate(node.right, numbers, budget)
        if isinstance(node.op, ast.Add):
            return _checked(left + right)
        if isinstance(node.op, ast.Sub):
            return _checked(left - right)
        if isinstance(node.op, ast.Mult):
            return _checked(left * right)
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise CalculatorError("division by zero")
            return _checked(left / right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS \
            and not node.keywords:
        return _checked(_FUNCTIONS[node.func.id]([_evaluate(a, numbers, budget) for a in node.args]))
    raise CalculatorError(f"{type(node).__name__} is not allowed (numbers, + - * / ^, sqrt, gcd, count only)")


_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def calculate_value(expr: str) -> Fraction:
    """The exact value of ``expr`` (see the module docstring); raises :class:`CalculatorError`."""
    if not isinstance(expr, str):
        raise CalculatorError("expression must be text")
    if len(expr) > MAX_EXPR_CHARS:
        raise CalculatorError(f"expression too long ({len(expr)} characters, at most {MAX_EXPR_CHARS})")
    text = expr.translate(_TRANSLATE).strip()
    if not text:
        raise CalculatorError("empty expression")
    if not _ALLOWED_CHARS.fullmatch(text):
        bad = sorted({c for c in text if not _ALLOWED_CHARS.fullmatch(c)})
        raise CalculatorError(f"character(s) {''.join(bad)!r} not allowed")
    text = _SQRT_SIGN.sub(lambda m: f"sqrt({m.group(1)})", text)
    if "√" in text:
        raise CalculatorError("√ must be followed by a number or a parenthesis")
    numbers: list[Fraction] = []

    def number(m: re.Match) -> str:
        if len(m.group(0)) > MAX_NUMBER_CHARS:
            raise CalculatorError(f"number too long (over {MAX_NUMBER_CHARS} characters)")
        numbers.append(Fraction(m.group(0)))
        return f" _n{len(numbers) - 1} "

    text = _NUMBER.sub(number, text).replace("^", "**").strip()
    if re.search(r"[a-z]", re.sub(r"_n\d+|\bsqrt\b|\bgcd\b|\bcount\b", "", text)):
        raise CalculatorError("names are not allowed (numbers, + - * / ^, sqrt, gcd, count only)")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalculatorError("not a well-formed expression") from None
    try:
        return _evaluate(tree, numbers, [MAX_NODES])
    except RecursionError:
        raise CalculatorError("expression nested too deeply") from None


def calculate(expr: str, decimals: int = 2) -> str:
    """``expr``'s value as text in the calculator's number format (``format_result``); raises
    :class:`CalculatorError`."""
    return format_result(calculate_value(expr), decimals)
