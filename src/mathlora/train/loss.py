"""The training loss: summed cross-entropy over learnable tokens only.

The LM head runs only on positions with a target (response tokens and EOS), so prompt and padding
positions cost no vocabulary projection. The caller divides the sum by the learnable-token count of
the whole global batch (all micro-batches, all processes), which makes gradient accumulation and data
parallelism give the same mean as one big batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mathlora.train.data import IGNORE


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

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, targets: torch.Tensor):
        backbone, head = self._backbone_and_head()
        # No attention mask and no cache: transformers derives per-record causal masks from the
        # restarting position ids (packed rows), or plain causal masks for right-padded rows.
        hidden = backbone(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
        keep = targets != IGNORE
        if self.fused_ce is not None and type(head) is nn.Linear and head.bias is None:
            return self.fused_ce(head.weight, hidden[keep], targets[keep]), keep.sum()
        logits = head(hidden[keep]).float()
        loss_sum = F.cross_entropy(logits, targets[keep], reduction="sum")
        return loss_sum, keep.sum()
