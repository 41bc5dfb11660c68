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

import contextlib
import csv
import datetime
import decimal
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

from mathlora.errors import MathloraError

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
    from mathlora.models import hub_offline as offline

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


# -- sources ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """What a data spec names: ``json`` (our line reader), ``table`` (``builder`` csv/parquet/arrow through
    ``datasets``), ``saved`` (a ``save_to_disk`` folder) or ``hub`` (``name`` on the Hub)."""
    kind: str
    name: str
    path: Path | None = None
    builder: str | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else self.name


def _magic(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8)


def is_hub_dataset(spec: str) -> bool:
    """``org/name`` with no data-file suffix and no such local path."""
    return (bool(HUB_DATASET.match(spec)) and not Path(spec).exists() and ".." not in spec
            and Path(spec).suffix.lower() not in {*TABLE_SUFFIXES, *JSON_SUFFIXES, ".gz", ".zip", ".txt"})


def resolve_source(spec: str | os.PathLike, what: str = "input") -> Source:
    """The one reading of a data spec, without reading its rows; one error line (naming ``what``) otherwise."""
    text = str(spec)
    if not text.strip():
        raise MathloraError(f"{what}: empty data path")
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file() \
                or (path / "dataset_dict.json").is_file():
            return Source("saved", text, path)
        raise MathloraError(f"{what} {path} is a directory; expected a file (JSON, JSON lines, CSV, Parquet, "
                            "Arrow) or a folder saved by datasets' save_to_disk")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in TABLE_SUFFIXES:
            return Source("table", text, path, TABLE_SUFFIXES[suffix])
        magic = _magic(path)
        if magic.startswith(b"PAR1"):
            return Source("table", text, path, "parquet")
        if magic.startswith(b"ARROW1"):
            return Source("table", text, path, "arrow")
        return Source("json", text, path)
    if is_hub_dataset(text):
        return Source("hub", text)
    raise MathloraError(f"{what} file not found: {path}")


def _csv_header(path: Path, sep: str) -> list[str]:
    """The header line's names (UnicodeDecodeError for a file that is not UTF-8: never names made of U+FFFD)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh, delimiter=sep), [])


def _not_utf8(e: BaseException) -> str:
    return "; it is not UTF-8 text: save it as UTF-8" if isinstance(e, UnicodeDecodeError) else ""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _datasets():
    """The ``datasets`` library (a dependency; one line when an environment lacks it)."""
    try:
        import datasets
    except ImportError as e:
        raise MathloraError(f"reading CSV, Parquet, Arrow and Hub datasets needs the datasets library ({e}): "
                            "pip install 'datasets>=4.8.5'") from None
    return datasets


def _load_table(source: Source, options: ReadOptions, cache_dir: str):
    """A streamed ``datasets`` IterableDataset over a local table or saved folder."""
    datasets = _datasets()

    path = source.path
    try:
        if source.kind == "saved":
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if options.split not in ds:
                    raise MathloraError(f"{path} holds the splits {', '.join(ds)}, not {options.split!r}; set "
                                        "data.train_split / data.test_split")
                ds = ds[options.split]
            return ds
        kwargs: dict[str, Any] = {}
        if source.builder == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            header = _csv_header(path, sep)
            if not header:
                raise MathloraError(f"{path}: empty CSV file (no header line)")
            kwargs = {"sep": sep, "features": datasets.Features({c: datasets.Value("string") for c in header})}
        return datasets.load_dataset(source.builder, data_files=str(path), split="train", streaming=True,
                                     cache_dir=cache_dir, **kwargs)
    except MathloraError:
        raise
    except Exception as e:  # datasets and pyarrow raise many kinds on a bad file
        raise MathloraError(f"{path}: could not read it as {source.builder or 'a saved dataset'} "
                            f"({_one_line(e)}){_not_utf8(e)}") from None


def _hub_error(source: Source, options: ReadOptions, e: BaseException) -> MathloraError:
    where = f"Hub dataset {source.name!r}" + (f" (subset {options.subset})" if options.subset else "") + \
            f", split {options.split!r}"
    if hub_offline():
        return MathloraError(f"{where}: not in the local cache and HF_HUB_OFFLINE is set; run once with network "
                             f"(or unset HF_HUB_OFFLINE), or give a local file (there is none at {source.name}; "
                             f"{_one_line(e)})")
    return MathloraError(f"could not load {where} (there is no local file of that name): {_one_line(e)}")


def _load_hub(source: Source, options: ReadOptions):
    datasets = _datasets()

    try:
        return datasets.load_dataset(source.name, options.subset, split=options.split, revision=options.revision)
    except Exception as e:  # network, not found, gated, bad split: one line each
        raise _hub_error(source, options, e) from None


def hub_dataset_revision(name: str, revision: str | None) -> str | None:
    """The commit a Hub dataset's revision stands for (None offline or unreachable: the given revision names it)."""
    if hub_offline():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(name, revision=revision, timeout=10).sha
    except Exception:  # no network, not found: the load reports it in one line
        return None


