"""Config sections of the data-preparation stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    train: str | None = Field(None, description="raw training file (JSON lines or array of {problem, solution}); "
                                                "none = generate competition-style data with synth")
    test: str | None = Field(None, description="held-out math test file; none = generate one disjoint from train")
    squad: str | None = Field(None, description="SQuAD v1.1 JSON for the retention check; none = generate a fixture")


class IngestConfig(_Section):
    keep_duplicates: bool = False


class SampleConfig(_Section):
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


class NormalizeConfig(_Section):
    decimals: int = Field(2, ge=0, le=20)
    mode: Literal["round", "truncate"] = "round"


class ConvertConfig(_Section):
    format: Literal["sharegpt", "messages"] = "sharegpt"


class TokenizeConfig(_Section):
    seq_length: int = Field(256, ge=8)
    overflow: Literal["truncate", "drop"] = "truncate"
    format: Literal["parquet", "mindrecord"] = "parquet"
