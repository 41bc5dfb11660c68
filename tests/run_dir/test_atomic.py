"""run_dir.atomic: a write is whole or absent, and JSON is always valid."""

import json

import pytest

from mathlora.run_dir.atomic import atomic_path, finite_json, json_text, write_json_atomic, write_text_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "out"
    for content in ("first", "second"):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "f.txt").write_text(content)
    assert (target / "f.txt").read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_json_never_holds_nan_or_infinity(tmp_path):
    assert finite_json({"a": [float("nan"), 1.0], "b": float("inf")}) == {"a": [None, 1.0], "b": None}
    assert json.loads(json_text({"x": float("-inf")})) == {"x": None}
    write_json_atomic(tmp_path / "r.json", {"loss": float("nan"), "ok": 1})
    assert (tmp_path / "r.json").read_text().endswith("\n")
    assert json.loads((tmp_path / "r.json").read_text()) == {"loss": None, "ok": 1}


@pytest.mark.parametrize("code", ["ENOSPC", "EFBIG"])
def test_a_full_disk_is_one_line_naming_the_path_and_the_old_file_stays(tmp_path, code):
    import errno
    import os

    from mathlora.errors import MathloraError

    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(MathloraError) as err:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))
    message = str(err.value)
    assert str(target) in message and "free" in message and "\n" not in message
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with pytest.raises(MathloraError, match="disk is full"):  # as a library words it (safetensors, torch)
        with atomic_path(tmp_path / "b", directory=True):
            raise RuntimeError("failed to write: No space left on device (os error 28)")
