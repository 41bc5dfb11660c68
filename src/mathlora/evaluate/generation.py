"""Batched greedy generation: left padding, KV cache, batches grouped by prompt length, stop at EOS or a stop string.

Prompts are tokenized one by one (as training does: ``add_special_tokens=True``), sorted by length
(longest first) and cut into batches, so little compute goes to padding; results come back in input
order. Each prompt gets a budget of new tokens, ``min(max_new_tokens, max_length - prompt_length)``
(never below ``min_new_tokens``); a batch runs to its largest budget and every row is cut to its own,
which under greedy decoding equals generating that row alone with its budget. A row stops at its first
EOS (the model's EOS ids, from the tokenizer and the generation config) or at its budget, and is then
dropped from the batch (its KV-cache rows too), so finished rows cost nothing. Padding is never detected
by token id (SmolLM2 pads with its EOS): the attention mask and explicit position ids carry it. A row also
stops when its text comes to one of the ``stops`` strings (the template's next section, ``eval.stop``), and its
completion is cut before it: the same text as generating on and cutting afterwards, without the tokens a base
model spends writing on past its answer.

Calculator-assisted decoding (``calculator=CalculatorHook(tokenizer)``): when a row's generated text ends
inside an open ``<<expr=``, the calculator's result and ``>>`` are queued as that row's next tokens and fed
one per step, while the other rows keep decoding, so the batched KV-cache loop stays one step for all rows.
An expression the calculator refuses leaves the model to continue on its own; calls and refusals are counted
per row.

Memory is bounded by settings, not by the data: a prompt longer than the model's position limit (or with
no room for a token under ``max_length``) is, before any batching, either skipped (empty completion, with
the reason) or cut from the left (``long_prompts``);
batches are planned by padded tokens (``rows x (longest prompt + largest budget) <= batch_tokens``, default
``batch_size * max_length``) as well as by ``batch_size``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mathlora.modeling.adapters import adapter_problem, attach_adapter, require_adapter_dir
from mathlora.modeling.compat import cache_argument  # noqa: F401  (decode_batch's KV-cache keyword; re-exported)
from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.models import load_model, load_tokenizer
from mathlora.arith import calculator as calculator_module
from mathlora.arith.calculator import CLOSE, EQUALS, CalculatorError, open_annotation


@dataclass(frozen=True)
class Generation:
    completion: str
    token_ids: list[int]          # generated ids, EOS excluded
    generated_tokens: int         # tokens the model produced (EOS included when it stopped)
    stopped: bool                 # hit EOS (or a stop string) before its budget
    prompt_tokens: int
    calculator_calls: int = 0     # <<expr= annotations the calculator answered (result forced)
    calculator_refused: int = 0   # annotations the calculator refused (the model continued alone)
    skipped: str | None = None    # why no completion was generated (a prompt too long for max_length)
    prompt_truncated: bool = False  # the prompt was cut from the left to fit max_length
    requests: int | None = None   # completion requests it took (a server's completions; None: decoded here)


class CalculatorHook:
    """Decides, for each token a row is about to emit, whether it closes an open ``<<expr=``.

    When it does, the row's tokens from there on are those that tokenizing ``text<<expr=`` + result + ``>>``
    gives after the row's own ids: the first replaces the chosen token (which may carry more than the ``=``,
    as SmolLM2's ``=-`` does: the sign is the calculator's, not the model's), the rest are queued. When the
    row's ids are not a prefix of that tokenization, a token that ends in ``=`` is kept and ``result>>``
    tokenized alone is queued.
    """

    REFUSED: list[int] = []

    def __init__(self, tokenizer, calculate=None):
        self.tokenizer = tokenizer
        self.calculate = calculate or calculator_module.calculate
        self._pieces: dict[int, str] = {}

    def _piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.tokenizer.decode([token])
        return piece

    def intercept(self, ids: list[int], token: int) -> list[int] | None:
        """``token`` is the row's next choice after ``ids``. None: emit it as is; ``REFUSED``: the calculator
        refused the expression (emit it as is); else the ids to emit from now on (see the class docstring)."""

        piece = self._piece(token)
        if EQUALS not in piece:
            return None
        before = self.tokenizer.decode(ids, skip_special_tokens=True)
        text = self.tokenizer.decode([*ids, token], skip_special_tokens=True)
        found = open_annotation(text)
        if found is None or found[1] < len(before):
            return None
        start, equals = found
        expr = text[start:equals]
        try:
            result = self.calculate(expr)
        except CalculatorError:
            return self.REFUSED
        whole = self.tokenizer(text[:equals + 1] + result + CLOSE, add_special_tokens=False)["input_ids"]
        if whole[:len(ids)] == ids and len(whole) > len(ids):
            return whole[len(ids):]
        if piece.rstrip().endswith(EQUALS):
            return [token, *self.tokenizer(result + CLOSE, add_special_tokens=False)["input_ids"]]
        return None


def load_inference_model(model: str, adapter, runtime: Runtime, *, merge: bool = True):
    """(model, tokenizer) ready for generation on the runtime's device and dtype: eval mode, adapter attached
    (merged when ``merge``; ``adapter`` None: the base model alone)."""

    if adapter is not None:
        problem = adapter_problem(require_adapter_dir(adapter))
        if problem:
            raise MathloraError(f"adapter {adapter} {problem}; refusing to score it")
    tokenizer = load_tokenizer(model)
    lm = load_model(model, runtime)
    if adapter is not None:
        lm = attach_adapter(lm, adapter, model_name=model)
        if merge:
            lm = lm.merge_and_unload()
    lm.eval()
    return lm, tokenizer


def eos_ids(model, tokenizer) -> list[int]:
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    cfg_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if cfg_eos is not None:
        ids.update(int(x) for x in (cfg_eos if isinstance(cfg_eos, (list, tuple)) else [cfg_eos]))
    if not ids:
        raise MathloraError("the tokenizer has no EOS token; cannot tell where a completion ends")
    return sorted(ids)


def token_budget(prompt_len: int, *, max_new_tokens: int, max_length: int, min_new_tokens: int = 0) -> int:
    return max(min_new_tokens, min(max_new_tokens, max_length - prompt_len))


def model_limit(model) -> int | None:
    """The longest sequence the model's position embeddings allow (None when unknown)."""
    value = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def fit_prompts(encoded: list[list[int]], *, max_length: int, max_new_tokens: int, min_new_tokens: int = 0,
                policy: str = "skip", bos_id: int | None = None,
                limit: int | None = None) -> tuple[list[list[int]], list[str | None], list[bool]]:
    """(prompts, skip reasons, truncated flags), decided per prompt before any batching.

    ``policy="skip"``: a prompt longer than the model's ``limit`` (position embeddings), or with no room for a
    token under ``max_length`` (budget 0), gets a reason and is not generated. ``"truncate_left"``: a prompt
    with no room under ``max_length`` (or over ``limit``) keeps its last ``max_length - max_new_tokens``
    tokens (at least one token of room) and its BOS token.
    """
    if policy not in ("skip", "truncate_left"):
        raise MathloraError(f"long_prompts must be skip or truncate_left, got {policy!r}")
    limit = limit or max_length
    least = max(min_new_tokens, 1)
    cap = min(limit, max_length)
    keep_len = max(1, cap - max_new_tokens) if max_new_tokens < cap else max(1, cap - least)
    out, reasons, cut = [], [], []
    for e in encoded:
        over_limit = len(e) > limit - least
        no_room = token_budget(len(e), max_new_tokens=max_new_tokens, max_length=max_length,
                               min_new_tokens=min_new_tokens) <= 0
        if policy == "truncate_left" and (over_limit or len(e) > max_length - least):
            head = [e[0]] if bos_id is not None and e and e[0] == bos_id and keep_len > 1 else []
            out.append(head + e[len(e) - (keep_len - len(head)):]), reasons.append(None), cut.append(True)
        elif over_limit:
            out.append(e), cut.append(False)
            reasons.append(f"prompt is {len(e)} tokens, over the model's limit of {limit}")
        elif no_room:
            out.append(e), cut.append(False)
            reasons.append(f"prompt is {len(e)} tokens; max_length {max_length} leaves no room to generate")
        else:
            out.append(e), reasons.append(None), cut.append(False)
    return out, reasons, cut


