"""Where completions come from: this process (``eval.backend: local``, the model on the runtime's device) or
an OpenAI-compatible completions server (``openai``). ``predict`` and ``eval squad`` both generate through
``generate``, so the backend is chosen in one place."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mathlora.evaluate.config import EvalConfig
from mathlora.modeling.runtime import Runtime
from mathlora.evaluate.generation import generate_greedy
from mathlora.evaluate.memory import resolve_batch_size
from mathlora.evaluate import generation
from mathlora.evaluate.remote import remote_generate, require_no_adapter, server_info

if TYPE_CHECKING:
    from mathlora.evaluate.generation import Generation


@dataclass
class Generated:
    generations: list["Generation"]
    seconds: float  # generation only (loading the model aside)
    load_seconds: float = 0.0
    # what made them: local {batch_size, device, dtype}; openai {backend, server, server_model}
    source: dict = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.source.get("backend") == "openai"


class HeldModel:
    """A local model (and adapter) loaded on first use and kept for every prediction of one stage: the math
    evaluation predicts with and without the calculator from one load."""

    def __init__(self, model: str, adapter, runtime: Runtime | None, *, merge: bool):
        self.model, self.adapter, self.runtime, self.merge = model, adapter, runtime, merge
        self._loaded = None

    def get(self, model: str | None, adapter) -> tuple[tuple, float]:
        """((model, tokenizer), seconds spent loading by this call: 0 once loaded)."""

        if (model, None if adapter is None else str(adapter)) != \
                (self.model, None if self.adapter is None else str(self.adapter)):
            raise ValueError(f"held model {self.model} (adapter {self.adapter}) asked for {model} ({adapter})")
        if self._loaded is not None:
            return self._loaded, 0.0
        start = time.perf_counter()
        self._loaded = generation.load_inference_model(self.model, self.adapter, self.runtime or Runtime.resolve(),
                                                       merge=self.merge)
        return self._loaded, time.perf_counter() - start


def hold_model(cfg: EvalConfig, runtime: Runtime | None, model: str, adapter) -> HeldModel | None:
    """A ``HeldModel`` for the local backend (None for a server: nothing to load)."""
    return HeldModel(model, adapter, runtime, merge=cfg.merge_adapter) if cfg.backend == "local" else None


def generate(cfg: EvalConfig, runtime: Runtime | None, model: str | None, adapter, prompts: list[str], *,
             max_new_tokens: int, min_new_tokens: int = 0, calculator: bool = False, progress: bool = True,
             desc: str = "generate", stop: tuple[str, ...] | list[str] = (),
             held: HeldModel | None = None) -> Generated:
    """Greedy completions of ``prompts`` in input order, by ``cfg.backend`` (``runtime``: local only);
    ``stop``: strings that end a completion (cut before the first); ``held``: the local model, loaded once
    for several calls (default: loaded for this call alone)."""
    if cfg.backend == "openai":
        require_no_adapter(adapter)
        info = server_info(cfg, model)
        start = time.perf_counter()
        gens = remote_generate(cfg, prompts, fallback_model=model, max_new_tokens=max_new_tokens,
                               min_new_tokens=min_new_tokens, calculator=calculator, progress=progress, desc=desc,
                               stop=stop)
        return Generated(gens, time.perf_counter() - start, source=info)

    (lm, tokenizer), load_seconds = (held or HeldModel(model, adapter, runtime, merge=cfg.merge_adapter)).get(
        model, adapter)
    start = time.perf_counter()
    batch_size = resolve_batch_size(cfg.batch_size, lm, max_length=cfg.max_length, prompts=len(prompts))
    gens = generate_greedy(lm, tokenizer, prompts, max_new_tokens=max_new_tokens, max_length=cfg.max_length,
                           batch_size=batch_size, min_new_tokens=min_new_tokens, progress=progress, desc=desc,
                           calculator=calculator, long_prompts=cfg.long_prompts, batch_tokens=cfg.batch_tokens,
                           stop=stop)
    param = next(lm.parameters())
    return Generated(gens, time.perf_counter() - start, load_seconds,
                     {"batch_size": batch_size, "device": str(param.device),
                      "dtype": str(param.dtype).replace("torch.", "")})
