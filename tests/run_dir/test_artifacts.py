"""run_dir.artifacts: what verifies an output later, and why it no longer does."""

import pyarrow as pa
import pyarrow.parquet as pq

from mathlora.run_dir import artifacts
from mathlora.run_dir.artifacts import artifact_problem, artifact_record, format_problem


def test_a_recorded_file_or_folder_verifies_until_it_changes(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("hello")
    rec = artifact_record(f)
    assert rec["size"] == 5 and artifact_problem(f, rec) is None
    f.write_text("jello")
    assert "content differs" in artifact_problem(f, rec)
    f.write_text("hi")
    assert "size 2, recorded 5" in artifact_problem(f, rec)
    f.unlink()
    assert artifact_problem(f, rec) == "is missing"
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "x").write_text("1")
    rec = artifact_record(folder)
    assert artifact_problem(folder, rec) is None
    (folder / "x").write_text("2")
    assert artifact_problem(folder, rec).startswith("file x is damaged")


def test_large_parquet_files_are_checked_by_their_footer(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), path)
    monkeypatch.setattr(artifacts, "LARGE_FILE", 10)
    rec = artifact_record(path)
    assert rec == {"size": path.stat().st_size, "check": "parquet"} and artifact_problem(path, rec) is None
    data = path.read_bytes()
    path.write_bytes(data[:-8] + b"\0" * 8)
    assert format_problem(path) == "Parquet footer missing (truncated?)"
    assert "Parquet footer missing" in artifact_problem(path, rec)
