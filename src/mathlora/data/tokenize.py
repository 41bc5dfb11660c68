"""Tokenize stage: conversations -> masked token records (Parquet, optionally MindRecord).

Masking is built from token spans, never by searching a marker string: the prompt and the response
are tokenized separately and concatenated, ``prompt_ids + response_ids + [eos]``. The prompt ids are
exactly what the model sees at inference (the same template, the same tokenizer call), so training and
inference agree even where a tokenizer would merge across the prompt/response boundary (the recipe's
prompt ends in ``"Response: "``). Labels are -100 on the prompt; the response and EOS are learned.

Output folder:
  tokens.parquet   id (string), input_ids (list<int32>), labels (list<int32>), length (int32); unpadded
                   (padding or packing is the trainer's job)
  stats.json       model (tokenizer spec), template, seq_length, counts, length histogram,
                   truncated/dropped/rejected, learnable tokens; the train stage reads model and seq_length
  rejects.jsonl    records with no learnable token, with the reason
  tokens.mindrecord  (format=mindrecord) input_ids/labels padded to seq_length + 1 for MindFormers
  .mathlora-artifact marks the folder as a tokens folder: an existing folder is replaced only when it is one
                   (or holds only the files above), or with ``overwrite``; user data is never deleted
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

from mathlora.data.config import TokenizeConfig
from mathlora.data.convert import conversation_pair, iter_json_array
from mathlora.errors import MathloraError
from mathlora.run_dir.records import dumps_line, require_file
from mathlora.run_dir.atomic import atomic_path, write_json_atomic
from mathlora.run_dir.guards import check_output_dir, write_artifact_marker
from mathlora.run_dir.tokens import IGNORE
from mathlora.modeling.templates import DEFAULT_TEMPLATE
from mathlora.modeling.models import load_tokenizer
from mathlora.modeling.templates import get_template

CHUNK = 8192
OUTPUT_FILES = ("tokens.parquet", "stats.json", "rejects.jsonl", "tokens.mindrecord", "tokens.mindrecord.db")


class PromptEncoder:
    """Tokenizes prompts, reusing the template's fixed text (tokenized once) where that is provably exact.

    With a byte-level BPE whose pre-tokenizer splits on the GPT-2 regex (SmolLM2, GPT-2, Qwen, Llama-3
    style), a newline before the problem and a newline after it are always pre-token boundaries when the
    problem neither starts nor ends with whitespace, and BPE never merges across pre-tokens, so
    ``ids(prefix) + ids(problem) + ids(suffix) == ids(prefix + problem + suffix)``. Any other tokenizer,
    template or record takes the plain full-prompt call. The first records of every run are also checked
    both ways; one mismatch switches the shortcut off.
    """

    CHECK = 256

    def __init__(self, tok, template: str):
        self.tok = tok
        self.prefix, _, self.suffix = get_template(template).prompt.partition("{problem}")
        self.enabled = (self.prefix.endswith("\n") and self.suffix.startswith("\n")
                        and self._boundary_safe_tokenizer(tok))
        if self.enabled:
            self.prefix_ids = tok(self.prefix, add_special_tokens=True)["input_ids"]
            self.suffix_ids = tok(self.suffix, add_special_tokens=False)["input_ids"]
            specials = tok("x", add_special_tokens=True)["input_ids"]
            plain = tok("x", add_special_tokens=False)["input_ids"]
            self.enabled = specials[len(specials) - len(plain):] == plain  # special tokens only in front
        self.checked = 0

    @staticmethod
    def _boundary_safe_tokenizer(tok) -> bool:
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            return False
        text = str(backend.pre_tokenizer)
        return text.startswith("ByteLevel(") and "use_regex=True" in text

    def _problem(self, prompt: str) -> str | None:
        if not (self.enabled and prompt.startswith(self.prefix) and prompt.endswith(self.suffix)):
            return None
        problem = prompt[len(self.prefix):len(prompt) - len(self.suffix)]
        if not problem or problem[0].isspace() or problem[-1].isspace():
            return None
        return problem

    def encode(self, prompts: list[str]) -> list[list[int]]:
        problems = [self._problem(p) for p in prompts]
        todo = [i for i, q in enumerate(problems) if q is not None]
        out: list[list[int] | None] = [None] * len(prompts)
        if todo:
            mids = self.tok([problems[i] for i in todo], add_special_tokens=False)["input_ids"]
            for i, mid in zip(todo, mids):
                out[i] = self.prefix_ids + mid + self.suffix_ids
            if self.checked < self.CHECK:
                sample = todo[: self.CHECK - self.checked]
                full = self.tok([prompts[i] for i in sample], add_special_tokens=True)["input_ids"]
                self.checked += len(sample)
                if any(out[i] != f for i, f in zip(sample, full)):
                    self.enabled = False
                    for i in todo:
                        out[i] = None
        rest = [i for i, o in enumerate(out) if o is None]
        if rest:
            for i, ids in zip(rest, self.tok([prompts[i] for i in rest], add_special_tokens=True)["input_ids"]):
                out[i] = ids
        return out  # type: ignore[return-value]


def build_example(prompt_ids: list[int], response_ids: list[int], eos_id: int, bos_id: int | None,
                  seq_length: int, overflow: str) -> tuple[list[int], list[int], str | None]:
    """(input_ids, labels, status) with status None, 'truncated', 'dropped' or a reject reason."""
    if bos_id is not None and len(prompt_ids) >= 2 and prompt_ids[0] == prompt_ids[1] == bos_id:
        prompt_ids = prompt_ids[1:]  # a template that already starts with BOS: no double BOS
    ids = prompt_ids + response_ids + [eos_id]
    labels = [IGNORE] * len(prompt_ids) + response_ids + [eos_id]
    status = None
    if len(ids) > seq_length:
        if overflow == "drop":
            return [], [], "dropped"
        ids, labels = ids[:seq_length], labels[:seq_length]
        status = "truncated"
    if len(prompt_ids) >= seq_length:
        return [], [], f"no learnable token: prompt is {len(prompt_ids)} tokens >= seq_length {seq_length}"
    if not response_ids:
        return [], [], "no learnable token: empty response"
    return ids, labels, status


def length_histogram(lengths: list[int], seq_length: int, bins: int = 16) -> list[dict]:
    width = max(1, -(-seq_length // bins))
    counts = [0] * bins
    for n in lengths:
        counts[min((n - 1) // width, bins - 1)] += 1
    return [{"from": i * width + 1, "to": min((i + 1) * width, seq_length), "count": c}
            for i, c in enumerate(counts)]


def tokenize_file(cfg: TokenizeConfig, input_path: str | os.PathLike, output_dir: str | os.PathLike, *, model: str,
                  template: str = DEFAULT_TEMPLATE, progress: bool = True, overwrite: bool = False) -> dict:
    """Conversations -> the tokens folder (see the module docstring) with ``model``'s tokenizer; returns
    ``stats.json``'s content without the histogram. ``stats.json`` names ``model``, ``template`` and
    ``seq_length``: the train stage reads them from there. ``overwrite``: replace an existing folder that is
    not a tokens folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm


    seq_length, overflow, fmt = cfg.seq_length, cfg.overflow, cfg.format

    src = require_file(input_path)
    out_dir = check_output_dir(output_dir, "tokens", overwrite=overwrite, known_files=OUTPUT_FILES)
    if overflow not in ("truncate", "drop"):
        raise MathloraError(f"overflow must be truncate or drop, got {overflow!r}")
    if fmt == "mindrecord":
        try:
            import mindspore  # noqa: F401
        except ImportError:
            raise MathloraError("format mindrecord needs MindSpore: pip install 'mathlora[mindspore]'") from None
    tok = load_tokenizer(model)
    tok.split_special_tokens = True  # '</s>' written in a record is text, never a control token (as serve reads it)
    if tok.eos_token_id is None:
        raise MathloraError(f"tokenizer of {model} has no EOS token; cannot mark the end of responses")
    eos, bos = tok.eos_token_id, tok.bos_token_id
    prompts = PromptEncoder(tok, template)
    schema = pa.schema([("id", pa.string()), ("input_ids", pa.list_(pa.int32())),
                        ("labels", pa.list_(pa.int32())), ("length", pa.int32())])
    stats = {"records": 0, "kept": 0, "truncated": 0, "dropped": 0, "rejected": 0,
             "tokens": 0, "learnable_tokens": 0, "seq_length": seq_length, "overflow": overflow,
             "model": model, "template": template, "eos_token": tok.eos_token}
    lengths: list[int] = []
    items = iter_json_array(src)
    bar = tqdm(desc="tokenize", unit="rec", disable=not progress, mininterval=1.0)
    try:
        with atomic_path(out_dir, directory=True) as tmp:
            writer = pq.ParquetWriter(tmp / "tokens.parquet", schema)
            mr_rows = [] if fmt == "mindrecord" else None
            with open(tmp / "rejects.jsonl", "w", encoding="utf-8") as rej:
                while chunk := list(islice(items, CHUNK)):
                    pairs = [conversation_pair(it, str(src)) for it in chunk]
                    p_ids = prompts.encode([p for _, p, _ in pairs])
                    r_ids = tok([r for _, _, r in pairs], add_special_tokens=False)["input_ids"]
                    cols: dict[str, list] = {"id": [], "input_ids": [], "labels": [], "length": []}
                    for (rid, _, _), p, r in zip(pairs, p_ids, r_ids):
                        stats["records"] += 1
                        ids, labels, status = build_example(p, r, eos, bos, seq_length, overflow)
                        if status == "dropped":
                            stats["dropped"] += 1
                            continue
                        if status and status != "truncated":
                            stats["rejected"] += 1
                            rej.write(dumps_line({"id": rid, "reason": status}) + "\n")
                            continue
                        stats["truncated"] += status == "truncated"
                        cols["id"].append(rid)
                        cols["input_ids"].append(ids)
                        cols["labels"].append(labels)
                        cols["length"].append(len(ids))
                        lengths.append(len(ids))
                        stats["learnable_tokens"] += sum(1 for x in labels if x != IGNORE)
                        if mr_rows is not None:
                            mr_rows.append((ids, labels))
                    writer.write_table(pa.table(cols, schema=schema))
                    bar.update(len(chunk))
            writer.close()
            if mr_rows is not None:
                write_mindrecord(tmp / "tokens.mindrecord", mr_rows, seq_length + 1,
                                 tok.pad_token_id if tok.pad_token_id is not None else eos)
            stats["kept"] = len(lengths)
            stats["tokens"] = sum(lengths)
            stats["mean_length"] = round(stats["tokens"] / len(lengths), 2) if lengths else 0
            stats["max_length"] = max(lengths, default=0)
            stats["padding_tokens_if_padded"] = len(lengths) * seq_length - stats["tokens"]
            stats["length_histogram"] = length_histogram(lengths, seq_length)
            if not lengths:
                raise MathloraError(f"{src}: no record left after tokenization "
                                    f"({stats['rejected']} rejected, {stats['dropped']} dropped)")
            write_json_atomic(tmp / "stats.json", stats)
            write_artifact_marker(tmp, "tokens")
    except UnicodeDecodeError:
        raise MathloraError(f"{src}: not UTF-8 text") from None
    finally:
        bar.close()
    return {k: v for k, v in stats.items() if k != "length_histogram"}


