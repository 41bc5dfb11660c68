"""Config section of prediction and evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(16, ge=1, description="prompts per generation batch (grouped by prompt length)")
    max_new_tokens: int = Field(128, ge=1)
    max_length: int = Field(512, ge=8, description="prompt + completion tokens at most")
    merge_adapter: bool = Field(True, description="merge the LoRA adapter into the weights before generating")
    atol: float = Field(1e-2, ge=0)
    rtol: float = Field(0.0, ge=0)
    answer_scope: Literal["auto", "first_line", "full", "final"] = Field(
        "auto", description="where a prediction's answer is read: auto = final for worked solutions "
                            "(steps/calculator styles), first_line for answers; first_line: the completion's "
                            "first line (a \\boxed{} before a template marker wins); full: the whole text; "
                            "final: after the last 答案：/Answer:/#### marker or the last \\boxed{}")
    calculator: bool = Field(False, description="calculator-assisted decoding: when a completion opens "
                                                "<<expr=, the calculator's result and >> are forced")
    wrong_samples: int = Field(20, ge=0, description="wrong answers listed in the math report")
    squad_limit: int | None = Field(None, ge=1)
    squad_max_new_tokens: int = Field(20, ge=1)
    squad_all_questions: bool = Field(False, description="score every question with all its answers "
                                                         "instead of the first question and answer per paragraph")
    keep: float = Field(0.9, gt=0, le=1, description="retention: fine-tuned F1/EM must be >= keep * base")