def plan_batches(lengths: list[int], budgets: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices sorted by length (longest first, stable), cut into batches of at most ``batch_size`` rows
    whose padded size ``rows * (longest prompt + largest budget)`` stays within ``max_tokens`` (a single
    row always forms a batch)."""
    batches: list[list[int]] = []
    current: list[int] = []
    width = steps = 0
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        w, st = max(width, lengths[i]), max(steps, budgets[i])
        if current and (len(current) + 1 > batch_size or (len(current) + 1) * (w + st) > max_tokens):
            batches.append(current)
            current, w, st = [], lengths[i], budgets[i]
        current.append(i)
        width, steps = w, st
    if current:
        batches.append(current)
    return batches


def _left_pad(rows: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


@dataclass(frozen=True)
class Decoded:
    ids: list[int]        # generated ids without EOS
    stopped: bool         # hit EOS
    calls: int = 0        # calculator results forced
    refused: int = 0      # calculator refusals
    at_stop: bool = False  # came to a stop string (its tokens are in ids)


def cut_at_stop(text: str, stops) -> tuple[str, bool]:
    """``text`` up to the first of ``stops`` (and whether one was found)."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(cuts)], True) if cuts else (text, False)


class StopStrings:
    """Whether a row's text has come to one of ``stops``: only the tail a new token can complete is decoded."""

    def __init__(self, tokenizer, stops):
        self.tokenizer, self.stops = tokenizer, tuple(stops)
        self.window = max(len(s) for s in self.stops) + 2  # a token carries at least one character

    def reached(self, ids: list[int]) -> bool:
        tail = self.tokenizer.decode(ids[-self.window:], skip_special_tokens=True)
        return any(s in tail for s in self.stops)


def decode_batch(model, ids, mask, budgets: list[int], eos: set[int], min_new_tokens: int = 0,
                 calculator: CalculatorHook | None = None, stops: StopStrings | None = None) -> list[Decoded]:
    """Greedy decoding of one left-padded batch with a KV cache, one :class:`Decoded` per row.

    Row ``r`` produces at most ``budgets[r]`` tokens; a row that hits EOS or its budget leaves the batch.
    EOS cannot be chosen before ``min_new_tokens`` tokens were generated (transformers' semantics), so a
    model that would stop at once still answers something. With ``calculator``, a row's queued forced
    tokens replace its greedy choice, one per step (see the module docstring). With ``stops``, a row whose
    text comes to a stop string leaves the batch (``at_stop``; its ids keep the stop string's tokens).
    """
    import torch
    from transformers import DynamicCache

    out: list[list[int]] = [[] for _ in budgets]
    stopped, at_stop = [False] * len(budgets), [False] * len(budgets)
    forced: list[deque[int]] = [deque() for _ in budgets]
    calls, refused = [0] * len(budgets), [0] * len(budgets)
    active = torch.arange(len(budgets), device=ids.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = {cache_argument(model): DynamicCache()}
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1]
    next_pos = positions[:, -1:] + 1
    eos_index = torch.tensor(sorted(eos), device=ids.device)
    step = 0
    while True:
        if step < min_new_tokens:
            logits = logits.index_fill(-1, eos_index, float("-inf"))
        step += 1
        tokens = logits.argmax(-1)
        chosen = tokens.tolist()
        rows = active.tolist()
        was_forced = [False] * len(rows)
        if calculator is not None:
            for k, row in enumerate(rows):
                if forced[row]:
                    chosen[k], was_forced[k] = forced[row].popleft(), True
                    continue
                emit = calculator.intercept(out[row], chosen[k])
                if emit is CalculatorHook.REFUSED:
                    refused[row] += 1
                elif emit:
                    calls[row] += 1
                    chosen[k], was_forced[k] = emit[0], True
                    forced[row].extend(emit[1:])
            tokens = torch.tensor(chosen, dtype=tokens.dtype, device=tokens.device)
        keep = []
        for k, (row, tok) in enumerate(zip(rows, chosen)):
            if tok in eos and not was_forced[k]:
                stopped[row] = True
                continue
            out[row].append(tok)
            if stops is not None and not forced[row] and stops.reached(out[row]):
                at_stop[row] = True
                continue
            if len(out[row]) < budgets[row]:
                keep.append(k)
        if not keep:
            return [Decoded(*row) for row in zip(out, stopped, calls, refused, at_stop)]
        if len(keep) < len(active):
            idx = torch.tensor(keep, device=ids.device)
            next(iter(cache.values())).batch_select_indices(idx)
            active, mask, tokens, next_pos = active[idx], mask[idx], tokens[idx], next_pos[idx]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos,
                       **cache, use_cache=True).logits[:, -1]
        next_pos = next_pos + 1


