"""Input formats of the raw data: where ingest reads rows from, and how a row becomes a ``{problem, solution}``.

Sources (``resolve_source``), chosen from the spec:

* a JSON array or JSON lines file (``.json``, ``.jsonl``, or any other name that is not one of the below):
  read by ``mathlora.run_dir.records``' reader, so a bad line (not JSON, invalid UTF-8 named by its byte, NaN,
  numbers out of range) is one reject with its line number, never the end of the file. ``bench/ingest_formats.py``
  measures it against the ``datasets`` JSON loader: on 100k lines the whole ingest is faster than ``datasets``
  only loading them (5.4-6.3 s against 7.7-7.9 s, a sixth of the memory), and ``datasets`` keeps a NaN and fails the
  whole file on one line that is not JSON.
* ``.csv`` / ``.tsv``, ``.parquet`` (also found by its ``PAR1`` magic under any name), ``.arrow``, and a folder
  written by ``datasets``' ``save_to_disk``: read through the ``datasets`` library (streamed: no cache copy of
  a local file). CSV cells are read as text.
* ``org/name`` that is not a local path: a Hugging Face Hub dataset, ``datasets.load_dataset(name, subset,
  split=..., revision=...)`` with the usual cache (``HF_HOME``, ``HF_DATASETS_CACHE``); ``HF_HUB_OFFLINE=1``
  reads only what the cache holds.

Formats (``ReadOptions.format``; ``auto`` picks from the columns and says which it picked):

* ``problem_solution``: ``problem`` and ``solution`` columns (``columns`` maps other names onto them; ``auto``
  also takes the pairs question/answer, query/response and prompt/completion).
* ``alpaca``: ``instruction`` (+ ``input`` on the next line when not empty) -> problem, ``output`` -> solution.
* ``sharegpt`` (``conversations``: turns of ``from``/``value``, human/gpt) and ``messages`` (``messages``: turns
  of ``role``/``content``, user/assistant): the first user turn -> problem, the assistant turn right after it
  -> solution. System turns before it are kept as the record's ``system`` field (not trained on: the prompt
  template is the prompt); turns after the first exchange are left out and counted (``multi_turn``).

Columns a format consumes are not copied into the record; every other column is kept as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from mathlora.errors import MathloraError
from mathlora.modeling.models import hub_offline as offline


FORMATS = ("problem_solution", "alpaca", "sharegpt", "messages")
# the names a format reads, by the role each plays; data.columns maps a role to the file's column
ROLES = {"problem_solution": ("problem", "solution"), "alpaca": ("instruction", "input", "output"),
         "sharegpt": ("conversations",), "messages": ("messages",)}
REQUIRED = {"problem_solution": ("problem", "solution"), "alpaca": ("instruction", "output"),
            "sharegpt": ("conversations",), "messages": ("messages",)}
# other column pairs ``auto`` reads as problem/solution (GSM8K, MetaMathQA, TRL's prompt-completion)
PAIRS = (("question", "answer"), ("query", "response"), ("prompt", "completion"), ("prompt", "response"))
DETECT_ROWS = 100  # ``auto`` looks at the columns of this many first rows

USER_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant", "model", "bot", "chatgpt"}
SYSTEM_ROLES = {"system"}

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
HUB_DATASET = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``) is set, read now (the libraries read it at import)."""

    return offline("HF_DATASETS_OFFLINE")


def role_of(column_or_format: str) -> str | None:
    """The format a ``data.columns`` key belongs to (``input`` -> alpaca), or None."""
    return next((fmt for fmt, roles in ROLES.items() if column_or_format in roles), None)


@dataclass(frozen=True)
class ReadOptions:
    """How to read one data source: its format, the column mapping, and for a Hub dataset its subset
    (``datasets``' config name), split and revision."""
    format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    subset: str | None = None
    split: str = "train"
    revision: str | None = None

    def __hash__(self):  # frozen with a dict field
        return hash((self.format, tuple(sorted(self.columns.items())), self.subset, self.split, self.revision))

    def settings(self, hub: bool = False) -> dict:
        """What of these options can change the ingested records (for fingerprints; subset, split and revision
        only for a Hub dataset)."""
        settings: dict = {"format": self.format, "columns": dict(sorted(self.columns.items()))}
        if hub:
            settings.update(subset=self.subset, split=self.split, revision=self.revision)
        return settings


