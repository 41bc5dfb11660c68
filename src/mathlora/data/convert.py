"""Convert stage: records -> the recipe's conversation JSON array.

``sharegpt`` (default, the recipe's):
``[{"id", "conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": SOLUTION}]}]``;
``messages``: ``[{"id", "messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", ...}]}]``.
PROMPT is the named template applied to the problem; the same template is used at inference.

Arrays are written one element per line, so ``iter_conversations`` can stream them back without
loading the whole file (other JSON arrays are parsed whole).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from mathlora.data.config import ConvertConfig
from mathlora.errors import MathloraError
from mathlora.records import dumps_line, read_jsonl, require_file
from mathlora.run_dir import atomic_path
from mathlora.templates import get_template


def to_conversation(rec: dict, prompt: str, fmt: str = "sharegpt") -> dict:
    if fmt == "sharegpt":
        return {"id": rec["id"], "conversations": [{"from": "human", "value": prompt},
                                                   {"from": "gpt", "value": rec["solution"]}]}
    if fmt == "messages":
        return {"id": rec["id"], "messages": [{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": rec["solution"]}]}
    raise MathloraError(f"unknown conversation format {fmt!r} (allowed: sharegpt, messages)")


def convert_file(cfg: ConvertConfig, input_path: str | os.PathLike, output_path: str | os.PathLike, *,
                 template: str = "alpaca") -> dict:
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
    """Stream a JSON array written one element per line; fall back to a full parse otherwise."""
    p = require_file(path)
    with open(p, encoding="utf-8-sig") as fh:
        if fh.readline().strip() == "[":
            yielded = False
            for lineno, line in enumerate(fh, 2):
                line = line.strip()
                if line in ("]", ""):
                    continue
                try:
                    item = json.loads(line[:-1] if line.endswith(",") else line)
                except json.JSONDecodeError:
                    if yielded:
                        raise MathloraError(f"{p}:{lineno}: broken JSON array element") from None
                    break  # not one element per line: parse the whole file below
                yielded = True
                yield item
            else:
                return
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MathloraError(f"{p}: not a JSON array of conversations ({e})") from None
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
