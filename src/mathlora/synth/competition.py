"""Competition-style math problems: the families, wording and answer formats of the competition's data.

Each family is a small function ``make(rng) -> (problem, solution)``. Answers are computed exactly:
``decimal`` with 28 significant digits where the source used it (division, square roots), an exact
context for powers and function values, ``fractions.Fraction`` and integers elsewhere; Python float
``repr`` only where the source printed floats (linear equations, means).

``generate`` allocates the requested count over the families by weight (English word problems take
about 10 % when all families are requested), draws each family from its own seeded stream, rejects
repeats and excluded problems, and shuffles the result with the seed.
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, Overflow
from fractions import Fraction
from typing import Callable, Iterable

from mathlora.errors import MathloraError

# The source's arithmetic: the decimal module's default context (28 significant digits, half-even).
SOURCE_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
# Powers and function values are exact; raise if a result would ever need rounding.
EXACT_CONTEXT = Context(prec=400, traps=[Inexact, Overflow])

MAX_AMOUNT_CENTS = 999_999  # operands up to 9999.99
MAX_TRIES_PER_RECORD = 2000
PROGRESS_STEP = 1024


# ----------------------------------------------------------------------------------------- numbers

def random_amount(rng: random.Random, *, signed: bool, max_cents: int = MAX_AMOUNT_CENTS,
                  min_cents: int = 1) -> Decimal:
    """A nonzero amount with exactly two decimals, e.g. ``Decimal('-2369.17')``."""
    cents = rng.randint(min_cents, max_cents)
    sign = "-" if signed and rng.random() < 0.5 else ""
    return Decimal(f"{sign}{cents // 100}.{cents % 100:02d}")


def plain_number(value: Decimal | Fraction | int) -> str:
    """A bare answer without trailing zeros or exponent: 462.50 -> '462.5', 40 -> '40'."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        value = EXACT_CONTEXT.divide(Decimal(value.numerator), Decimal(value.denominator))
    if isinstance(value, int):
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# ------------------------------------------------------------------------- Chinese competition families

_ARITHMETIC = {
    "+": SOURCE_CONTEXT.add,
    "-": SOURCE_CONTEXT.subtract,
    "*": EXACT_CONTEXT.multiply,  # two 2-decimal operands: the exact product has 4 decimals
    "/": SOURCE_CONTEXT.divide,  # 28 significant digits
}


def arithmetic_problem(a: Decimal, op: str, b: Decimal) -> tuple[str, str]:
    """``计算 4204.22 + -2369.17 等于多少？`` / ``4204.22 + -2369.17 = 1835.05``."""
    return f"计算 {a} {op} {b} 等于多少？", f"{a} {op} {b} = {_ARITHMETIC[op](a, b)}"


def power_problem(base: Decimal, exponent: int) -> tuple[str, str]:
    """``计算 183.94 的 5 次方？`` / ``183.94^5 = 210562442992.2269624224`` (exact)."""
    return f"计算 {base} 的 {exponent} 次方？", f"{base}^{exponent} = {EXACT_CONTEXT.power(base, exponent)}"


def sqrt_problem(x: Decimal) -> tuple[str, str]:
    """``计算 5636.97 的平方根？`` / ``√5636.97 = 75.07975...`` (28 significant digits)."""
    return f"计算 {x} 的平方根？", f"√{x} = {SOURCE_CONTEXT.sqrt(x)}"


def linear_equation_problem(a: int, b: int) -> tuple[str, str]:
    """``解方程 -39x + 20 = 0`` / ``方程的解为：0.5128205128205128`` (float repr of -b/a)."""
    return f"解方程 {a}x + {b} = 0", f"方程的解为：{-b / a!r}"


def function_value_problem(x: Decimal, coefficient: int, exponent: int) -> tuple[str, str]:
    """``当 x = 8.52 时，求函数 y = 17x^16 的值`` / ``函数的值为：<exact value>``."""
    value = EXACT_CONTEXT.multiply(coefficient, EXACT_CONTEXT.power(x, exponent))
    return f"当 x = {x} 时，求函数 y = {coefficient}x^{exponent} 的值", f"函数的值为：{value}"


def mean_problem(numbers: list[int]) -> tuple[str, str]:
    """``求以下数据的平均值：[a, b, c]`` / ``平均值为 47.666666666666664`` (float repr)."""
    listing = ", ".join(map(str, numbers))
    return f"求以下数据的平均值：[{listing}]", f"平均值为 {sum(numbers) / len(numbers)!r}"


def fraction_simplify_problem(numerator: int, denominator: int) -> tuple[str, str]:
    """``将分数 10/12 化简为最简分数。`` / ``最简化的形式为：5/6``."""
    g = math.gcd(numerator, denominator)
    return (f"将分数 {numerator}/{denominator} 化简为最简分数。",
            f"最简化的形式为：{numerator // g}/{denominator // g}")


