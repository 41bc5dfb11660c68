"""mathlora.run_dir.run_log: run.log keeps what a run printed without its progress bars."""

from __future__ import annotations

import os
import re
import sys

import pytest

from mathlora.errors import MathloraError
from mathlora.run_dir import run_log
from mathlora.run_dir.run_log import RunLog


def test_run_log_keeps_printed_lines_without_progress_bars_appended_per_invocation(tmp_path, capsys):
    from tqdm import tqdm

    log_path = tmp_path / "run.log"
    with RunLog(log_path, "mathlora run: first") as log:
        print("[ 1/3] synth ...")
        for _ in tqdm(range(3), desc="train", file=sys.stderr):
            pass
        print("warning: a note", file=sys.stderr)
        print("[ 1/3] synth: done in 0.1s", end="")
        print(" (records=3)")
        log.note("report: r.html | math accuracy 1.0% -> 2.0%")
    out, err = capsys.readouterr()
    assert out == "[ 1/3] synth ...\n[ 1/3] synth: done in 0.1s (records=3)\n"  # still printed
    assert "train: 100%" in err and "warning: a note" in err
    assert sys.stdout is not None and not isinstance(sys.stdout, run_log._Tee)  # streams restored

    with pytest.raises(MathloraError):
        with RunLog(log_path, "mathlora run: second"):
            print("[ 1/3] synth: fresh, skipped")
            raise MathloraError("data.train file not found: x.json")
    lines = log_path.read_text().splitlines()
    assert lines[0].startswith("=== ") and lines[0].endswith(f"mathlora run: first (pid {os.getpid()}) ===")
    assert lines[1:6] == ["[ 1/3] synth ...", "warning: a note", "[ 1/3] synth: done in 0.1s (records=3)",
                          "report: r.html | math accuracy 1.0% -> 2.0%", ""]
    assert "mathlora run: second" in lines[6]
    assert lines[7:] == ["[ 1/3] synth: fresh, skipped", "error: data.train file not found: x.json"]
    assert not any("train:" in line or "\r" in line for line in lines)
    assert re.match(r"=== \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", lines[0])


def test_run_log_leaves_out_expected_stops(tmp_path):
    class Stop(Exception):
        pass

    with pytest.raises(Stop):
        with RunLog(tmp_path / "run.log", "t", expected=(Stop,)) as log:
            log.note("stopped after synth as asked")
            raise Stop()
    assert (tmp_path / "run.log").read_text().splitlines()[1:] == ["stopped after synth as asked"]
