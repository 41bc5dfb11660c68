"""run_dir.guards: output folders mathlora may replace, one writer per run folder, temp leftovers."""

from __future__ import annotations

import fcntl
import os
import stat

import pytest
from tests.cli_helpers import SMALL, assert_one_error, cli, records, tiny_adapter, write_lines
from tests.conftest import single_torch_thread


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK_MODE = 0o777 & ~_umask()

one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)


def test_tokenize_and_merge_never_delete_a_folder_they_did_not_create(tmp_path, capsys, conversations,
                                                                        monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("three years of work")
    tok = ["--model", "tiny-random-llama", "--seq-length", "256"]
    rc, _, err = cli(capsys, "tokenize", "-i", conversations, "-o", mine, *tok)
    assert_one_error(rc, err, "not empty", "--overwrite")
    rc, _, err = cli(capsys, "merge", "--model", "tiny-random-llama", "--adapter",
                     tiny_adapter(tmp_path / "adapter"), "--output", mine)
    assert_one_error(rc, err, "not empty", "--overwrite")
    assert (mine / "thesis.txt").read_text() == "three years of work"
    assert stat.S_IMODE(mine.stat().st_mode) == UMASK_MODE

    # a folder mathlora made is replaced on a rerun; created folders follow the umask (not 0700)
    out = tmp_path / "tokens"
    assert cli(capsys, "tokenize", "-i", conversations, "-o", out, *tok)[0] == 0
    assert cli(capsys, "tokenize", "-i", conversations, "-o", out, *tok)[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == UMASK_MODE
    merged = tmp_path / "merged"
    assert cli(capsys, "merge", "--model", "tiny-random-llama", "--adapter", tmp_path / "adapter",
               "--output", merged)[0] == 0
    assert stat.S_IMODE(merged.stat().st_mode) == UMASK_MODE
    # --overwrite replaces a user's folder when asked
    assert cli(capsys, "tokenize", "-i", conversations, "-o", mine, "--overwrite", *tok)[0] == 0
    assert not (mine / "thesis.txt").exists() and (mine / "tokens.parquet").is_file()

    # 16: `--output .` is refused, whatever is in the current folder
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep")
    monkeypatch.chdir(work)
    rc, _, err = cli(capsys, "tokenize", "-i", conversations, "-o", ".", "--overwrite", *tok)
    assert_one_error(rc, err, "current folder")
    assert (work / "notes.txt").read_text() == "keep"


def test_one_writer_per_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{"stages": {}}\n')
    fd = os.open(run / ".mathlora.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process holding the run
        os.write(fd, b"424242\n")
        rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)
        assert_one_error(rc, err, "in use", "PID 424242")
        assert "synth" not in out
        src = write_lines(tmp_path / "in.jsonl", records(3))
        rc, _, err = cli(capsys, "ingest", "-i", src, "-o", run / "records.jsonl")
        assert_one_error(rc, err, "PID 424242")
    finally:
        os.close(fd)
    assert cli(capsys, "ingest", "-i", tmp_path / "in.jsonl", "-o", run / "records.jsonl")[0] == 0


def test_leftover_temp_files_are_cleaned_on_the_next_run(tmp_path, capsys):
    run = tmp_path / "run"
    (run / ".tokens.x1y2.tmp").mkdir(parents=True)
    (run / ".tokens.x1y2.tmp/tokens.parquet").write_bytes(b"partial")
    (run / ".records.jsonl.ab12.tmp").write_text("partial")
    (run / ".train.old.123").mkdir()
    assert cli(capsys, "run", "--no-progress", "-o", run, "--stop-after", "synth", *SMALL)[0] == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".mathlora.lock"]
    assert stat.S_IMODE((run / "raw").stat().st_mode) == UMASK_MODE


def _tree_hashes(root) -> dict:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_temp_cleanup_removes_only_mathlora_temp_names_inside_the_run_folder(tmp_path):
    from mathlora.run_dir.guards import clean_temp_files

    outside = tmp_path / ".notes.tmp"  # above the run folder: never looked at
    outside.write_text("mine")
    run = tmp_path / "run"
    (run / "src").mkdir(parents=True)
    users = [run / ".editor.swp.tmp", run / ".cache.old.7", run / "src" / ".records.jsonl.abcd1234.tmp",
             run / "src" / ".build.old.3"]
    for p in users:
        p.write_text("user file")
    ours = [run / ".records.jsonl.abcd1234.tmp", run / "tokens" / ".tokens.parquet.k2j4_x9q.tmp",
            run / "train" / "checkpoints" / ".step-4.zz99aa11.tmp", run / ".train.old.123"]
    for p in ours:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.mkdir() if p.name.endswith(".123") else p.write_text("partial")
    before = _tree_hashes(tmp_path)
    assert clean_temp_files(run) == len(ours)
    after = _tree_hashes(tmp_path)
    assert not any(p.exists() for p in ours)
    assert {k: v for k, v in before.items() if not any(k == str(p.relative_to(tmp_path)) for p in ours)} == after


def test_the_filesystem_root_is_never_a_run_folder():
    from mathlora.errors import MathloraError
    from mathlora.run_dir.guards import make_run_folder

    # called directly, never through `mathlora run -o /`: a mathlora without this check would write to /
    with pytest.raises(MathloraError, match="the filesystem root"):
        make_run_folder("/")


@pytest.mark.parametrize("where", ["home", "repo"])
def test_a_run_folder_on_home_or_a_repository_is_refused(tmp_path, capsys, monkeypatch, where):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "untracked.txt").write_text("keep")
    (repo / ".build.abc.tmp").write_text("keep")  # a mathlora that cleaned here would remove it
    target = {"home": str(home), "repo": str(repo)}[where]
    before = _tree_hashes(tmp_path)
    rc, _, err = cli(capsys, "run", "--no-progress", "-o", target, "--stop-after", "synth", *SMALL)
    assert_one_error(rc, err, "give a folder of its own")
    assert _tree_hashes(tmp_path) == before


def test_run_into_a_users_folder_changes_nothing_the_user_made(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "merged").mkdir(parents=True)
    (folder / "merged" / "weights.bin").write_bytes(b"precious")
    (folder / "notes.txt").write_text("keep")
    before = _tree_hashes(tmp_path)
    rc, _, err = cli(capsys, "run", "--no-progress", "-o", folder, "--stop-after", "synth", *SMALL)
    assert_one_error(rc, err, "not a mathlora run folder", "'merged'")
    assert _tree_hashes(tmp_path) == before
    # user files with names a run does not use stay as they are through a run
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    (other / ".notes.txt.old.1").write_text("keep")
    assert cli(capsys, "run", "--no-progress", "-o", other, "--stop-after", "synth", *SMALL)[0] == 0
    assert (other / "notes.txt").read_text() == "keep" and (other / ".notes.txt.old.1").read_text() == "keep"


def test_temp_cleanup_reaches_the_checkpoint_evaluations(tmp_path):
    """B7: leftovers under eval/checkpoints/ (scores.json, a step's predictions) were never cleaned."""
    from mathlora.run_dir.guards import clean_temp_files

    run = tmp_path / "run"
    ours = [run / "eval" / "checkpoints" / ".scores.json.ab12cd34.tmp",
            run / "eval" / "checkpoints" / "step-2" / ".predictions.jsonl.zz99aa11.tmp"]
    for p in ours:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("partial")
    kept = run / "eval" / "checkpoints" / "step-2" / "predictions.jsonl"
    kept.write_text("{}\n")
    assert clean_temp_files(run) == len(ours)
    assert not any(p.exists() for p in ours) and kept.exists()