def _make_arithmetic(op: str) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        return arithmetic_problem(random_amount(rng, signed=True), op, random_amount(rng, signed=True))

    return make


def make_power(rng: random.Random) -> tuple[str, str]:
    return power_problem(random_amount(rng, signed=False, min_cents=100), rng.randint(2, 5))


def make_sqrt(rng: random.Random) -> tuple[str, str]:
    return sqrt_problem(random_amount(rng, signed=False))


def make_linear_equation(rng: random.Random) -> tuple[str, str]:
    a = rng.choice((-1, 1)) * rng.randint(1, 200)
    b = rng.choice((-1, 1)) * rng.randint(1, 500)
    return linear_equation_problem(a, b)


def make_function_value(rng: random.Random) -> tuple[str, str]:
    x = random_amount(rng, signed=False, min_cents=100, max_cents=1000)
    return function_value_problem(x, rng.randint(1, 99), rng.randint(2, 16))


def make_mean(rng: random.Random) -> tuple[str, str]:
    return mean_problem([rng.randint(1, 100) for _ in range(rng.randint(3, 10))])


_RECTANGLE_WORDINGS = (
    "一个长方形的长为 {l} 厘米，宽为 {w} 厘米，请计算其面积。",
    "已知长方形的长是 {l} 厘米，宽是 {w} 厘米，求这个长方形的面积。",
)


def make_rectangle_area(rng: random.Random) -> tuple[str, str]:
    length, width = rng.randint(1, 300), rng.randint(1, 300)
    problem = rng.choice(_RECTANGLE_WORDINGS).format(l=length, w=width)
    return problem, f"面积为 {length * width} 平方厘米"


_DISCOUNT_TENTHS = (50, 55, 60, 65, 70, 75, 80, 85, 88, 90, 95)  # 5 折 ... 9.5 折, as tenths of a 折


def _price(rng: random.Random) -> Decimal:
    """A shop price in yuan: mostly whole, sometimes with jiao/fen."""
    if rng.random() < 0.6:
        return Decimal(rng.randint(10, 5000))
    return random_amount(rng, signed=False, min_cents=1000, max_cents=500_000)


def make_discount(rng: random.Random) -> tuple[str, str]:
    price = _price(rng)
    form = rng.random()
    if form < 0.4:
        tenths = rng.choice(_DISCOUNT_TENTHS)
        rate = plain_number(Decimal(tenths).scaleb(-1))
        answer = Fraction(price) * tenths / 100
        return f"某商品原价为 {price} 元，打 {rate} 折后的价格是多少元？", plain_number(answer)
    if form < 0.7:
        percent = rng.randint(5, 60)
        answer = Fraction(price) * (100 - percent) / 100
        return f"某商品原价为 {price} 元，优惠 {percent}% 后的价格是多少元？", plain_number(answer)
    # The competition's discount answers were sometimes negative: the "reduction" of a price that rose.
    now = _price(rng)
    return (f"某商品原价为 {price} 元，现价为 {now} 元，现价比原价便宜了多少元？",
            plain_number(Fraction(price) - Fraction(now)))


def make_sales(rng: random.Random) -> tuple[str, str]:
    form = rng.random()
    if form < 0.4:
        cost = Decimal(rng.randint(10, 9999)).scaleb(-1)  # one decimal, e.g. 25.6
        markup = rng.randint(5, 120)
        answer = Fraction(cost) * (100 + markup) / 100
        return (f"一件商品的进价为 {plain_number(cost)} 元，商家按进价加价 {markup}% 出售，售价是多少元？",
                plain_number(answer))
    if form < 0.75:
        cost = random_amount(rng, signed=False, min_cents=100, max_cents=20_000)
        gain = random_amount(rng, signed=False, min_cents=10, max_cents=10_000)
        sold = rng.randint(2, 500)
        price = EXACT_CONTEXT.add(cost, gain)
        return (f"商店以每件 {cost} 元的价格购进一批商品，以每件 {price} 元的价格卖出，"
                f"卖出 {sold} 件后共获利多少元？", plain_number(EXACT_CONTEXT.multiply(gain, sold)))
    cost = rng.randint(20, 5000)
    margin = rng.choice((10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 80))
    price = Fraction(cost) * (100 + margin) / 100
    return (f"某商品的售价为 {plain_number(price)} 元，利润率为 {margin}%，这件商品的进价是多少元？",
            str(cost))


_ITEMS_BY_WEIGHT = (("苹果", 120, 300), ("鸡蛋", 45, 70), ("橘子", 80, 200), ("土豆", 100, 400),
                    ("梨", 150, 350), ("桃子", 120, 260), ("芒果", 200, 450), ("核桃", 8, 15))
_BULK_GOODS = ("面粉", "大米", "白糖", "盐", "茶叶", "咖啡豆", "红豆", "绿豆")


