"""Config sections of difficulty labeling and stratified sampling."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    judge: Literal["openai", "local", "heuristic"] = "heuristic"
    # openai-compatible endpoint
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str | None = Field(None, description="judge model name (openai) or model spec (local; none = base model)")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key")
    concurrency: int = Field(16, ge=1)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    retry_base_delay: float = Field(0.5, ge=0, description="first backoff delay in seconds (doubles each retry)")
    retry_max_delay: float = Field(30.0, ge=0, description="longest backoff delay in seconds (Retry-After aside)")
    max_consecutive_failures: int = Field(
        200, ge=1, description="stop the run (results so far are cached) when this many records fail in a row")
    max_tokens: int = Field(8, ge=1, description="reply length limit for the openai judge")
    logprobs: bool = Field(True, description="ask the endpoint for top logprobs (ignored when unsupported)")
    # local judge
    batch_size: int = Field(16, ge=1)
    device: str | None = Field(None, description="local judge device (none = cuda when available, else cpu)")
    prompt_file: str | None = Field(None, description="replace the versioned rubric prompt with this file")
    cache: str | None = Field(None, description="SQLite cache path (none = label_cache.sqlite next to the output)")
    retry_failed: bool = False


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total: int = Field(100000, ge=1)
    ratios: str = Field("1:4,2:3,3:2,4:1", description="level:weight pairs")
    seed: int | None = Field(None, description="none = the global seed")
    shortfall: Literal["redistribute", "error"] = "redistribute"
    balance_by: str | None = Field(None, description="spread each level's quota evenly over this field, e.g. type")

    @field_validator("ratios", mode="before")
    @classmethod
    def _ratios_text(cls, value):
        if not isinstance(value, str):
            raise ValueError("must be text of level:weight pairs like '1:4,2:3,3:2,4:1' (quote it in YAML)")
        from mathlora.data.sampling import parse_ratios
        from mathlora.errors import MathloraError

        try:
            parse_ratios(value)
        except MathloraError as e:
            raise ValueError(str(e)) from None
        return value
