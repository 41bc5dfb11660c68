"""Competition-style math records (the shapes of the real training data), for labeling tests."""

from __future__ import annotations

import hashlib
import random


def _rid(problem: str, solution: str) -> str:
    return hashlib.sha256(f"{problem}\n{solution}".encode()).hexdigest()[:16]


def _num(rng: random.Random, lo: float, hi: float, decimals: int) -> str:
    value = rng.uniform(lo, hi)
    return f"{value:.{decimals}f}" if decimals else str(int(value))


def _one(rng: random.Random) -> tuple[str, str, str]:
    kind = rng.choice(["addsub", "addsub", "muldiv", "power", "equation", "function", "area", "mean",
                       "fraction", "word"])
    if kind == "addsub":
        dec = rng.choice([0, 2, 2])
        hi = rng.choice([50, 10000, 100000])
        a, b = _num(rng, -hi, hi, dec), _num(rng, -hi, hi, dec)
        op = rng.choice(["+", "-"])
        res = round(float(a) + float(b) if op == "+" else float(a) - float(b), 2)
        return kind, f"计算 {a} {op} {b} 等于多少？", f"{a} {op} {b} = {res}"
    if kind == "muldiv":
        dec = rng.choice([0, 2])
        a, b = _num(rng, 1, 1000, dec), _num(rng, 1, 100, dec)
        op = rng.choice(["*", "/"])
        res = float(a) * float(b) if op == "*" else float(a) / float(b)
        return kind, f"计算 {a} {op} {b} 等于多少？", f"{a} {op} {b} = {res}"
    if kind == "power":
        base = _num(rng, 2, 300, rng.choice([0, 2]))
        exp = rng.randint(2, 12)
        return kind, f"计算 {base} 的 {exp} 次方？", f"{base} 的 {exp} 次方 = {float(base) ** exp:.4E}"
    if kind == "equation":
        a, b = rng.randint(-99, 99) or 1, rng.randint(-99, 99)
        return kind, f"解方程 {a}x + {b} = 0", f"方程的解为：{-b / a}"
    if kind == "function":
        x = _num(rng, 1, 10, 2)
        c, n = rng.randint(2, 30), rng.randint(2, 16)
        return kind, f"当 x = {x} 时，求函数 y = {c}x^{n} 的值", f"函数的值为：{c * float(x) ** n:.4E}"
    if kind == "area":
        w, h = _num(rng, 1, 100, 2), _num(rng, 1, 100, 2)
        return kind, f"一个长方形的长为 {w} 厘米，宽为 {h} 厘米，求它的面积。", f"面积为 {float(w) * float(h):.2f} 平方厘米"
    if kind == "mean":
        xs = [_num(rng, 1, 100, rng.choice([0, 2])) for _ in range(rng.randint(3, 6))]
        mean = sum(map(float, xs)) / len(xs)
        return kind, f"求以下数据的平均值：{', '.join(xs)}", f"平均值为 {mean}"
    if kind == "fraction":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return kind, f"将分数 {a * 6}/{b * 6} 化简为最简分数", f"最简分数为 {a}/{b}"
    steps = rng.randint(1, 12)
    body = " ".join(f"Step {i}: we combine the quantities and carry the result forward." for i in range(steps))
    n = rng.randint(2, 40)
    return ("word", f"A store sells {n} apples each day for {rng.randint(2, 9)} days. "
            f"How many apples are sold in total over the whole period of time?",
            f"{body} The answer is \\boxed{{{n * 3}}}.")


def competition_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind, problem, solution = _one(rng)
        out.append({"id": _rid(problem, solution), "problem": problem, "solution": solution, "type": kind})
    return out
