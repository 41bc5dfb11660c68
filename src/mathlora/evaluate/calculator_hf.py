"""The calculator inside plain ``transformers``: a ``LogitsProcessor`` for ``model.generate``.

A model trained in ``calculator`` style writes ``<<expr=`` and expects the value to be filled in. With this
processor, greedy ``generate`` forces the calculator's tokens exactly as ``mathlora predict --calculator``
does (the same :class:`~mathlora.evaluate.generation.CalculatorHook` decides): when the token a row is about
to emit closes an open ``<<expr=``, that token and the ones after it are those of ``expr=value>>``, one per
step; an expression the calculator refuses is left to the model. Calls and refusals are counted per row::

    from transformers import LogitsProcessorList
    from mathlora.evaluate.calculator_hf import CalculatorLogitsProcessor

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    calculator = CalculatorLogitsProcessor(tokenizer)
    out = model.generate(**batch, max_new_tokens=160, do_sample=False,
                         logits_processor=LogitsProcessorList([calculator]))
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)

Greedy decoding only (``do_sample=False``, one beam): the processor decides from the row's top-scoring token,
which is the token greedy search emits. It must come last among the processors (``generate`` puts a
``logits_processor`` argument after its own, such as ``min_new_tokens``). One instance serves one
``generate`` call at a time; a new call (a shorter or unrelated input) starts it afresh.
"""

from __future__ import annotations

from collections import deque

from transformers import LogitsProcessor

from mathlora.evaluate.generation import CalculatorHook


class CalculatorLogitsProcessor(LogitsProcessor):
    """Forces the calculator's result after every ``<<expr=`` a row writes (see the module docstring)."""

    def __init__(self, tokenizer, calculate=None, eos_token_id: int | list[int] | None = None):
        self.hook = CalculatorHook(tokenizer, calculate)
        eos = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
        self.eos = set(eos if isinstance(eos, (list, tuple, set)) else [] if eos is None else [eos])
        self._start = self._last = -1
        self._forced: list[deque[int]] = []
        self._done: list[bool] = []
        self.calls: list[int] = []     # results forced, per row of the latest generate call
        self.refused: list[int] = []   # expressions the calculator refused, per row

    def _reset(self, rows: int, length: int) -> None:
        self._start = length
        self._forced = [deque() for _ in range(rows)]
        self._done = [False] * rows
        self.calls, self.refused = [0] * rows, [0] * rows

    def __call__(self, input_ids, scores):
        rows, length = input_ids.shape
        if length != self._last + 1 or rows != len(self._forced):  # the first step of a generate call
            self._reset(rows, length)
        self._last = length
        chosen = scores.argmax(-1).tolist()
        force: dict[int, int] = {}
        for row in range(rows):
            if self._done[row]:
                continue
            ids = input_ids[row, self._start:].tolist()
            if ids and ids[-1] in self.eos and not self._forced[row]:
                self._done[row] = True  # finished: generate pads it from now on
                continue
            if self._forced[row]:
                force[row] = self._forced[row].popleft()
                continue
            emit = self.hook.intercept(ids, chosen[row])
            if emit is CalculatorHook.REFUSED:
                self.refused[row] += 1
            elif emit:
                self.calls[row] += 1
                force[row] = emit[0]
                self._forced[row].extend(emit[1:])
        if not force:
            return scores
        scores = scores.clone()
        for row, token in force.items():
            scores[row] = float("-inf")
            scores[row, token] = 0.0
        return scores
