"""train.metrics: the metrics log survives a torn last line."""

import pytest

from mathlora.errors import MathloraError
from mathlora.train.metrics import MetricsLog, read_metrics


def test_a_torn_last_metrics_line_is_dropped_with_a_note(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    assert "torn last line" in capsys.readouterr().err
    MetricsLog(tmp_path, start_step=2, enabled=True).close()  # a resume from step 2 goes on, the torn row gone
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    assert path.read_bytes().endswith(b"}\n")


def test_a_bad_line_before_the_last_is_one_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(MathloraError, match="metrics.jsonl:2"):
        read_metrics(path)