def mapping_format(columns: dict[str, str]) -> str | None:
    """The one format whose roles the keys of ``columns`` name (None for an empty mapping); MathloraError when
    the keys are unknown or mix formats."""
    if not columns:
        return None
    formats = set()
    for key in columns:
        fmt = role_of(key)
        if fmt is None:
            allowed = ", ".join(r for roles in ROLES.values() for r in roles)
            raise MathloraError(f"data.columns: unknown key {key!r} (allowed: {allowed})")
        formats.add(fmt)
    if len(formats) > 1:
        raise MathloraError(f"data.columns mixes the roles of formats {', '.join(sorted(formats))}; "
                            "map the columns of one format")
    return formats.pop()


# -- formats ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Format:
    """A format with the file's column for each role it reads; ``detected`` when ``auto`` picked it."""
    name: str
    columns: dict[str, str]
    detected: bool = False

    def __hash__(self):
        return hash((self.name, tuple(self.columns.items()), self.detected))

    def describe(self) -> str:
        """``alpaca (detected)``, ``problem_solution (question->problem, answer->solution; detected)``."""
        mapped = ", ".join(f"{col}->{role}" for role, col in self.columns.items() if col != role)
        notes = "; ".join(x for x in (mapped, "detected" if self.detected else "") if x)
        return self.name + (f" ({notes})" if notes else "")


def detect_format(columns: Iterable[str]) -> Format | None:
    """The format the column names say, or None."""
    cols = set(columns)
    if {"problem", "solution"} <= cols:
        return Format("problem_solution", {"problem": "problem", "solution": "solution"}, True)
    if {"instruction", "output"} <= cols:
        return Format("alpaca", {r: r for r in ROLES["alpaca"]}, True)
    if "conversations" in cols:
        return Format("sharegpt", {"conversations": "conversations"}, True)
    if "messages" in cols:
        return Format("messages", {"messages": "messages"}, True)
    for problem, solution in PAIRS:
        if {problem, solution} <= cols:
            return Format("problem_solution", {"problem": problem, "solution": solution}, True)
    return None


def choose_format(options: ReadOptions, columns: Iterable[str] | None) -> Format | None:
    """The format to read with: the one set (its columns mapped), or the one ``auto`` detects from ``columns``
    (None when it cannot tell: every row is then rejected and ingest names the columns it found)."""
    implied = mapping_format(options.columns)
    name = options.format
    if name != "auto" and implied is not None and implied != name:
        raise MathloraError(f"data.columns names {implied} columns ({', '.join(options.columns)}) but data.format "
                            f"is {name}")
    name = implied if name == "auto" and implied is not None else name
    if name == "auto":
        return detect_format(columns or ())
    if name not in ROLES:
        raise MathloraError(f"data.format: unknown format {name!r} (allowed: auto, {', '.join(FORMATS)})")
    return Format(name, {r: options.columns.get(r, r) for r in ROLES[name]})


def missing_columns(fmt: Format, columns: Iterable[str]) -> list[str]:
    """The file's columns a format needs that ``columns`` lacks (alpaca's ``input`` is optional)."""
    cols = set(columns)
    return [fmt.columns[r] for r in REQUIRED[fmt.name] if fmt.columns[r] not in cols]


def hint(fmt: Format | None, columns: Iterable[str] | None) -> str:
    """What to set so that a file of these columns reads."""
    cols = sorted(columns or ())
    found = f"its columns are {', '.join(cols)}" if cols else "it has no columns (no JSON object)"
    if fmt is None:
        return (f"{found}; set data.format (alpaca, sharegpt, messages) or map the columns: "
                "data.columns='{problem: <column>, solution: <column>}'")
    missing = missing_columns(fmt, cols) if cols else []
    if missing:
        return (f"{found}; format {fmt.describe()} needs {', '.join(missing)}: map them with data.columns "
                f"(e.g. data.columns.{next(r for r in REQUIRED[fmt.name] if fmt.columns[r] in missing)}=COLUMN)")
    return f"{found}; format {fmt.describe()}"


