import sqlite3

import pytest

from mathlora.errors import MathloraError
from mathlora.label.cache import Judgement, LabelCache


def test_cache_round_trip_and_failure_cleared_by_label(tmp_path):
    path = tmp_path / "c.sqlite"
    with LabelCache(path, "openai:m|rubric-v1") as cache:
        cache.put([Judgement("a", difficulty=3, probs=[0.1, 0.1, 0.1, 0.5, 0.1, 0.1]),
                   Judgement("b", error="timeout", attempts=6)])
    with LabelCache(path, "openai:m|rubric-v1") as cache:
        assert cache.labels() == {"a": (3, [0.1, 0.1, 0.1, 0.5, 0.1, 0.1])}
        assert cache.failures() == {"b": ("timeout", 6)}
        cache.put([Judgement("b", difficulty=0)])
        assert cache.labels()["b"] == (0, None)
        assert cache.failures() == {}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_keeps_judges_apart(tmp_path):
    path = tmp_path / "c.sqlite"
    with LabelCache(path, "heuristic:v1") as cache:
        cache.put([Judgement("a", difficulty=1)])
    with LabelCache(path, "local:tiny|rubric-v1") as cache:
        assert cache.labels() == {}


def test_cache_path_errors_are_one_line(tmp_path):
    with pytest.raises(MathloraError, match="is a directory"):
        LabelCache(tmp_path, "x")
    bad = tmp_path / "not.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MathloraError, match="not a usable SQLite file"):
        LabelCache(bad, "x")


def test_a_full_disk_is_not_called_damage_and_keeps_the_stored_labels(tmp_path):
    path = tmp_path / "c.sqlite"
    with LabelCache(path, "openai:m") as cache:
        cache.put([Judgement("first", difficulty=2)])
        pages = cache.db.execute("PRAGMA page_count").fetchone()[0]
        cache.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
        with pytest.raises(MathloraError) as err:
            cache.put([Judgement(f"r{i}", difficulty=1, error=None, probs=[0.2] * 6) for i in range(2000)])
    message = str(err.value)
    assert "disk is full" in message and "damaged" not in message and "move it away" not in message
    with LabelCache(path, "openai:m") as cache:
        assert cache.labels() == {"first": (2, None)}