def make_mass(rng: random.Random) -> tuple[str, str]:
    form = rng.random()
    if form < 0.4:
        item, low, high = rng.choice(_ITEMS_BY_WEIGHT)
        each, n = rng.randint(low, high), rng.randint(2, 60)
        return f"每个{item}重 {each} 克，{n} 个{item}一共重多少克？", f"{each * n} 克"
    good = rng.choice(_BULK_GOODS)
    if form < 0.75:
        total = rng.randint(100, 10000)
        used = rng.randint(1, total - 1)
        return f"一袋{good}重 {total} 克，用去了 {used} 克，还剩多少克？", f"{total - used} 克"
    parts, each = rng.randint(2, 40), rng.randint(5, 500)
    return f"把 {parts * each} 克{good}平均分成 {parts} 份，每份重多少克？", f"{each} 克"


def make_fraction_simplify(rng: random.Random) -> tuple[str, str]:
    while True:
        den = rng.randint(2, 100)
        num = rng.randint(1, den - 1)
        if math.gcd(num, den) == 1:
            break
    factor = rng.randint(2, 99)
    return fraction_simplify_problem(num * factor, den * factor)


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
    rate = plain_number(Fraction(percent, 100))
    answer = plain_number(part)
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
    "addition": _make_arithmetic("+"),
    "subtraction": _make_arithmetic("-"),
    "multiplication": _make_arithmetic("*"),
    "division": _make_arithmetic("/"),
    "power": make_power,
    "sqrt": make_sqrt,
    "linear_equation": make_linear_equation,
    "function_value": make_function_value,
    "mean": make_mean,
    "rectangle_area": make_rectangle_area,
    "discount": make_discount,
    "sales": make_sales,
    "mass": make_mass,
    "fraction_simplify": make_fraction_simplify,
    "english_math": make_english_math,
}

FAMILIES: tuple[str, ...] = tuple(_MAKERS)

# Each Chinese family weighs 1; English word problems weigh 14/9, i.e. 10 % of an all-family set.
FAMILY_WEIGHTS: dict[str, float] = {name: 1.0 for name in FAMILIES}
FAMILY_WEIGHTS["english_math"] = (len(FAMILIES) - 1) / 9


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


def allocate_counts(count: int, weights: dict[str, float], rng: random.Random) -> dict[str, int]:
    """Split ``count`` by weight (largest remainder; ties broken by ``rng``)."""
    total = sum(weights.values())
    exact = {name: count * w / total for name, w in weights.items()}
    counts = {name: int(v) for name, v in exact.items()}
    order = sorted(weights, key=lambda name: (-(exact[name] - counts[name]), rng.random()))
    for name in order[: count - sum(counts.values())]:
        counts[name] += 1
    return counts


def generate(count: int, seed: int, types: list[str] | None = None,
             exclude: set[str] | None = None, *, progress: bool = False, style: str = "answer",
             mix: str = "contest") -> list[dict]:
    """``count`` distinct competition-style records ``{"problem", "solution", "type"}``, shuffled.

    Deterministic in (count, seed, types, exclude). No record's problem is in ``exclude``.
    ``progress`` shows a progress bar on stderr. ``style`` (``answer``, ``steps``, ``calculator``) picks the
    solution format (:mod:`mathlora.synth.steps`); the problems and their order do not depend on it.
    """
    if count < 0:
        raise MathloraError(f"count must be >= 0, got {count}")
    families = resolve_types(types)
    order_rng = random.Random(f"mathlora-synth:{seed}")
    quotas = allocate_counts(count, {f: FAMILY_WEIGHTS[f] for f in families}, order_rng)
    excluded = exclude or set()
    seen: set[str] = set()
    records: list[dict] = []
    bar = _progress_bar(count) if progress else None
    for family in families:
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
        records = [apply_style(r, style) for r in records]
    return records


def apply_style(record: dict, style: str) -> dict:
    """The record with its solution rewritten in ``style`` (families without rules keep theirs).

    A generated answer always agrees with its worked solution; a disagreement is a bug, so it raises.
    """
    from mathlora.synth.steps import rewrite_solution

    result = rewrite_solution(record["problem"], record["solution"], style)
    if result.status == "mismatch":
        raise AssertionError(f"worked solution disagrees with the generated answer for {record['problem']!r}: "
                             f"{result.rebuilt_answer} vs {result.original_answer}")
    return {**record, "solution": result.solution}


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="synth", unit="rec", unit_scale=True, mininterval=0.5, leave=False)


def generate_train_and_test(count: int, test_count: int, seed: int, types: list[str] | None = None,
                            style: str = "answer", mix: str = "contest") -> tuple[list[dict], list[dict]]:
    """A training set (solutions in ``style``) and a held-out test set (answer style: only its final answers
    are read) with no problem in common; the test set is drawn first."""
    from mathlora.synth.stage import TEST_SEED_OFFSET

    test = generate(test_count, seed + TEST_SEED_OFFSET, types, mix=mix)
    train = generate(count, seed, types, exclude={r["problem"] for r in test}, style=style, mix=mix)
    return train, test
