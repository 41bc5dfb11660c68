"""Config section of the competition-style data generator."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from mathlora.synth.competition import FAMILIES


class SynthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(2000, ge=1, description="training records to generate when data.train is unset")
    test_count: int = Field(200, ge=1, description="held-out test records (disjoint from training)")
    types: list[str] | None = Field(None, description="problem families to generate; none = all")
    mix: Literal["contest", "equal"] = Field(
        "contest", description="family shares: contest = the contest's train.json mix (two thirds + - * /), "
                               "equal = the same count per family (suits a small demo)")
    squad_paragraphs: int = Field(100, ge=1, description="paragraphs in the generated reading-comprehension set")

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None

        unknown = [t for t in value if t not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown problem type(s) {', '.join(unknown)} (allowed: {', '.join(FAMILIES)})")
        if not value:
            raise ValueError(f"give at least one problem type or leave it unset (allowed: {', '.join(FAMILIES)})")
        return value
