"""The label judges behind one small interface, kept in a registry (``label.judge`` -> ``Judge``): what a
judge's verdicts are called (``source``), whether it reads the rubric prompt or needs a runtime, what of it a
stage fingerprint records, its checks before a run, the secret its errors must not show, and how it judges.
``label_file``, the label stage, the label command and the preflight ask ``judge_of(cfg)``; nothing else
compares ``label.judge`` with a name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, get_args

from mathlora.errors import MathloraError
from mathlora.label.cache import Judgement
from mathlora.label.config import LabelConfig
from mathlora.label.heuristic import VERSION as HEURISTIC_VERSION
from mathlora.label.heuristic import heuristic_difficulty
from mathlora.label.local import load_local_judge
from mathlora.label.openai_judge import OpenAIJudge
from mathlora.label.prompt import load_prompt
from mathlora.modeling.models import check_hub_model, model_identity, model_source
from mathlora.modeling.runtime import Runtime

OnBatch = Callable[[list[Judgement]], None]


@dataclass(frozen=True)
class Judge:
    """One judge kind. ``source(cfg, base_model)``: ``difficulty_source`` (``openai:<model>``, ...);
    ``judge(cfg, runtime, base_model, pending, on_batch)``: verdicts for ``pending``, handed to ``on_batch`` as
    they come; ``settings(cfg, base_model, runtime)``: what the label stage's fingerprint adds for it;
    ``check(cfg, base_model)``: the preflight's checks (nothing loaded)."""
    name: str
    source: Callable[[LabelConfig, str], str]
    judge: Callable[[LabelConfig, Runtime | None, str, list[dict], OnBatch], None]
    uses_prompt: bool = True
    needs_runtime: bool = False
    settings: Callable[[LabelConfig, str, Runtime], dict] = lambda cfg, base_model, runtime: {}
    check: Callable[[LabelConfig, str], None] = lambda cfg, base_model: None
    # the credential this judge sends (scrubbed from its errors), or None
    secret: Callable[[LabelConfig], str | None] = lambda cfg: None


JUDGES: dict[str, Judge] = {}


def register(judge: Judge) -> Judge:
    JUDGES[judge.name] = judge
    return judge


def judge_of(cfg: LabelConfig) -> Judge:
    """The registered judge ``cfg.judge`` names."""
    try:
        return JUDGES[cfg.judge]
    except KeyError:
        raise MathloraError(f"label.judge: unknown judge {cfg.judge!r} (allowed: {', '.join(JUDGES)})") from None


# -- heuristic ----------------------------------------------------------------------------------------------------

def _heuristic_source(cfg: LabelConfig, base_model: str) -> str:
    return f"heuristic:{HEURISTIC_VERSION}"


def _heuristic(cfg, runtime, base_model, pending: list[dict], on_batch: OnBatch) -> None:
    for start in range(0, len(pending), 1000):
        on_batch([Judgement(r["id"], difficulty=heuristic_difficulty(r["problem"], r.get("solution") or ""))
                  for r in pending[start:start + 1000]])


# -- openai -------------------------------------------------------------------------------------------------------

def _openai_source(cfg: LabelConfig, base_model: str) -> str:
    if not cfg.model:
        raise MathloraError("the openai judge needs a model name: --judge-model NAME (label.model)")
    return f"openai:{cfg.model}"


def _openai(cfg: LabelConfig, runtime, base_model, pending: list[dict], on_batch: OnBatch) -> None:
    end = cfg.endpoint
    judge = OpenAIJudge(
        base_url=end.base_url, model=cfg.model or "", api_key=end.api_key(),
        prompt=load_prompt(cfg.prompt_file), concurrency=end.concurrency, timeout=end.timeout,
        policy=end.policy(),
        max_tokens=cfg.max_tokens, logprobs=cfg.logprobs,
        max_consecutive_failures=cfg.max_consecutive_failures)
    judge.judge(pending, lambda v: on_batch([v]))


def _openai_check(cfg: LabelConfig, base_model: str) -> None:
    if not cfg.model:
        raise MathloraError("the openai judge needs a model name: label.model=NAME")


# -- local --------------------------------------------------------------------------------------------------------

def _local_source(cfg: LabelConfig, base_model: str) -> str:
    return f"local:{cfg.model or base_model}"


def _local(cfg: LabelConfig, runtime: Runtime | None, base_model: str, pending: list[dict],
           on_batch: OnBatch) -> None:
    judge = load_local_judge(cfg.model or base_model, load_prompt(cfg.prompt_file), runtime,
                             batch_size=cfg.batch_size)
    judge.judge(pending, on_batch)


def _local_settings(cfg: LabelConfig, base_model: str, runtime: Runtime) -> dict:
    return {"runtime": runtime.fingerprint(), "model_identity": model_identity(cfg.model or base_model)}


def _local_check(cfg: LabelConfig, base_model: str) -> None:
    check_hub_model(model_source(cfg.model or base_model, "label.model"), "label.model")


register(Judge("openai", _openai_source, _openai, check=_openai_check,
               secret=lambda cfg: os.environ.get(cfg.endpoint.api_key_env)))
register(Judge("local", _local_source, _local, needs_runtime=True, settings=_local_settings, check=_local_check))
# new rules (a new version) label again: the heuristic's fingerprint carries its source
register(Judge("heuristic", _heuristic_source, _heuristic, uses_prompt=False,
               settings=lambda cfg, base_model, runtime: {"source": _heuristic_source(cfg, base_model)}))
assert set(JUDGES) == set(get_args(LabelConfig.model_fields["judge"].annotation)), "one judge per label.judge"
