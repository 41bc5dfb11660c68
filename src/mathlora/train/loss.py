"""The training loss: summed cross-entropy over learnable tokens only.

The LM head runs only on positions with a target (response tokens and EOS), so prompt and padding
positions cost no vocabulary projection. ``run_micro_batches`` divides the sum by the learnable-token count
of the whole global batch (all micro-batches, all processes), which makes gradient accumulation and data
parallelism give the same mean as one big batch.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from mathlora.run_dir.tokens import IGNORE
from mathlora.train.attention import flat_inputs
from mathlora.train.data import Row, StepBatch, collate
from mathlora.train.distributed import ProcessGroup, full_tensor, no_gradient_sync


class LearnableTokenLoss(nn.Module):
    """Wraps a causal LM (peft or plain); ``forward`` returns (loss_sum, learnable_token_count)."""

    def __init__(self, causal_lm: nn.Module, fused_ce=None):
        super().__init__()
        self.causal_lm = causal_lm
        # fused_ce(head_weight, hidden, targets) -> summed loss, e.g. Liger's fused linear cross-entropy
        # (never materialises the logits); None = the head, then F.cross_entropy in fp32.
        self.fused_ce = fused_ce

    def _backbone_and_head(self):
        lm = self.causal_lm
        if hasattr(lm, "get_base_model"):
            lm = lm.get_base_model()
        return lm.get_decoder(), lm.get_output_embeddings()

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, targets: torch.Tensor, **rows):
        backbone, head = self._backbone_and_head()
        # No attention mask and no cache: transformers derives per-record causal masks from the
        # restarting position ids (packed rows), or plain causal masks for right-padded rows. ``rows``
        # (row_lengths, row_mask): one flat row for the ``mathlora_rows`` kernel (mathlora.train.attention).
        hidden = backbone(input_ids=input_ids, position_ids=position_ids, use_cache=False, **rows).last_hidden_state
        keep = targets != IGNORE
        if self.fused_ce is not None and type(head) is nn.Linear and head.bias is None:
            return self.fused_ce(head.weight, hidden[keep], targets[keep]), keep.sum()
        logits = head(hidden[keep]).float()
        loss_sum = F.cross_entropy(logits, targets[keep], reduction="sum")
        return loss_sum, keep.sum()


def run_micro_batches(wrapped, batch: StepBatch, group: ProcessGroup, pad_id: int, packed: bool,
                      static_shape: tuple[int, int] | None = None,
                      flat_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Forward/backward every micro-batch; the gradient sync happens once, on the last one.

    Returns the summed loss as a tensor on the device: nothing here waits for the device (the caller reads
    it at log steps only). ``static_shape`` = (rows, width) pads every micro-batch to one shape (CUDA graphs).
    ``flat_dtype``: packed rows go in as one unpadded row for the ``mathlora_rows`` attention kernel (its
    mask in that dtype; ``mathlora.train.attention``).
    """
    batches = batch.micro_batches or [[Row([pad_id], [0], [IGNORE])]]  # no record here: a no-op row keeps
    cuda = group.device.startswith("cuda")                               # the collective calls in step
    loss_sum = torch.zeros((), dtype=torch.float64, device=group.device if cuda else "cpu")
    rows, width = static_shape if static_shape is not None else (None, None)
    for j, mb in enumerate(batches):
        last = j == len(batches) - 1
        sync = contextlib.nullcontext() if (last or not group.distributed) else no_gradient_sync(wrapped)
        if flat_dtype is not None:
            host = flat_inputs(mb, flat_dtype)
        else:
            host = collate(mb, pad_id, packed=packed, width=width, n_rows=rows)
        inputs = {k: (v.pin_memory().to(group.device, non_blocking=True) if cuda and torch.is_tensor(v) else v)
                  for k, v in host.items()}
        if static_shape is not None and cuda:
            torch.compiler.cudagraph_mark_step_begin()
        with sync:
            part, _ = wrapped(**inputs)
            (part * (group.world / batch.learnable_tokens)).backward()
        loss_sum += part.detach().double()
    return loss_sum


def clip_gradients(params, max_norm: float | None, as_tensor: bool = False):
    """Clip to ``max_norm`` (when set) and return the total gradient norm before clipping (a float, or the
    device tensor with ``as_tensor``, which does not wait for the device)."""
    limit = max_norm if max_norm is not None else math.inf
    norm = full_tensor(torch.nn.utils.clip_grad_norm_(params, limit))  # DTensor norms under FSDP2
    return norm if as_tensor else float(norm)
