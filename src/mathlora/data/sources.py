"""Where ingest reads rows from: a source (a JSON array or JSON lines file, a table file, a ``save_to_disk``
folder, a Hugging Face Hub dataset), checked and read row by row; the formats (``mathlora.data.formats``)
turn a row into a record."""

from __future__ import annotations

import contextlib
import csv
import datetime
import decimal
import logging
import os
import tempfile
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterator
from itertools import chain

from mathlora.errors import MathloraError
from mathlora.data.formats import (DETECT_ROWS, HUB_DATASET, JSON_SUFFIXES, TABLE_SUFFIXES, ReadOptions, choose_format,
                                   hint, hub_offline, missing_columns, to_record)
from mathlora.run_dir.records import iter_raw
from mathlora.run_dir.records import first_byte


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


def source_problems(source: Source, options: ReadOptions) -> Iterator[str]:
    """The problem text of every readable row (what synth keeps its test set disjoint from)."""

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
