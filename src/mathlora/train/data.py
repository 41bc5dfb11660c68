"""Training data: the tokenize stage's records, their order per epoch, and batches without padding waste.

A global batch (``train.global_batch_size`` records) is one optimizer step. Each process takes every
``world``-th record of it (a deterministic shard), then either

* packs its records into rows of up to ``pack_length`` tokens (first-fit decreasing); position ids restart
  at 0 for every record, which makes transformers mask attention per record (no cross-record attention),
  or
* sorts them by length and pads each micro-batch to its longest record (right padding: with causal
  attention, real tokens never see the padding, so no attention mask is needed).

Rows carry *targets* already shifted by one (``targets[t] = labels[t + 1]``), so the last token of a
record never learns to predict the first token of the next one, and padding has target -100.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_json_document
from mathlora.run_dir.tokens import IGNORE, STATS_FILE, TOKENS_FILE

REQUIRED_COLUMNS = ("id", "input_ids", "labels")


@dataclass(frozen=True)
class TokenRecord:
    id: str
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def targets(self) -> list[int]:
        """Labels shifted left by one: the token each position must predict (-100: none)."""
        return list(self.labels[1:]) + [IGNORE]

    @property
    def learnable_tokens(self) -> int:
        return sum(1 for t in self.labels[1:] if t != IGNORE)


@dataclass
class Row:
    """One model input row: concatenated records (or one record), not yet padded."""
    input_ids: list[int]
    position_ids: list[int]
    targets: list[int]


def load_token_records(tokens_dir: str | os.PathLike) -> tuple[list[TokenRecord], int]:
    """Read ``<tokens_dir>/tokens.parquet``; returns (records with >= 1 learnable token, skipped count)."""
    import pyarrow.parquet as pq

    d = Path(tokens_dir)
    if not d.exists():
        raise MathloraError(f"tokens folder not found: {d} (run `mathlora tokenize` first)")
    path = d / TOKENS_FILE if d.is_dir() else d
    if not path.exists():
        raise MathloraError(f"{path} not found: expected the tokenize stage's output folder")
    if path.is_dir():
        raise MathloraError(f"{path} is a directory; expected a parquet file")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several kinds on a bad file
        raise MathloraError(f"{path} is not a readable parquet file: {e}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise MathloraError(f"{path} lacks column(s) {', '.join(missing)} (has: {', '.join(table.column_names)})")
    ids, inputs, labels = (table.column(c).to_pylist() for c in REQUIRED_COLUMNS)
    records, skipped = [], 0
    for rid, x, y in zip(ids, inputs, labels):
        if not x or len(x) != len(y):
            raise MathloraError(f"{path}: record {rid}: input_ids and labels differ in length or are empty")
        rec = TokenRecord(str(rid), list(x), list(y))
        if rec.learnable_tokens == 0:
            skipped += 1
            continue
        records.append(rec)
    if not records:
        raise MathloraError(f"{path} holds no record with a learnable token")
    return records, skipped


def read_token_stats(tokens_dir: str | os.PathLike) -> dict:
    """``<tokens_dir>/stats.json``: what the tokenize stage says about its records, at least ``model`` (the
    spec whose tokenizer made them, so the model to train) and ``seq_length``."""
    d = Path(tokens_dir)
    if not d.exists():
        raise MathloraError(f"tokens folder not found: {d} (run `mathlora tokenize` first)")
    path = (d if d.is_dir() else d.parent) / STATS_FILE
    if not path.is_file():
        raise MathloraError(f"{path} not found: the tokenize stage writes it next to {TOKENS_FILE} "
                            f"(run `mathlora tokenize` again)")
    try:
        stats = read_json_document(path, "tokens stats")
    except MathloraError:
        raise MathloraError(f"{path} is not valid JSON (run `mathlora tokenize` again)") from None
    missing = [k for k in ("model", "seq_length") if not isinstance(stats, dict) or k not in stats]
    if missing:
        raise MathloraError(f"{path} lacks {', '.join(missing)} (written by an older mathlora? run "
                            f"`mathlora tokenize` again)")
    return stats


@lru_cache(maxsize=2)
def epoch_order(n_records: int, seed: int, epoch: int) -> list[int]:
    """The record order of one epoch: a permutation from a generator seeded by ``seed + epoch``.

    Cached (callers slice it, never change it): one permutation per epoch, not one per step."""
    import torch

    g = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n_records, generator=g).tolist()


def global_batch_indices(n_records: int, global_batch_size: int, seed: int, step: int, steps_in_epoch: int) -> list[int]:
    """Record indices of optimizer step ``step`` (0-based, counting across epochs)."""
    epoch, within = divmod(step, steps_in_epoch)
    order = epoch_order(n_records, seed, epoch)
    return order[within * global_batch_size:(within + 1) * global_batch_size]


def shard(indices: list[int], rank: int, world: int) -> list[int]:
    """This process's part of a global batch: every ``world``-th record from ``rank``."""
    return indices[rank::world]


