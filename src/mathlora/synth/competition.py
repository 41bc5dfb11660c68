"""Contest-style math problems: the contest's families, wordings, answer formats, ranges and mix.

The eleven Chinese families are declared once in :mod:`mathlora.arith.families` (wording, numbers' ranges, the
contest's raw solution); English MATH-style word problems (LaTeX solutions with ``\\boxed{}``) are written
here. ``generate`` splits the requested count over the families (``mix="contest"``: the contest's shares, two
thirds arithmetic; ``"equal"``: the same count each; a family with few distinct problems (45 fractions, 100
masses) is capped at what is left and its rest goes to the others), draws each family from its own seeded
stream, rejects repeats and excluded problems, and shuffles the result with the seed.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from fractions import Fraction
from typing import Callable, Iterable

from mathlora.arith import families
from mathlora.data.apportion import largest_remainder
from mathlora.arith.numbers import format_number
from mathlora.errors import MathloraError
from mathlora.arith.worked import NOT_BUILT, apply_style

MAX_TRIES_PER_RECORD = 2000
TEST_SEED_OFFSET = 1_000_003  # the held-out set's own stream: never the training set's
PROGRESS_STEP = 1024


# ------------------------------------------------------------------------ English MATH-style problems

_NAMES = ("Alice", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Isabel", "Jamal",
          "Kira", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara")
_THINGS = ("marbles", "stickers", "apples", "books", "pencils", "cards", "shells", "coins", "stamps", "beads")


def prime_factorization_tex(n: int) -> str:
    """``360`` -> ``2^3 \\cdot 3^2 \\cdot 5``."""
    parts, p = [], 2
    while p * p <= n:
        k = 0
        while n % p == 0:
            n //= p
            k += 1
        if k:
            parts.append(f"{p}^{k}" if k > 1 else str(p))
        p += 1
    if n > 1:
        parts.append(str(n))
    return " \\cdot ".join(parts) if parts else "1"


def _english_word_problem(rng: random.Random) -> tuple[str, str]:
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    start, bags, per_bag = rng.randint(5, 200), rng.randint(2, 12), rng.randint(2, 25)
    bought = bags * per_bag
    gave = rng.randint(1, start + bought - 1)
    left = start + bought - gave
    problem = (f"{name} has {start} {thing}. {name} buys {bags} bags with {per_bag} {thing} in each bag "
               f"and then gives away {gave} {thing}. How many {thing} does {name} have now?")
    solution = (f"The bags hold ${bags} \\times {per_bag} = {bought}$ {thing}, so {name} has "
                f"${start} + {bought} = {start + bought}$ {thing} before giving any away. "
                f"After giving away {gave}, {name} has ${start + bought} - {gave} = {left}$ {thing}. "
                f"The answer is $\\boxed{{{left}}}$.")
    return problem, solution


def _english_gcd(rng: random.Random) -> tuple[str, str]:
    common = rng.randint(2, 60)
    a, b = common * rng.randint(2, 40), common * rng.randint(2, 40)
    while a == b:
        b = common * rng.randint(2, 40)
    g = math.gcd(a, b)
    problem = f"What is the greatest common divisor of ${a}$ and ${b}$?"
    solution = (f"Factor both numbers: ${a} = {prime_factorization_tex(a)}$ and "
                f"${b} = {prime_factorization_tex(b)}$. The greatest common divisor takes each common prime "
                f"to its smaller power, which gives ${prime_factorization_tex(g)} = {g}$. "
                f"So the greatest common divisor is $\\boxed{{{g}}}$.")
    return problem, solution


def _english_lcm(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 120), rng.randint(2, 120)
    while a == b:
        b = rng.randint(2, 120)
    g = math.gcd(a, b)
    lcm = a * b // g
    problem = f"What is the least common multiple of ${a}$ and ${b}$?"
    factored = f"We have ${a} = {prime_factorization_tex(a)}$ and ${b} = {prime_factorization_tex(b)}$"
    if g == 1:
        steps = (f"{factored}, which share no prime factor, so their least common multiple is their product "
                 f"${a} \\cdot {b} = {lcm}$. ")
    else:
        steps = (f"{factored}, so $\\gcd({a}, {b}) = {g}$. Then $\\operatorname{{lcm}}({a}, {b}) = "
                 f"\\frac{{{a} \\cdot {b}}}{{{g}}} = \\frac{{{a * b}}}{{{g}}} = {lcm}$. ")
    solution = f"{steps}The answer is $\\boxed{{{lcm}}}$."
    return problem, solution


def _english_percent(rng: random.Random) -> tuple[str, str]:
    percent, whole = rng.randint(1, 99), rng.randint(2, 2000)
    part = Fraction(percent, 100) * whole
    rate = format_number(Fraction(percent, 100))
    answer = format_number(part)
    problem = f"What is ${percent}\\%$ of ${whole}$?"
    solution = (f"Since ${percent}\\% = {rate}$, we compute ${rate} \\times {whole} = {answer}$. "
                f"So ${percent}\\%$ of ${whole}$ is $\\boxed{{{answer}}}$.")
    return problem, solution


def _signed_term(b: int) -> str:
    return f"+ {b}" if b >= 0 else f"- {-b}"


def _english_linear(rng: random.Random) -> tuple[str, str]:
    a, x = rng.randint(2, 30), rng.randint(-50, 50)
    b = rng.choice((-1, 1)) * rng.randint(1, 200)
    c = a * x + b
    move = f"Subtract ${b}$ from" if b > 0 else f"Add ${-b}$ to"
    problem = f"Solve for $x$: ${a}x {_signed_term(b)} = {c}$."
    solution = (f"{move} both sides to get ${a}x = {c - b}$. Dividing both sides by ${a}$ gives "
                f"$x = \\frac{{{c - b}}}{{{a}}} = {x}$. So $x = \\boxed{{{x}}}$.")
    return problem, solution


_ENGLISH_TEMPLATES: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    _english_word_problem, _english_gcd, _english_lcm, _english_percent, _english_linear)


def make_english_math(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_ENGLISH_TEMPLATES)(rng)


# ------------------------------------------------------------------------------------- generation

_MAKERS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    **{f.name: f.make for f in families.CHINESE}, families.ENGLISH: make_english_math}

FAMILIES: tuple[str, ...] = tuple(_MAKERS)
MIXES = ("contest", "equal")

# The contest's mix: each family's share of the contest's train.json (distinct Chinese pairs, English lines).
CONTEST_SHARES: dict[str, float] = {**{f.name: f.share for f in families.CHINESE},
                                    families.ENGLISH: families.ENGLISH_SHARE}
_SPACE: dict[str, int | None] = {**{f.name: f.space for f in families.CHINESE}, families.ENGLISH: None}


def resolve_types(types: Iterable[str] | None) -> list[str]:
    """Validated family names in canonical order; None means all families."""
    if types is None:
        return list(FAMILIES)
    wanted = [t.strip() for t in types if t.strip()]
    unknown = sorted({t for t in wanted if t not in _MAKERS})
    if unknown:
        raise MathloraError(f"unknown problem type(s) {', '.join(unknown)} (allowed: {', '.join(FAMILIES)})")
    if not wanted:
        raise MathloraError(f"no problem types given (allowed: {', '.join(FAMILIES)})")
    return [f for f in FAMILIES if f in wanted]


def allocate_counts(count: int, weights: dict[str, float], rng: random.Random,
                    caps: dict[str, int | None] | None = None) -> dict[str, int]:
    """Split ``count`` by weight (largest remainder; ties broken by ``rng``), no family above its cap: a capped
    family gets its cap and the rest is split again over the others by their weights."""
    caps = caps or {}
    counts = {name: 0 for name in weights}
    open_ = [name for name, w in weights.items() if w > 0]  # in the order given: deterministic tie-breaks
    left = count
    while left > 0 and open_:
        share = largest_remainder(left, {n: weights[n] for n in open_}, lambda _n: rng.random())
        over = [n for n in open_ if caps.get(n) is not None and counts[n] + share[n] >= caps[n]]
        if not over:
            for n in open_:
                counts[n] += share[n]
            return counts
        for n in over:  # fill the capped families and split the rest again
            left -= caps[n] - counts[n]
            counts[n] = caps[n]
        open_ = [n for n in open_ if n not in over]
    if left > 0:
        raise MathloraError(f"asked for {count} records but these problem types have only {sum(counts.values())} "
                            "distinct problems left; ask for fewer records or more problem types")
    return counts


def generate(count: int, seed: int, types: list[str] | None = None,
             exclude: set[str] | None = None, *, progress: bool = False, style: str = "answer",
             mix: str = "contest", unstyled: Counter | None = None) -> list[dict]:
    """``count`` distinct contest-style records ``{"problem", "solution", "type"}``, shuffled.

    Deterministic in (count, seed, types, exclude, mix). No record's problem is in ``exclude``. ``mix``:
    ``contest`` (the contest's shares) or ``equal``. ``progress`` shows a progress bar on stderr. ``style``
    (``answer``, ``steps``, ``calculator``) picks the solution format (:mod:`mathlora.arith.worked`); the problems
    and their order do not depend on it; a record whose worked solution cannot be built keeps its contest
    solution (``mathlora.arith.worked.apply_style``'s rule) and ``unstyled``, when given, counts it by status:
    a generated answer always agrees with its worked solution, so that count is 0 (a test asserts it).
    """
    if count < 0:
        raise MathloraError(f"count must be >= 0, got {count}")
    if mix not in MIXES:
        raise MathloraError(f"synth mix {mix!r}: allowed {', '.join(MIXES)}")
    names = resolve_types(types)
    order_rng = random.Random(f"mathlora-synth:{seed}")
    excluded = exclude or set()
    taken: dict[str, int] = {}
    for problem in excluded:  # the excluded problems use up part of a small family's space
        name = families.family_of(problem) if isinstance(problem, str) else None
        if name is not None and _SPACE.get(name) is not None:
            taken[name] = taken.get(name, 0) + 1
    caps = {f: None if _SPACE[f] is None else max(0, _SPACE[f] - taken.get(f, 0)) for f in names}
    weights = {f: CONTEST_SHARES[f] if mix == "contest" else 1.0 for f in names}
    quotas = allocate_counts(count, weights, order_rng, caps)
    seen: set[str] = set()
    records: list[dict] = []
    bar = _progress_bar(count) if progress else None
    for family in names:
        make = _MAKERS[family]
        rng = random.Random(f"mathlora-synth:{seed}:{family}")
        for _ in range(quotas[family]):
            for _attempt in range(MAX_TRIES_PER_RECORD):
                problem, solution = make(rng)
                if problem not in seen and problem not in excluded:
                    break
            else:
                raise MathloraError(
                    f"could not find a new {family} problem after {MAX_TRIES_PER_RECORD} tries "
                    f"({len([r for r in records if r['type'] == family])} made); ask for fewer records "
                    f"or more problem types")
            seen.add(problem)
            records.append({"problem": problem, "solution": solution, "type": family})
            if bar is not None and len(records) % PROGRESS_STEP == 0:
                bar.update(PROGRESS_STEP)
    if bar is not None:
        bar.update(len(records) - bar.n)
        bar.close()
    order_rng.shuffle(records)
    if style != "answer":
        styled = [apply_style(r, style, keep_original=False) for r in records]
        records = [r for r, _ in styled]
        if unstyled is not None:
            unstyled.update(result.status for _, result in styled if result.status in NOT_BUILT)
    return records


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="synth", unit="rec", unit_scale=True, mininterval=0.5, leave=False)


def generate_train_and_test(count: int, test_count: int, seed: int, types: list[str] | None = None,
                            style: str = "answer", mix: str = "contest", progress: bool = False,
                            unstyled: Counter | None = None) -> tuple[list[dict], list[dict]]:
    """A training set (solutions in ``style``; ``unstyled`` as in ``generate``) and a held-out test set (answer
    style: only its final answers are read) with no problem in common; the test set is drawn first."""
    test = generate(test_count, seed + TEST_SEED_OFFSET, types, mix=mix)
    train = generate(count, seed, types, exclude={r["problem"] for r in test}, style=style, mix=mix,
                     progress=progress, unstyled=unstyled)
    return train, test
