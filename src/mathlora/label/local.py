"""The local judge: a causal LM scores each record in one batched forward pass (no generation).

The prompt is the rubric, wrapped in the tokenizer's chat template when it has one, followed by
``ANSWER_PREFIX`` in the assistant's turn. The next-token logits over the tokens "0".."5", softmaxed
over those six, give the probabilities; the label is their argmax. Batches are left-padded with
position ids taken from the attention mask, so a record gets the same scores alone or in a batch.
The token prefix every record shares (chat template + rubric up to the problem) is computed once
and its key/value cache reused by every batch, so a batch costs only its records' own tokens.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence
import copy

from mathlora.modeling.compat import cache_argument, output_cache
from mathlora.errors import MathloraError
from mathlora.label.cache import Judgement
from mathlora.label.prompt import ANSWER_PREFIX, RubricPrompt
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.models import load_model, load_tokenizer


def digit_token_ids(tokenizer) -> list[int]:
    """Token ids of "0".."5"; each digit must be exactly one token (else the judge cannot score)."""
    ids = []
    for digit in "012345":
        encoded = tokenizer.encode(digit, add_special_tokens=False)
        if len(encoded) != 1:
            raise MathloraError(f"local judge: the tokenizer splits the digit {digit!r} into {len(encoded)} "
                                f"tokens; pick a judge model whose tokenizer has single-digit tokens")
        ids.append(encoded[0])
    if len(set(ids)) != 6:
        raise MathloraError("local judge: the tokenizer maps two digits to the same token")
    return ids


def judge_text(tokenizer, prompt: str) -> tuple[str, bool]:
    """(text to score, whether it already holds the special tokens) for one rendered rubric prompt."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             add_generation_prompt=True, tokenize=False)
        return text + ANSWER_PREFIX, True
    return f"{prompt}\n{ANSWER_PREFIX}", False


class LocalJudge:
    """Scores records with a loaded causal LM; ``score_texts`` is the pure batched core."""

    def __init__(self, model, tokenizer, prompt: RubricPrompt, *, batch_size: int = 16):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.batch_size = batch_size
        self.digit_ids = digit_token_ids(tokenizer)
        self._prefix_key: tuple[int, ...] | None = None
        self._prefix_kv = None
        self._cache_kwarg = cache_argument(model)

    def texts(self, records: Sequence[dict]) -> list[str]:
        return [judge_text(self.tokenizer, self.prompt.render(r["problem"], r.get("solution") or ""))[0]
                for r in records]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        has_special = bool(getattr(self.tokenizer, "chat_template", None))
        return [self.tokenizer.encode(t, add_special_tokens=not has_special) for t in texts]

    def score_texts(self, texts: Sequence[str]):
        """Probabilities over 0..5 (tensor [n, 6], float32): one forward pass over the batch, after one
        (cached across calls) over the prefix the texts share."""
        ids = self.token_ids(texts)
        return self.score_ids(ids, common_prefix_length(ids))

    def score_ids(self, ids: Sequence[list[int]], prefix_len: int = 0):
        """Score token sequences that share their first ``prefix_len`` tokens.

        The shared prefix (the rubric) is run once and its key/value cache reused; each batch then
        runs only the record-specific suffixes, left-padded between prefix and suffix. Positions come
        from the attention mask, so the result equals a plain forward pass of each whole sequence.
        """

        import torch

        device = next(self.model.parameters()).device
        suffixes = [list(x[prefix_len:]) for x in ids]
        width = max(map(len, suffixes))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in suffixes], device=device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in suffixes], device=device)
        mask = torch.cat([torch.ones(len(ids), prefix_len, dtype=mask.dtype, device=device), mask], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
        with torch.inference_mode():
            past = None
            if prefix_len:
                shared = self._prefix_cache(tuple(ids[0][:prefix_len]), device)
                if not hasattr(shared, "batch_repeat_interleave"):  # a cache we cannot copy per batch
                    return self.score_ids(ids, 0)
                past = copy.deepcopy(shared)
                past.batch_repeat_interleave(len(ids))
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                             use_cache=past is not None, logits_to_keep=1, **{self._cache_kwarg: past})
        logits = out.logits[:, -1, :].float()[:, self.digit_ids]
        return torch.softmax(logits, dim=-1).cpu()

    def _prefix_cache(self, prefix: tuple[int, ...], device):
        import torch

        if self._prefix_key != prefix:
            out = self.model(input_ids=torch.tensor([list(prefix)], device=device), use_cache=True)
            kv = output_cache(out)
            self._prefix_key, self._prefix_kv = prefix, kv
        return self._prefix_kv

    def judge(self, records: Sequence[dict], on_batch: Callable[[list[Judgement]], None]) -> None:
        """Score records in length-sorted batches; ``on_batch`` receives each batch's verdicts."""
        ids = self.token_ids(self.texts(records))
        shared = common_prefix_length(ids)
        order = sorted(range(len(records)), key=lambda i: len(ids[i]))
        for batch in _chunks(order, self.batch_size):
            probs = self.score_ids([ids[i] for i in batch], shared)
            verdicts = []
            for row, i in enumerate(batch):
                p = [float(x) for x in probs[row]]
                verdicts.append(Judgement(records[i]["id"], difficulty=max(range(6), key=p.__getitem__), probs=p))
            on_batch(verdicts)


def common_prefix_length(ids: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all sequences share, leaving every sequence at least one token."""
    if not ids:
        return 0
    first = ids[0]
    n = min(len(x) for x in ids) - 1
    for x in ids[1:]:
        k = 0
        while k < n and x[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def load_local_judge(spec: str, prompt: RubricPrompt, runtime: Runtime | None = None, *,
                     batch_size: int) -> LocalJudge:
    """The judge ``spec`` on the runtime's device and dtype (default: ``Runtime.resolve()``)."""

    tokenizer = load_tokenizer(spec)
    model = load_model(spec, runtime)
    return LocalJudge(model, tokenizer, prompt, batch_size=batch_size)
