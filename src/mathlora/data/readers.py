"""One reader per input format behind one interface, kept in a registry (as LLaMA-Factory keeps its dataset
converters): a ``Reader`` says when the columns are its format (``detect``; ``detect_alias`` for the column
pairs ``auto`` also takes) and turns a row into ``{problem, solution[, system]}`` (``convert``). Adding a format
is one ``register`` call; ``mathlora.data.formats`` dispatches through ``READERS`` and never names a format.
The names and roles come from ``mathlora.data.format_names``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mathlora.data.format_names import ASSISTANT_ROLES, FORMATS, PAIRS, REQUIRED, ROLES, SYSTEM_ROLES, USER_ROLES

Columns = dict[str, str]  # role -> the file's column
Converted = tuple[dict | None, str | None]


@dataclass(frozen=True)
class Reader:
    """A format's reader. ``detect(columns)``: the role -> column mapping when the column names are this
    format, else None (tried for every format in registration order before any ``detect_alias``).
    ``convert(row, columns)``: (the fields the format makes, None) or (None, the reason it cannot)."""
    name: str
    detect: Callable[[set[str]], Columns | None]
    convert: Callable[[dict, Columns], Converted]
    detect_alias: Callable[[set[str]], Columns | None] = lambda cols: None


READERS: dict[str, Reader] = {}


def register(reader: Reader) -> Reader:
    if reader.name not in ROLES:
        raise ValueError(f"reader {reader.name!r}: not a format in mathlora.data.format_names")
    READERS[reader.name] = reader
    return reader


def _all_roles(name: str) -> Callable[[set[str]], Columns | None]:
    """Detection by the format's required roles as column names (each role read from its own column)."""
    return lambda cols: {r: r for r in ROLES[name]} if set(REQUIRED[name]) <= cols else None


def _missing(row: dict, cols: Columns, roles: tuple[str, ...], say_role: bool = False) -> str | None:
    for role in roles:
        if cols[role] not in row:
            return f"missing {cols[role]}" + (f" (the {role})" if say_role and cols[role] != role else "")
    return None


# -- problem_solution --------------------------------------------------------------------------------------------

def _problem_solution(row: dict, cols: Columns) -> Converted:
    reason = _missing(row, cols, REQUIRED["problem_solution"], say_role=True)
    if reason:
        return None, reason
    return {"problem": row[cols["problem"]], "solution": row[cols["solution"]]}, None


def _pairs(cols: set[str]) -> Columns | None:
    return next(({"problem": p, "solution": s} for p, s in PAIRS if {p, s} <= cols), None)


# -- alpaca -----------------------------------------------------------------------------------------------------

def _alpaca(row: dict, cols: Columns) -> Converted:
    reason = _missing(row, cols, REQUIRED["alpaca"])
    if reason:
        return None, reason
    instruction, extra = row[cols["instruction"]], row.get(cols["input"])
    if not isinstance(instruction, str):
        return None, f"{cols['instruction']} is not a string (got {type(instruction).__name__})"
    if extra is not None and not isinstance(extra, str):
        return None, f"{cols['input']} is not a string (got {type(extra).__name__})"
    problem = instruction + ("\n" + extra if extra and extra.strip() else "")
    return {"problem": problem, "solution": row[cols["output"]]}, None


# -- conversations (sharegpt, messages) -------------------------------------------------------------------------

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


def _first_exchange(turns: Any, column: str) -> Converted:
    """({problem, solution[, system], _later_turns}, None) from a conversation, or (None, reason)."""
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


def _conversation(role: str) -> Callable[[dict, Columns], Converted]:
    def convert(row: dict, cols: Columns) -> Converted:
        column = cols[role]
        if column not in row:
            return None, f"missing {column}"
        return _first_exchange(row[column], column)
    return convert


# the registration order is the detection order
register(Reader("problem_solution", _all_roles("problem_solution"), _problem_solution, detect_alias=_pairs))
register(Reader("alpaca", _all_roles("alpaca"), _alpaca))
register(Reader("sharegpt", _all_roles("sharegpt"), _conversation("conversations")))
register(Reader("messages", _all_roles("messages"), _conversation("messages")))
assert tuple(READERS) == FORMATS, "every format in format_names has one reader"
