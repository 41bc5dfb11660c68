"""Config section of difficulty labeling."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mathlora.modeling.openai_client import EndpointConfig
from mathlora.run_dir.same_result import NOT_RESULT


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    judge: Literal["openai", "local", "heuristic"] = "heuristic"
    model: str | None = Field(None, description="judge model name (openai) or model spec (local; none = base model)")
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig, description="the openai judge's server")
    max_consecutive_failures: int = Field(
        200, ge=1, description="stop the run (results so far are cached) when this many records fail in a row",
        json_schema_extra=NOT_RESULT)
    max_tokens: int = Field(8, ge=1, description="reply length limit for the openai judge")
    logprobs: bool = Field(True, description="ask the endpoint for top logprobs (ignored when unsupported)")
    # local judge
    batch_size: int = Field(16, ge=1, json_schema_extra=NOT_RESULT)
    prompt_file: str | None = Field(None, description="replace the versioned rubric prompt with this file")
    cache: str | None = Field(None, description="SQLite cache path (none = label_cache.sqlite next to the output)")
    retry_failed: bool = Field(False, json_schema_extra=NOT_RESULT)