def pack_rows(records: list[TokenRecord], pack_length: int) -> list[Row]:
    """First-fit decreasing packing; a record longer than ``pack_length`` gets a row of its own."""
    order = sorted(range(len(records)), key=lambda i: (-len(records[i]), i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(records[i])
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(pack_length - n)
    rows = []
    for members in bins:
        row = Row([], [], [])
        for i in members:
            rec = records[i]
            row.input_ids += rec.input_ids
            row.position_ids += range(len(rec))
            row.targets += rec.targets
        rows.append(row)
    return rows


def single_rows(records: list[TokenRecord]) -> list[Row]:
    """One row per record, longest first (so each micro-batch pads to a similar length)."""
    order = sorted(range(len(records)), key=lambda i: (-len(records[i]), i))
    return [Row(list(records[i].input_ids), list(range(len(records[i]))), records[i].targets) for i in order]


def micro_batches(rows: list[Row], micro_batch_size: int) -> list[list[Row]]:
    return [rows[i:i + micro_batch_size] for i in range(0, len(rows), micro_batch_size)]


def collate(rows: list[Row], pad_id: int, *, packed: bool, width: int | None = None, n_rows: int | None = None):
    """Right-pad rows to the longest. Packed rows pad with a separate segment (positions from 0).

    ``width`` / ``n_rows`` fix the shape (CUDA graphs): rows pad to ``width`` tokens and all-padding rows
    (no target) fill the batch up to ``n_rows``.
    """
    import torch

    if n_rows is not None and len(rows) < n_rows:
        rows = list(rows) + [Row([pad_id], [0], [IGNORE])] * (n_rows - len(rows))
    width = max(max(len(r.input_ids) for r in rows), width or 0)
    ids, pos, tgt = [], [], []
    for r in rows:
        pad = width - len(r.input_ids)
        ids.append(r.input_ids + [pad_id] * pad)
        tail = list(range(pad)) if packed else list(range(len(r.input_ids), width))
        pos.append(r.position_ids + tail)
        tgt.append(r.targets + [IGNORE] * pad)
    return {"input_ids": torch.tensor(ids, dtype=torch.long),
            "position_ids": torch.tensor(pos, dtype=torch.long),
            "targets": torch.tensor(tgt, dtype=torch.long)}


def step_rows(records: list[TokenRecord], *, packing: bool, pack_length: int) -> list[Row]:
    return pack_rows(records, pack_length) if packing else single_rows(records)


@dataclass(frozen=True)
class StepBatch:
    """One optimizer step's data: this process's micro-batches, and the whole global batch's learnable and
    input token counts (the loss divisor and FLOP accounting)."""
    micro_batches: list[list[Row]]
    learnable_tokens: int
    tokens: int


def step_batch(records: list[TokenRecord], *, global_batch_size: int, seed: int, step: int, steps_in_epoch: int,
               rank: int, world: int, packing: bool, pack_length: int, micro_batch_size: int) -> StepBatch:
    """The batch of ``step``. Every process holds every record, so the global counts are summed locally: no
    collective, no device sync."""
    indices = global_batch_indices(len(records), global_batch_size, seed, step, steps_in_epoch)
    rows = step_rows([records[i] for i in shard(indices, rank, world)], packing=packing, pack_length=pack_length)
    return StepBatch(micro_batches(rows, micro_batch_size), sum(records[i].learnable_tokens for i in indices),
                     sum(len(records[i]) for i in indices))
