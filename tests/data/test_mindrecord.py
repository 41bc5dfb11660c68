"""MindRecord output (the Ascend path): runs where the optional MindSpore extra is installed."""

import pytest

from mathlora.data.tokenize import write_mindrecord
from mathlora.run_dir.tokens import IGNORE


def test_mindrecord_round_trip_padded_to_seq_length_plus_one(tmp_path):
    pytest.importorskip("mindspore")
    from mindspore.mindrecord import FileReader

    rows = [([5, 6, 7, 2], [IGNORE, IGNORE, 7, 2]), ([9, 8, 2], [IGNORE, 8, 2])]
    path = tmp_path / "tokens.mindrecord"
    write_mindrecord(path, rows, 9, pad_id=0)
    reader = FileReader(str(path))
    got = [(list(r["input_ids"]), list(r["labels"])) for r in reader.get_next()]
    reader.close()
    assert got == [([5, 6, 7, 2, 0, 0, 0, 0, 0], [IGNORE, IGNORE, 7, 2] + [IGNORE] * 5),
                   ([9, 8, 2, 0, 0, 0, 0, 0, 0], [IGNORE, 8, 2] + [IGNORE] * 6)]
