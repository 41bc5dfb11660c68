"""Config section of prediction and evaluation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mathlora.arith.answers import DEFAULT_ATOL, DEFAULT_RTOL
from mathlora.modeling.openai_client import EndpointConfig
from mathlora.run_dir.same_result import NOT_RESULT


class EvalEndpoint(EndpointConfig):
    """``eval.endpoint``: a generation server takes more requests in flight and longer ones than the judge's."""
    concurrency: int = Field(64, ge=1, description="requests in flight", json_schema_extra=NOT_RESULT)
    timeout: float = Field(300.0, gt=0, description="seconds per whole request", json_schema_extra=NOT_RESULT)


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        16, description="prompts per generation batch (grouped by prompt length); auto = as many as the "
                        "KV cache fits in on the GPU (16 on CPU)")
    max_new_tokens: int = Field(128, ge=1)
    max_length: int = Field(512, ge=8, description="prompt + completion tokens at most")
    long_prompts: Literal["skip", "truncate_left"] = Field(
        "skip", description="a prompt with no room under max_length: skipped (empty completion, reason kept) "
                            "or cut from the left")
    batch_tokens: int | None = Field(None, ge=8, description="padded tokens per generation batch at most "
                                                            "(none = batch_size * max_length)")
    merge_adapter: bool = Field(True, description="merge the LoRA adapter into the weights before generating")
    atol: float = Field(DEFAULT_ATOL, ge=0, description="absolute tolerance of a numeric answer (the recipe's "
                                                        "two decimals; scaled to the mantissa of E notation)")
    rtol: float = Field(DEFAULT_RTOL, ge=0, description="relative tolerance, added to atol: 1e-12 lets 28-digit "
                                                        "golds above 1e25 be graded; 1e-5 grades like numpy's "
                                                        "isclose, one contestant's judge")
    answer_scope: Literal["auto", "first_line", "full", "final"] = Field(
        "auto", description="where a prediction's answer is read: auto = final for worked solutions "
                            "(steps/calculator styles), first_line for answers; first_line: the completion's "
                            "first line (a \\boxed{} before a template marker wins); full: the whole text; "
                            "final: after the last 答案：/Answer:/#### marker or the last \\boxed{}")
    stop: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, max_length=4, description="strings that end a completion (cut before them; generation stops "
                                        "there): none = the template's (alpaca: its next '### ' section, which "
                                        "a base model writes on to), [] = only the model's EOS; at most 4, as "
                                        "OpenAI-compatible servers take")
    calculator: bool = Field(False, description="calculator-assisted decoding: when a completion opens "
                                                "<<expr=, the calculator's result and >> are forced")
    wrong_samples: int = Field(20, ge=0, description="wrong answers listed in the math report")
    checkpoints: bool = Field(False, description="mathlora run also scores every training checkpoint on the "
                                                 "held-out math set (its merged/ model when "
                                                 "train.merge_checkpoints wrote one, else base + adapter); the "
                                                 "report plots accuracy over steps",
                              json_schema_extra=NOT_RESULT)  # whether more is scored, never what a score is
    squad_limit: int | None = Field(None, ge=1)
    squad_max_new_tokens: int = Field(20, ge=1)
    squad_all_questions: bool = Field(False, description="score every question with all its answers "
                                                         "instead of the first question and answer per paragraph")
    keep: float = Field(0.9, gt=0, le=1, description="retention: fine-tuned F1/EM must be >= keep * base")
    # generation backend: this process (local) or an OpenAI-compatible completions server (vLLM + LoRA)
    backend: Literal["local", "openai"] = Field("local", description="where predict / eval squad generate")
    model: str | None = Field(None, description="openai backend: served model (or LoRA) name; none = the "
                                                "top-level model", json_schema_extra=NOT_RESULT)
    endpoint: EvalEndpoint = Field(default_factory=EvalEndpoint,
                                   description="openai backend: the server (never what the local model generates)",
                                   json_schema_extra=NOT_RESULT)
