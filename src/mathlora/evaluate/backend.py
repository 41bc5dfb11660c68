"""Where completions come from: this process (``eval.backend: local``, the model on the runtime's device) or
an OpenAI-compatible completions server (``openai``). Each is a ``Backend`` in one registry (``BACKENDS``,
``backend_of(cfg)``): its generation, whether it holds a loaded model, whether it names its own model, and how
the settings line shows it. ``predict``, ``eval squad``, ``eval math`` and the eval commands ask it; nothing else
compares ``eval.backend`` with a name."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, get_args

from mathlora.errors import MathloraError

from mathlora.evaluate.config import EvalConfig
from mathlora.modeling.runtime import Runtime
from mathlora.evaluate.generation import generate_greedy
from mathlora.evaluate.memory import resolve_batch_size
from mathlora.evaluate import generation
from mathlora.evaluate.remote import remote_generate, require_no_adapter, server_info
from mathlora.modeling.openai_client import public_url

if TYPE_CHECKING:
    from mathlora.evaluate.generation import Generation


@dataclass
class Generated:
    generations: list["Generation"]
    seconds: float  # generation only (loading the model aside)
    load_seconds: float = 0.0
    # what made them: local {batch_size, device, dtype}; openai {backend, server, server_model}
    source: dict = field(default_factory=dict)
    remote: bool = False  # made by a server (its source is recorded with the results)


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
    """A ``HeldModel`` for a backend that loads the model here (None for a server: nothing to load)."""
    return HeldModel(model, adapter, runtime, merge=cfg.merge_adapter) if backend_of(cfg).holds_model else None


def generate(cfg: EvalConfig, runtime: Runtime | None, model: str | None, adapter, prompts: list[str], *,
             max_new_tokens: int, min_new_tokens: int = 0, calculator: bool = False, progress: bool = True,
             desc: str = "generate", stop: tuple[str, ...] | list[str] = (),
             held: HeldModel | None = None) -> Generated:
    """Greedy completions of ``prompts`` in input order, by ``cfg.backend`` (``runtime``: local only);
    ``stop``: strings that end a completion (cut before the first); ``held``: the local model, loaded once
    for several calls (default: loaded for this call alone)."""
    return backend_of(cfg).generate(cfg, runtime, model, adapter, prompts, max_new_tokens=max_new_tokens,
                                    min_new_tokens=min_new_tokens, calculator=calculator, progress=progress,
                                    desc=desc, stop=stop, held=held)


def _remote(cfg: EvalConfig, runtime, model, adapter, prompts, *, max_new_tokens, min_new_tokens, calculator,
            progress, desc, stop, held) -> Generated:
    require_no_adapter(adapter)
    info = server_info(cfg, model)
    start = time.perf_counter()
    gens = remote_generate(cfg, prompts, fallback_model=model, max_new_tokens=max_new_tokens,
                           min_new_tokens=min_new_tokens, calculator=calculator, progress=progress, desc=desc,
                           stop=stop)
    return Generated(gens, time.perf_counter() - start, source=info, remote=True)


def _local(cfg: EvalConfig, runtime, model, adapter, prompts, *, max_new_tokens, min_new_tokens, calculator,
           progress, desc, stop, held) -> Generated:
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


@dataclass(frozen=True)
class Backend:
    """One generation backend. ``generate``: as the module's ``generate``; ``holds_model``: it loads the model
    in this process (a ``HeldModel`` keeps it for a stage); ``own_model(cfg)``: it names a model itself, so a
    command needs no ``--model``; ``where(cfg)``: how the settings line shows it."""
    name: str
    generate: Callable[..., Generated]
    holds_model: bool
    own_model: Callable[[EvalConfig], bool]
    where: Callable[[EvalConfig], str]


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


def backend_of(cfg: EvalConfig) -> Backend:
    """The registered backend ``cfg.backend`` names."""
    try:
        return BACKENDS[cfg.backend]
    except KeyError:
        raise MathloraError(f"eval.backend: unknown backend {cfg.backend!r} (allowed: {', '.join(BACKENDS)})") \
            from None


register(Backend("local", _local, holds_model=True, own_model=lambda cfg: False, where=lambda cfg: "local"))
register(Backend("openai", _remote, holds_model=False, own_model=lambda cfg: bool(cfg.model),
                 where=lambda cfg: f"openai {public_url(cfg.endpoint.base_url)}"))
assert set(BACKENDS) == set(get_args(EvalConfig.model_fields["backend"].annotation)), "one backend per eval.backend"
