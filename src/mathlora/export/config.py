"""Config section of publishing (``mathlora publish``, and the last stage of ``mathlora run`` when ``to`` is set)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PublishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, description="destination: s3://bucket/prefix, hf://user/repo (a Hugging Face Hub "
                                             "model repository), file:///path or a path; none = do not publish")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (Huawei OBS, MinIO, Ceph); "
                                                       "none = AWS")
    verify_all: bool = Field(False, description="also re-read files already on the store (not just the uploaded)")
    replace: bool = Field(False, description="replace another run's publication at the destination (its files "
                                             "are removed); without it such a destination is refused")
    private: bool = Field(False, description="hf:// only: create the Hub repository private (an existing one "
                                             "keeps its visibility)")