def write_mindrecord(path: Path, rows: list[tuple[list[int], list[int]]], length: int, pad_id: int) -> None:
    """MindFormers-style MindRecord: input_ids/labels padded to ``length`` (seq_length + 1)."""
    import numpy as np
    from mindspore.mindrecord import FileWriter

    writer = FileWriter(str(path), shard_num=1, overwrite=True)
    writer.add_schema({"input_ids": {"type": "int32", "shape": [-1]},
                       "labels": {"type": "int32", "shape": [-1]}}, "mathlora")
    batch = []
    for ids, labels in rows:
        pad = length - len(ids)
        batch.append({"input_ids": np.array(ids + [pad_id] * pad, dtype=np.int32),
                      "labels": np.array(labels + [IGNORE] * pad, dtype=np.int32)})
        if len(batch) >= 4096:
            writer.write_raw_data(batch)
            batch = []
    if batch:
        writer.write_raw_data(batch)
    writer.commit()


def read_tokens(output_dir: str | os.PathLike):
    """The tokens table (pyarrow) of a tokenize output folder (export reads it for MindRecord)."""
    import pyarrow.parquet as pq

    path = Path(output_dir) / "tokens.parquet"
    if not path.exists():
        raise MathloraError(f"{output_dir} has no tokens.parquet; run `mathlora tokenize` first")
    return pq.read_table(path)
