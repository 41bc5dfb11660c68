"""Config sections of the data-preparation stages."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mathlora.errors import MathloraError
from mathlora.data.formats import mapping_format
from mathlora.data.formats import ReadOptions

LEVELS = range(6)  # difficulty levels 0..5
MAX_TOTAL = 1e12  # sample counts are apportioned as count * weight / sum: weights must leave room for that


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    train: str | None = Field(None, description="raw training data: a JSON/JSON lines, CSV, Parquet or Arrow file, a "
                                                "datasets save_to_disk folder, or a Hub dataset org/name; none = "
                                                "generate competition-style data with synth")
    test: str | None = Field(None, description="held-out math test data (the same kinds); none = generate one "
                                               "disjoint from train")
    squad: str | None = Field(None, description="SQuAD v1.1 JSON for the retention check; none = generate a fixture")
    format: Literal["auto", "problem_solution", "alpaca", "sharegpt", "messages"] = Field(
        "auto", description="how a row of data.train / data.test becomes a problem and a solution; auto picks from "
                            "the columns (problem/solution, instruction/output, conversations, messages, "
                            "question/answer) and the ingest counts say which")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="the file's column for each role, e.g. {problem: question, solution: "
                                                "answer}; roles: problem, solution (problem_solution), instruction, "
                                                "input, output (alpaca), conversations (sharegpt), messages")
    subset: str | None = Field(None, description="a Hub dataset's subset (datasets' config name), e.g. main")
    train_split: str = Field("train", min_length=1, description="the split of a Hub dataset data.train reads")
    test_split: str = Field("test", min_length=1, description="the split of a Hub dataset data.test reads")
    revision: str | None = Field(None, description="a Hub dataset's branch, tag or commit (none: main)")

    @field_validator("columns")
    @classmethod
    def _columns_of_one_format(cls, value: dict[str, str]) -> dict[str, str]:
        for key, column in value.items():
            if not column.strip():
                raise ValueError(f"the column for {key} is empty")
        try:
            mapping_format(value)
        except MathloraError as e:
            raise ValueError(str(e).removeprefix("data.columns: ")) from None
        return value

    def reading(self, key: str):
        """How ``data.<key>`` (train or test) is read (``mathlora.data.formats.ReadOptions``): the format, the
        columns, the Hub subset, split and revision."""

        return ReadOptions(format=self.format, columns=dict(self.columns), subset=self.subset,
                           split=self.train_split if key == "train" else self.test_split, revision=self.revision)


class IngestConfig(_Section):
    keep_duplicates: bool = False


def parse_ratios(text: str) -> dict[int, float]:
    """``"1:4,2:3,3:2,4:1"`` -> {1: 4.0, 2: 3.0, 3: 2.0, 4: 1.0}; levels 0..5, positive weights."""
    if not isinstance(text, str) or not text.strip():
        raise MathloraError("ratios: empty; expected level:weight pairs like 1:4,2:3,3:2,4:1")
    ratios: dict[int, float] = {}
    for item in text.split(","):
        level_text, sep, weight_text = item.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            level, weight = int(level_text), float(weight_text)
        except ValueError:
            raise MathloraError(f"ratios: cannot read {item.strip()!r} in {text!r}; "
                                f"expected level:weight pairs like 1:4,2:3,3:2,4:1") from None
        if level not in LEVELS:
            raise MathloraError(f"ratios: level {level} is outside 0..5 in {text!r}")
        if not weight > 0 or weight == float("inf"):
            raise MathloraError(f"ratios: weight of level {level} must be a positive number, got {weight_text!r}")
        if level in ratios:
            raise MathloraError(f"ratios: level {level} is named twice in {text!r}")
        ratios[level] = weight
    if not math.isfinite(sum(ratios.values()) * MAX_TOTAL):
        raise MathloraError(f"ratios: the weights in {text!r} are too large to apportion; use small numbers "
                            "like 1:4,2:3 (only their proportions matter)")
    return ratios


class SampleConfig(_Section):
    total: int = Field(100000, ge=1)
    ratios: str = Field("1:4,2:3,3:2,4:1", description="level:weight pairs")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="none = the global seed (0..2^32-1)")
    shortfall: Literal["redistribute", "error"] = "redistribute"
    balance_by: str | None = Field(None, description="spread each level's quota evenly over this field, e.g. type")

    @field_validator("ratios", mode="before")
    @classmethod
    def _ratios_text(cls, value):
        if not isinstance(value, str):
            raise ValueError("must be text of level:weight pairs like '1:4,2:3,3:2,4:1' (quote it in YAML)")
        try:
            parse_ratios(value)
        except MathloraError as e:
            raise ValueError(str(e)) from None
        return value

    def weights(self) -> dict[int, float]:
        """The ratios as {level: weight}."""
        return parse_ratios(self.ratios)


class NormalizeConfig(_Section):
    decimals: int = Field(2, ge=0, le=20)
    mode: Literal["round", "truncate"] = "round"


class ConvertConfig(_Section):
    format: Literal["sharegpt", "messages"] = "sharegpt"


class TokenizeConfig(_Section):
    seq_length: int = Field(256, ge=8)
    overflow: Literal["truncate", "drop"] = "truncate"
    format: Literal["parquet", "mindrecord"] = "parquet"