def generate_greedy(model, tokenizer, prompts: list[str], *, max_new_tokens: int, max_length: int,
                    batch_size: int = 16, min_new_tokens: int = 0, progress: bool = True,
                    desc: str = "generate", calculator: bool = False, long_prompts: str = "skip",
                    batch_tokens: int | None = None, stop: tuple[str, ...] | list[str] = ()) -> list[Generation]:
    """Greedy completions of ``prompts`` in input order (see the module docstring).

    ``calculator``: calculator-assisted decoding of ``<<expr=value>>`` annotations. ``stop``: strings that end a
    completion (cut before the first).
    """
    import torch
    from tqdm import tqdm

    # '</s>' written in a problem is text, never a control token (as training and serving read it)
    encoded = [tokenizer(p, add_special_tokens=True, split_special_tokens=True)["input_ids"] for p in prompts]
    encoded, skip_reasons, truncated = fit_prompts(encoded, max_length=max_length, max_new_tokens=max_new_tokens,
                                                   min_new_tokens=min_new_tokens, policy=long_prompts,
                                                   bos_id=tokenizer.bos_token_id, limit=model_limit(model))
    budgets = [0 if skip_reasons[i] else token_budget(len(e), max_new_tokens=max_new_tokens, max_length=max_length,
                                                      min_new_tokens=min_new_tokens) for i, e in enumerate(encoded)]
    eos = eos_ids(model, tokenizer)
    eos_set = set(eos)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    device = next(model.parameters()).device
    hook = CalculatorHook(tokenizer) if calculator else None
    stops = StopStrings(tokenizer, stop) if stop else None
    results: list[Generation | None] = [None] * len(prompts)
    for i, reason in enumerate(skip_reasons):
        if reason:
            results[i] = Generation("", [], 0, False, len(encoded[i]), skipped=reason)
    todo = [i for i, reason in enumerate(skip_reasons) if not reason]
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress, dynamic_ncols=True)
    bar.update(len(prompts) - len(todo))
    try:
        planned = plan_batches([len(encoded[i]) for i in todo], [budgets[i] for i in todo], batch_size,
                               batch_tokens or batch_size * max_length)
        for batch in ([todo[k] for k in b] for b in planned):
            steps = max(budgets[i] for i in batch)
            if steps <= 0:
                for i in batch:
                    results[i] = Generation("", [], 0, False, len(encoded[i]))
                bar.update(len(batch))
                continue
            ids, mask = _left_pad([encoded[i] for i in batch], pad_id, device)
            with torch.inference_mode():
                decoded = decode_batch(model, ids, mask, [max(budgets[i], 1) for i in batch], eos_set,
                                       min_new_tokens=min_new_tokens, calculator=hook, stops=stops)
            for i, d in zip(batch, decoded):
                kept = d.ids[:budgets[i]]
                text, cut = cut_at_stop(tokenizer.decode(kept, skip_special_tokens=True), stop)
                at_eos = d.stopped and budgets[i] > 0  # the EOS is a token the model produced
                results[i] = Generation(text, kept, len(kept) + at_eos, at_eos or (cut and budgets[i] > 0),
                                        len(encoded[i]),
                                        calculator_calls=d.calls, calculator_refused=d.refused,
                                        prompt_truncated=truncated[i])
            bar.update(len(batch))
    finally:
        bar.close()
    return results  # type: ignore[return-value]

