"""The local judge: a causal LM scores each record in one batched forward pass (no generation).

The prompt is the rubric, wrapped in the tokenizer's chat template when it has one, followed by
``ANSWER_PREFIX`` in the assistant's turn. The next-token logits over the tokens "0".."5", softmaxed
over those six, give the probabilities; the label is their argmax. Batches are left-padded with
position ids taken from the attention mask, so a record gets the same scores alone or in a batch.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from mathlora.errors import MathloraError
from mathlora.label.cache import Judgement
from mathlora.label.prompt import ANSWER_PREFIX, RubricPrompt


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

    def texts(self, records: Sequence[dict]) -> list[str]:
        return [judge_text(self.tokenizer, self.prompt.render(r["problem"], r.get("solution") or ""))[0]
                for r in records]

    def score_texts(self, texts: Sequence[str]):
        """Probabilities over 0..5 (tensor [n, 6], float32) from ONE forward pass over the batch."""
        import torch

        has_special = bool(getattr(self.tokenizer, "chat_template", None))
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True,
                             add_special_tokens=not has_special)
        device = next(self.model.parameters()).device
        input_ids = enc["input_ids"].to(device)
        attention = enc["attention_mask"].to(device)
        positions = (attention.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                             logits_to_keep=1, use_cache=False)
        logits = out.logits[:, -1, :].float()[:, self.digit_ids]
        return torch.softmax(logits, dim=-1).cpu()

    def judge(self, records: Sequence[dict], on_batch: Callable[[list[Judgement]], None]) -> None:
        """Score records in length-sorted batches; ``on_batch`` receives each batch's verdicts."""
        texts = self.texts(records)
        order = sorted(range(len(records)), key=lambda i: len(texts[i]))
        for batch in _chunks(order, self.batch_size):
            probs = self.score_texts([texts[i] for i in batch])
            verdicts = []
            for row, i in enumerate(batch):
                p = [float(x) for x in probs[row]]
                verdicts.append(Judgement(records[i]["id"], difficulty=max(range(6), key=p.__getitem__), probs=p))
            on_batch(verdicts)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def load_local_judge(spec: str, prompt: RubricPrompt, *, batch_size: int, device: str | None = None) -> LocalJudge:
    from mathlora.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(spec)
    model = load_model(spec, device=device)
    return LocalJudge(model, tokenizer, prompt, batch_size=batch_size)