def table_columns(source: Source) -> list[str] | None:
    """The column names of a local source, read cheaply (a table's schema, a CSV's header, a JSON lines file's
    first object); None when that is not cheap (a JSON array, a Hub dataset)."""
    path = source.path
    try:
        if source.kind == "table" and source.builder == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if source.kind == "table" and source.builder == "arrow":
            import pyarrow as pa

            try:
                with pa.ipc.open_stream(path) as reader:
                    return list(reader.schema.names)
            except pa.ArrowInvalid:
                with pa.ipc.open_file(path) as reader:
                    return list(reader.schema.names)
        if source.kind == "table" and source.builder == "csv":
            return _csv_header(path, "\t" if path.suffix.lower() == ".tsv" else ",")
        if source.kind == "json":
            from mathlora.run_dir.records import first_byte

            if first_byte(path) == b"[":
                return None
            _, keys = peek(iter_rows(source, ReadOptions()))  # the first lines, as ingest detects the format
            return keys
    except UnicodeDecodeError as e:  # a CSV that is not UTF-8: no stage can read it
        raise MathloraError(f"{source.label}: could not read it as csv ({_one_line(e)}){_not_utf8(e)}") from None
    except Exception:  # a damaged file: the read at ingest says so in one line, per line where it can
        return None
    return None


def check_hub_dataset(source: Source, options: ReadOptions, what: str) -> None:
    """A Hub dataset that the Hub says does not exist (or not at that revision) is one line before the run;
    offline or unreachable nothing is asked (the cache may hold it: the load says)."""
    if hub_offline():
        return
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(source.name, revision=options.revision, timeout=10)
    except Exception as e:
        kind = type(e).__name__
        if kind in ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"):
            at = f" at revision {options.revision!r}" if kind == "RevisionNotFoundError" else ""
            raise MathloraError(f"{what} {source.name!r}: no such local file, and no such dataset{at} on the "
                                "Hugging Face Hub (a private or gated one needs `hf auth login` or HF_TOKEN)") from None


def check_source(spec: str, options: ReadOptions, what: str) -> Source:
    """Preflight of a data source: it exists (or names a Hub dataset), the format and mapping agree, and where
    its columns are cheap to read they hold what the format needs. One error line otherwise."""
    source = resolve_source(spec, what)
    choose_format(options, ())  # data.format against data.columns
    if source.kind == "hub":
        check_hub_dataset(source, options, what)
    columns = table_columns(source)
    if columns:
        fmt = choose_format(options, columns)
        if fmt is None or missing_columns(fmt, columns):
            raise MathloraError(f"{what} {source.label}: {hint(fmt, columns)}")
    return source


_SCALARS = {str, int, float, bool}


def _plain(value: Any) -> Any:
    """A table cell as a JSON value (timestamps and decimals as text, bytes left out as their length)."""
    if value is None or type(value) in _SCALARS:  # the common case first
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (str, int, float, bool)):  # their subclasses (numpy.float64, an IntEnum)
        return value
    return str(value)


@dataclass
class Row:
    """One entry of a source: where it is (``line`` of a text file, ``row`` of a table), the value or the
    reason it could not be read, and the raw text for the reject report."""
    where: tuple[str, int]
    obj: Any
    reason: str | None = None
    raw: str = ""


def iter_rows(source: Source, options: ReadOptions) -> Iterator[Row]:
    if source.kind == "json":
        from mathlora.run_dir.records import iter_raw

        for lineno, obj, reason, raw in iter_raw(source.path):
            yield Row(("line", lineno), obj, reason, raw)
        return
    if source.kind == "table" and source.builder == "parquet" and _parquet_rows(source.path) == 0:
        return  # datasets cannot stream a Parquet file without rows ("BatchSize must be greater than 0")
    with (tempfile.TemporaryDirectory(prefix="mathlora-datasets-") as scratch,  # a local file leaves nothing behind
          _builder_errors_unlogged(source.kind == "table")):
        ds = _load_hub(source, options) if source.kind == "hub" else _load_table(source, options, scratch)
        n = 0
        try:
            for batch in ds.iter(batch_size=1000):  # batches: 15x faster than row by row (100k rows: 0.4 s)
                keys = list(batch)
                for i in range(len(batch[keys[0]]) if keys else 0):
                    n += 1
                    yield Row(("row", n), _plain({k: batch[k][i] for k in keys}))
        except MathloraError:
            raise
        except Exception as e:  # a damaged file found while streaming it (read in chunks: the row is not known)
            at = f"after row {n}" if n else "from its first rows"
            raise MathloraError(f"{source.label}: could not read it {at} ({_one_line(e)}){_not_utf8(e)}") from None


def _parquet_rows(path: Path) -> int | None:
    """A Parquet file's row count from its footer (None when it cannot be read: the load says why)."""
    try:
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    except Exception:
        return None


@contextlib.contextmanager
def _builder_errors_unlogged(active: bool) -> Iterator[None]:
    """``datasets``' table builders log a file they cannot read (``Failed to read file ...``) before raising;
    the raise becomes our one error line, so the log line is held back while a local table is read."""
    if not active:
        yield
        return
    logger = logging.getLogger("datasets.packaged_modules")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


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


def source_problems(source: Source, options: ReadOptions) -> Iterator[str]:
    """The problem text of every readable row (what synth keeps its test set disjoint from)."""
    from itertools import chain

    rows = iter_rows(source, options)
    head, columns = peek(rows)
    fmt = choose_format(options, columns)
    for row in chain(head, rows):
        rec, _ = to_record(row.obj, fmt) if row.reason is None else (None, None)
        if rec is not None and isinstance(rec.get("problem"), str):
            yield rec["problem"]


def peek(rows: Iterator[Row], n: int = DETECT_ROWS) -> tuple[list[Row], list[str]]:
    """The first ``n`` rows (kept, to be read again) and the union of their objects' keys, in first-seen order."""
    head = list(islice(rows, n))
    keys: dict[str, None] = {}
    for row in head:
        if isinstance(row.obj, dict):
            keys.update((str(k), None) for k in row.obj)
    return head, list(keys)
