"""Convert stage: records -> the recipe's conversation JSON array.

``sharegpt`` (default, the recipe's):
``[{"id", "conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": SOLUTION}]}]``;
``messages``: ``[{"id", "messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", ...}]}]``.
PROMPT is the named template applied to the problem; the same template is used at inference.

Arrays are written one element per line, so ``iter_conversations`` can stream them back without
loading the whole file (other JSON arrays are parsed whole).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from mathlora.data.config import ConvertConfig
from mathlora.errors import MathloraError
from mathlora.run_dir.records import (JsonProblem, decode_line, dumps_line, iter_lines, parse_json, read_json_document,
                              read_jsonl, require_file)
from mathlora.run_dir.atomic import atomic_path
from mathlora.modeling.templates import DEFAULT_TEMPLATE, get_template


def to_conversation(rec: dict, prompt: str, fmt: str = "sharegpt") -> dict:
    if fmt == "sharegpt":
        return {"id": rec["id"], "conversations": [{"from": "human", "value": prompt},
                                                   {"from": "gpt", "value": rec["solution"]}]}
    if fmt == "messages":
        return {"id": rec["id"], "messages": [{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": rec["solution"]}]}
    raise MathloraError(f"unknown conversation format {fmt!r} (allowed: sharegpt, messages)")


def convert_file(cfg: ConvertConfig, input_path: str | os.PathLike, output_path: str | os.PathLike, *,
                 template: str = DEFAULT_TEMPLATE) -> dict:
    """Records -> conversations (``cfg.format``) with ``template`` applied to each problem; returns counts."""
    fmt = cfg.format
    tpl = get_template(template)
    n = 0
    with atomic_path(output_path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        for rec in read_jsonl(input_path):
            if "id" not in rec or not isinstance(rec.get("problem"), str) or not isinstance(rec.get("solution"), str):
                raise MathloraError(f"{input_path}: records need id, problem and solution; "
                                    "convert reads the output of ingest/normalize")
            if n:
                fh.write(",\n")
            fh.write(dumps_line(to_conversation(rec, tpl.render(rec["problem"]), fmt)))
            n += 1
        fh.write("\n]\n")
    return {"conversations": n, "template": template, "format": fmt}


def iter_json_array(path: str | os.PathLike) -> Iterator[dict]:
    """Stream a JSON array written one element per line; fall back to a full parse otherwise.

    A streamed array must be complete: a missing ``]`` (a truncated file), a missing comma or anything
    after the ``]`` is an error, as it is for a full parse.
    """
    p = require_file(path)
    lines = iter_lines(p)
    opened = False
    for lineno, start, raw in lines:
        text = decode_line(p, lineno, start, raw).strip()
        if text:
            opened = text == "["
            break
    if opened:
        yielded = closed = False
        comma = True  # whether the previous element ended with a comma
        for lineno, start, raw in lines:
            line = decode_line(p, lineno, start, raw).strip()
            if not line:
                continue
            if closed:
                raise MathloraError(f"{p}:{lineno}: content after the closing ] of the JSON array")
            if line == "]":
                if yielded and comma:
                    raise MathloraError(f"{p}:{lineno}: trailing comma before ] (broken JSON array)")
                closed = True
                continue
            try:
                item = parse_json(line[:-1] if line.endswith(",") else line)
            except JsonProblem as e:
                if yielded:
                    raise MathloraError(f"{p}:{lineno}: broken JSON array element ({e})") from None
                break  # not one element per line: parse the whole file below
            if not comma:
                raise MathloraError(f"{p}:{lineno}: missing comma between JSON array elements")
            comma = line.endswith(",")
            yielded = True
            yield item
        else:
            if not closed:
                raise MathloraError(f"{p}: truncated JSON array (no closing ]); rerun the stage that wrote it")
            return
    try:
        data = read_json_document(p)
    except MathloraError as e:
        raise MathloraError(f"{e}; expected a JSON array of conversations (the output of convert)") from None
    if not isinstance(data, list):
        raise MathloraError(f"{p}: expected a JSON array of conversations")
    yield from data


def conversation_pair(item: object, where: str) -> tuple[str, str, str]:
    """(id, prompt, response) from a sharegpt or messages conversation."""
    if not isinstance(item, dict):
        raise MathloraError(f"{where}: expected conversation objects, got {type(item).__name__}")
    turns = item.get("conversations") or item.get("messages")
    if not isinstance(turns, list) or len(turns) < 2:
        raise MathloraError(f"{where}: expected 'conversations' (or 'messages') with a human and a gpt turn; "
                            "tokenize reads the output of convert")
    def text(turn):
        value = turn.get("value", turn.get("content")) if isinstance(turn, dict) else None
        if not isinstance(value, str):
            raise MathloraError(f"{where}: a turn without text")
        return value
    return str(item.get("id", "")), text(turns[0]), text(turns[1])
