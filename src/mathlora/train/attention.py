"""Padding-free packed rows on a CPU: the linear layers see one flat row, attention sees the packed rows.

Packed rows are padded to the micro-batch's longest (13.5% of the demo's positions were padding), and on a CPU
every padded position costs the full matmuls of every layer. ``flat_inputs`` concatenates a micro-batch's rows
into one row without padding (``row_lengths`` remembers where each packed row ends); the model runs its linear
layers, norms and MLPs on that row, and the attention kernel ``rows`` (registered with transformers as
``mathlora_rows``) cuts queries, keys and values back into the packed rows (padded only there), attends within
each record (block-diagonal causal mask from the restarting position ids; eager matmuls, fp32 softmax), and
concatenates the outputs again. The result equals the padded rows' up to rounding: no token sees another
record, and a padding position never reaches a real one. Only for the trainer's own loss (the kernel needs
``row_lengths`` and ``row_mask`` passed through the model's forward); never for generation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mathlora.train.data import Row

NAME = "mathlora_rows"


def register() -> str:
    """Register the kernel with transformers (idempotent); returns its name for ``set_attn_implementation``."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, rows)
    return NAME


def flat_inputs(rows: list[Row], dtype: torch.dtype) -> dict:
    """One unpadded row from the packed ``rows``, with ``row_lengths`` and the per-row additive ``row_mask``
    ([rows, 1, width, width] in ``dtype``: 0 where a query may attend, -inf elsewhere)."""
    lengths = [len(r.input_ids) for r in rows]
    width = max(lengths)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        pos = torch.tensor(r.position_ids, dtype=torch.long)
        segment[i, :len(pos)] = torch.cumsum(pos == 0, 0)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = (segment[:, :, None] == segment[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, float("-inf"))[:, None]
    ids = [t for r in rows for t in r.input_ids]
    pos = [t for r in rows for t in r.position_ids]
    tgt = [t for r in rows for t in r.targets]
    return {"input_ids": torch.tensor([ids], dtype=torch.long), "position_ids": torch.tensor([pos], dtype=torch.long),
            "targets": torch.tensor([tgt], dtype=torch.long), "row_lengths": lengths, "row_mask": mask}


def _to_rows(x: torch.Tensor, lengths: list[int], width: int) -> torch.Tensor:
    """[1, heads, tokens, dim] -> [rows, heads, width, dim], each row right-padded with zeros."""
    parts = x[0].split(lengths, dim=1)
    return torch.stack([F.pad(p, (0, 0, 0, width - p.shape[1])) for p in parts])


def rows(module, query, key, value, attention_mask, scaling: float | None = None, dropout: float = 0.0,
         **kwargs):
    """The attention kernel (transformers' signature): returns ([1, tokens, heads, dim], None). Called without
    ``row_lengths`` (a model built for training, used otherwise), it is transformers' causal sdpa."""
    if "row_lengths" not in kwargs:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    lengths, mask = kwargs["row_lengths"], kwargs["row_mask"]
    width = mask.shape[-1]
    q, k, v = (_to_rows(t, lengths, width) for t in (query, key, value))
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale + mask.to(q.dtype)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    if dropout and module.training:
        probs = F.dropout(probs, p=dropout)
    out = torch.matmul(probs, v)  # [rows, heads, width, dim]
    out = torch.cat([out[i, :, :n] for i, n in enumerate(lengths)], dim=1)  # [heads, tokens, dim]
    return out.transpose(0, 1).unsqueeze(0).contiguous(), None
