"""Stratified sampling by difficulty: ``total`` records drawn from named levels in a given ratio.

Quotas are apportioned by largest remainder (ties: lower level first), so they always sum to the
total and are exact where the ratio divides it (100000 at 4:3:2:1 -> 40000/30000/20000/10000).
A level with fewer records than its quota either stops the run (``shortfall="error"``) or gives all
it has while the gap is shared by the other named levels in their ratio (``"redistribute"``,
repeated until every quota fits). Each level draws without replacement with its own generator
seeded by ``(seed, level)``; drawn records keep their input order. ``balance_by`` spreads a level's
quota evenly over the values of a field (e.g. ``type``), again giving a short group's gap to the rest.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from mathlora.data.apportion import largest_remainder
from mathlora.data.config import LEVELS, SampleConfig
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_records, write_jsonl
from mathlora.run_dir.atomic import write_json_atomic

TABLE_FILE = "sample_table.json"


def apportion(total: int, weights: dict) -> dict:
    """Split ``total`` by ``weights`` with whole numbers (largest remainder; ties: key order)."""
    order = {k: i for i, k in enumerate(weights)}
    return largest_remainder(total, weights, tie_key=order.__getitem__)


def fill_quotas(total: int, weights: dict, available: dict) -> dict:
    """Apportion ``total`` by ``weights`` but never above ``available``; a capped key's gap goes to the
    others in their ratio, until everything fits. Requires ``total <= sum(available)``."""
    fixed: dict = {}
    while True:
        active = {k: w for k, w in weights.items() if k not in fixed}
        shares = apportion(total - sum(fixed.values()), active) if active else {}
        over = [k for k, n in shares.items() if n > available[k]]
        if not over:
            return {k: fixed.get(k, shares.get(k, 0)) for k in weights}
        for k in over:
            fixed[k] = available[k]


def record_level(rec: dict, n: int) -> int:
    level = rec.get("difficulty")
    if level is None:
        raise MathloraError(f"record {n} (id {rec.get('id', '?')}) has no difficulty; run mathlora label first")
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise MathloraError(f"record {n} (id {rec.get('id', '?')}) has difficulty {level!r}; expected an integer 0..5")
    return level


def _draw(indices: list[int], k: int, rng: random.Random) -> list[int]:
    return sorted(rng.sample(indices, k))


def _draw_balanced(records: list[dict], indices: list[int], k: int, field: str, rng: random.Random) -> list[int]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        groups[str(records[i].get(field, ""))].append(i)
    names = sorted(groups)
    quotas = fill_quotas(k, {g: 1.0 for g in names}, {g: len(groups[g]) for g in names})
    picked: list[int] = []
    for g in names:
        picked.extend(rng.sample(groups[g], quotas[g]))
    return sorted(picked)


def stratified_sample(records: list[dict], total: int, ratios: dict[int, float], seed: int,
                      shortfall: str = "redistribute", balance_by: str | None = None
                      ) -> tuple[list[dict], list[dict]]:
    """(drawn records in input order, table rows {level, available, requested, drawn})."""
    if total < 1:
        raise MathloraError(f"sample total must be at least 1, got {total}")
    if shortfall not in ("redistribute", "error"):
        raise MathloraError(f"shortfall must be redistribute or error, got {shortfall!r}")
    by_level: dict[int, list[int]] = defaultdict(list)
    for n, rec in enumerate(records):
        by_level[record_level(rec, n + 1)].append(n)
    if balance_by and not any(balance_by in rec for rec in records):
        raise MathloraError(f"balance by {balance_by!r}: no record has that field")
    levels = sorted(ratios)
    available = {lv: len(by_level[lv]) for lv in levels}
    requested = apportion(total, {lv: ratios[lv] for lv in levels})
    if total > sum(available.values()):
        raise MathloraError(f"sample total {total} is larger than the data: {sum(available.values())} records "
                            f"in levels {','.join(map(str, levels))}")
    short = [lv for lv in levels if requested[lv] > available[lv]]
    if short and shortfall == "error":
        lv = short[0]
        raise MathloraError(f"level {lv} has {available[lv]} records but its quota is {requested[lv]} "
                            f"(use --shortfall redistribute to fill the gap from other levels)")
    quotas = fill_quotas(total, {lv: ratios[lv] for lv in levels}, available)
    chosen: list[int] = []
    for lv in levels:
        rng = random.Random(f"mathlora-sample:{seed}:{lv}")
        if balance_by:
            chosen.extend(_draw_balanced(records, by_level[lv], quotas[lv], balance_by, rng))
        else:
            chosen.extend(_draw(by_level[lv], quotas[lv], rng))
    table = [{"level": lv, "available": available[lv], "requested": requested[lv], "drawn": quotas[lv]}
             for lv in levels]
    return [records[i] for i in sorted(chosen)], table


def sample_file(cfg: SampleConfig, input_path, output_path, *, seed: int) -> dict:
    """Sample ``input_path`` into ``output_path`` per ``cfg`` (a SampleConfig); ``cfg.seed`` overrides ``seed``.

    Returns (and writes as ``sample_table.json`` next to the output) the table rows plus totals.
    """
    seed = cfg.seed if cfg.seed is not None else seed
    output_path = Path(output_path)
    if output_path.is_dir():
        raise MathloraError(f"output {output_path} is a directory; expected a file path")
    ratios = cfg.weights()
    records = read_records(input_path)
    drawn, rows = stratified_sample(records, cfg.total, ratios, seed, cfg.shortfall, cfg.balance_by)
    summary = {
        "rows": rows,
        "totals": {key: sum(r[key] for r in rows) for key in ("available", "requested", "drawn")},
        "input_records": len(records),
        "ratios": cfg.ratios,
        "seed": seed,
        "shortfall": cfg.shortfall,
        "balance_by": cfg.balance_by,
    }
    if cfg.balance_by:
        summary["by_group"] = _group_counts(drawn, cfg.balance_by)
    write_jsonl(output_path, drawn)
    write_json_atomic(output_path.with_name(TABLE_FILE), summary)
    return summary


def _group_counts(records: list[dict], field: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec in records:
        counts[str(rec["difficulty"])][str(rec.get(field, ""))] += 1
    return {lv: dict(sorted(g.items())) for lv, g in sorted(counts.items())}
