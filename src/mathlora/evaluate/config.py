"""Config section of prediction and evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(16, ge=1, description="prompts per generation batch (grouped by prompt length)")
    max_new_tokens: int = Field(128, ge=1)
    max_length: int = Field(512, ge=8, description="prompt + completion tokens at most")
    long_prompts: Literal["skip", "truncate_left"] = Field(
        "skip", description="a prompt with no room under max_length: skipped (empty completion, reason kept) "
                            "or cut from the left")
    batch_tokens: int | None = Field(None, ge=8, description="padded tokens per generation batch at most "
                                                            "(none = batch_size * max_length)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 on GPU, fp32 on CPU")
    merge_adapter: bool = Field(True, description="merge the LoRA adapter into the weights before generating")
    atol: float = Field(1e-2, ge=0)
    rtol: float = Field(0.0, ge=0)
    answer_scope: Literal["first_line", "full"] = Field(
        "first_line", description="where a prediction's answer is read: the completion's first line "
                                  "(a \\boxed{} anywhere before a template marker wins), or the whole text")
    wrong_samples: int = Field(20, ge=0, description="wrong answers listed in the math report")
    squad_limit: int | None = Field(None, ge=1)
    squad_max_new_tokens: int = Field(20, ge=1)
    squad_all_questions: bool = Field(False, description="score every question with all its answers "
                                                         "instead of the first question and answer per paragraph")
    keep: float = Field(0.9, gt=0, le=1, description="retention: fine-tuned F1/EM must be >= keep * base")
