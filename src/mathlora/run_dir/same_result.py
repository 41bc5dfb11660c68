"""One rule for "does this setting change the result?".

A config field that cannot change what its stage produces (where requests go and how they are retried, how
often metrics are logged, speed and memory levers that change float rounding only) is marked where it is
declared: ``Field(..., json_schema_extra=NOT_RESULT)``. ``result_settings`` reads the marks; the pipeline's
stage fingerprints and the trainer's "same run" rule both use it, so changing a marked field never redoes a
stage or makes a finished training stale.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

NOT_RESULT: dict[str, Any] = {"result": False}


def changes_result(field: FieldInfo) -> bool:
    """False for a field marked ``json_schema_extra=NOT_RESULT``."""
    extra = field.json_schema_extra
    return not (isinstance(extra, dict) and extra.get("result") is False)


def result_settings(section: BaseModel) -> dict[str, Any]:
    """``section`` as JSON-ready values, without the fields that cannot change the result (nested sections
    follow their own marks)."""
    out: dict[str, Any] = {}
    for name, field in type(section).model_fields.items():
        if not changes_result(field):
            continue
        value = getattr(section, name)
        out[name] = (result_settings(value) if isinstance(value, BaseModel)
                     else section.model_dump(mode="json", include={name})[name])
    return out