def _text(value: Any) -> str | None:
    """A turn's content as text: a string, or the text parts of an OpenAI-style content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(p, dict) for p in value):
        parts = [p.get("text") for p in value if p.get("type", "text") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "".join(parts)
    return None


def _turn(turn: Any) -> tuple[str | None, str | None]:
    if not isinstance(turn, dict):
        return None, None
    role = turn.get("from", turn.get("role"))
    content = turn.get("value", turn.get("content"))
    return (role.lower() if isinstance(role, str) else None), _text(content)


def _first_exchange(turns: Any, column: str) -> tuple[dict | None, str | None]:
    """({problem, solution[, system]}, None) from a conversation, or (None, reason)."""
    if not isinstance(turns, list):
        return None, f"{column} is not a list of turns (got {type(turns).__name__})"
    system: list[str] = []
    for i, turn in enumerate(turns):
        role, text = _turn(turn)
        if role is None:
            return None, f"{column}[{i}] has no from/role"
        if role in SYSTEM_ROLES:
            if text:
                system.append(text)
            continue
        if role not in USER_ROLES:
            return None, f"{column}[{i}] is a {role} turn before the first user turn"
        if text is None:
            return None, f"{column}[{i}], the first user turn, has no text"
        if i + 1 >= len(turns):
            return None, f"{column}: no assistant turn after the first user turn"
        answer_role, answer = _turn(turns[i + 1])
        if answer_role not in ASSISTANT_ROLES:
            return None, f"{column}[{i + 1}] is a {answer_role} turn, not the assistant's answer to the first user turn"
        if answer is None:
            return None, f"{column}[{i + 1}], the assistant turn, has no text"
        rec = {"problem": text, "solution": answer}
        if system:
            rec["system"] = "\n\n".join(system)
        rec["_later_turns"] = len(turns) - i - 2
        return rec, None
    return None, f"{column}: no user turn"


def to_record(obj: Any, fmt: Format | None) -> tuple[dict | None, str | None]:
    """(record with problem and solution plus the columns the format does not read, None) or (None, reason).
    The record's text fields are checked by ingest (``check_record``)."""
    if not isinstance(obj, dict):
        return None, f"not an object (got {type(obj).__name__})"
    if fmt is None:
        return None, "missing problem"  # no format could be told from the columns: ingest names them
    cols = fmt.columns
    used = set(cols.values())
    rest = {k: v for k, v in obj.items() if k not in used}
    if fmt.name == "problem_solution":
        for role in ("problem", "solution"):
            if cols[role] not in obj:
                return None, f"missing {cols[role]}" + (f" (the {role})" if cols[role] != role else "")
        return {**rest, "problem": obj[cols["problem"]], "solution": obj[cols["solution"]]}, None
    if fmt.name == "alpaca":
        for role in ("instruction", "output"):
            if cols[role] not in obj:
                return None, f"missing {cols[role]}"
        instruction, extra = obj[cols["instruction"]], obj.get(cols["input"])
        if not isinstance(instruction, str):
            return None, f"{cols['instruction']} is not a string (got {type(instruction).__name__})"
        if extra is not None and not isinstance(extra, str):
            return None, f"{cols['input']} is not a string (got {type(extra).__name__})"
        problem = instruction + ("\n" + extra if extra and extra.strip() else "")
        return {**rest, "problem": problem, "solution": obj[cols["output"]]}, None
    column = cols[fmt.name if fmt.name == "messages" else "conversations"]
    if column not in obj:
        return None, f"missing {column}"
    rec, reason = _first_exchange(obj[column], column)
    if rec is None:
        return None, reason
    return {**rest, **rec}, None
