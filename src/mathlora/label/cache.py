"""The labeling cache: SQLite in WAL mode, keyed by (judge fingerprint, record id).

Every answer is committed as soon as it arrives, so a run killed at any moment (even ``kill -9``)
keeps all finished work and, restarted, asks nothing already answered. Failures are kept in their
own table with the last error, so ``--retry-failed`` knows what to ask again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from mathlora.errors import MathloraError

SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 11, 13, 26  # SQLite's primary result codes

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    fingerprint TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    difficulty  INTEGER NOT NULL CHECK (difficulty BETWEEN 0 AND 5),
    probs       TEXT,
    PRIMARY KEY (fingerprint, record_id)
);
CREATE TABLE IF NOT EXISTS failures (
    fingerprint TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    error       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, record_id)
);
"""


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one record: a level (with probabilities when known), or an error."""

    record_id: str
    difficulty: int | None = None
    probs: list[float] | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.difficulty is not None


class LabelCache:
    """Labels and failures of one judge fingerprint in a SQLite file."""

    def __init__(self, path: str | Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        if self.path.is_dir():
            raise MathloraError(f"cache {self.path} is a directory; expected a SQLite file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.commit()
        except sqlite3.DatabaseError as e:
            raise MathloraError(f"cache {self.path} is not a usable SQLite file: {e}") from None

    @contextlib.contextmanager
    def _guard(self):
        """A database error is one line, never a traceback: a full disk (free space; the stored labels are
        good), a damaged file (move it away), or another error (said as it is)."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            code = (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF
            if code == SQLITE_FULL or "disk is full" in str(e) or "No space left" in str(e):
                raise MathloraError(f"cache {self.path}: the disk is full ({e}); free space and run again (the "
                                    "labels stored so far are intact and are not asked again)") from None
            if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in str(e) or "not a database" in str(e):
                raise MathloraError(f"cache {self.path} is damaged ({e}); move it away to start over "
                                    "(its verdicts will be asked again)") from None
            raise MathloraError(f"cache {self.path}: {e}") from None
        except ValueError as e:  # a stored value that does not read back: damage
            raise MathloraError(f"cache {self.path} is damaged ({e}); move it away to start over "
                                "(its verdicts will be asked again)") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "LabelCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def labels(self) -> dict[str, tuple[int, list[float] | None]]:
        with self._guard():
            rows = self.db.execute("SELECT record_id, difficulty, probs FROM labels WHERE fingerprint = ?",
                                   (self.fingerprint,))
            return {rid: (int(d), json.loads(p) if p else None) for rid, d, p in rows}

    def failures(self) -> dict[str, tuple[str, int]]:
        with self._guard():
            rows = self.db.execute("SELECT record_id, error, attempts FROM failures WHERE fingerprint = ?",
                                   (self.fingerprint,))
            return {rid: (err, int(n)) for rid, err, n in rows}

    def put(self, judgements: list[Judgement]) -> None:
        """Store verdicts and commit: a label clears an earlier failure of the same record."""
        with self._guard(), self.db:
            for j in judgements:
                if j.ok:
                    self.db.execute(
                        "INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?)",
                        (self.fingerprint, j.record_id, j.difficulty,
                         json.dumps(j.probs) if j.probs is not None else None))
                    self.db.execute("DELETE FROM failures WHERE fingerprint = ? AND record_id = ?",
                                    (self.fingerprint, j.record_id))
                else:
                    self.db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                                    (self.fingerprint, j.record_id, j.error or "unknown error", j.attempts))
