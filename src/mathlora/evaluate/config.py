"""Config section of prediction and evaluation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    max_length: int = Field(512, ge=8, description="prompt + completion tokens at most")
    atol: float = Field(1e-2, ge=0)
    rtol: float = Field(0.0, ge=0)
    squad_limit: int | None = Field(None, ge=1)
    squad_max_new_tokens: int = Field(20, ge=1)
    keep: float = Field(0.9, gt=0, le=1, description="retention: fine-tuned F1/EM must be >= keep * base")
