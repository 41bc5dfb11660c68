"""The declared stages: ``mathlora run --stop-after S`` stops right after S, whatever the configuration."""

import re
import shutil

import pytest

from mathlora.cli import main
from mathlora.pipeline import STAGES

TINY = ["model=tiny-random-llama", "label.judge=heuristic", "synth.count=48", "synth.test_count=4",
        "synth.squad_paragraphs=2", "sample.total=16", "train.max_steps=1", "train.global_batch_size=4",
        "train.micro_batch_size=4", "train.save_steps=1", "eval.max_new_tokens=2", "eval.batch_size=8",
        "tokenize.seq_length=320"]
STAGE_LINE = re.compile(r"^\[\s*\d+/\d+\] (\S+?)(?::| \.\.\.)")


@pytest.fixture(scope="module")
def given_data(tmp_path_factory):
    """The three data files a user would give (data.train, data.test, data.squad), made by a stopped run."""
    run = tmp_path_factory.mktemp("synth") / "run"
    assert main(["run", "--no-progress", "-o", str(run), *TINY, "--stop-after", "synth"]) == 0
    folder = tmp_path_factory.mktemp("given")
    for name in ("train.jsonl", "test.jsonl", "squad.json"):
        shutil.copy(run / "raw" / name, folder / name)
    return folder


@pytest.mark.parametrize("data_given", [False, True], ids=["synth-data", "data-given"])
@pytest.mark.parametrize("style", ["answer", "calculator"])
def test_stop_after_stops_right_after_each_stage_in_every_configuration(tmp_path, capsys, request, data_given,
                                                                        style):
    run = tmp_path / "run"
    args = [*TINY, f"solution_style={style}"]
    if data_given:
        folder = request.getfixturevalue("given_data")
        args += [f"data.train={folder / 'train.jsonl'}", f"data.test={folder / 'test.jsonl'}",
                 f"data.squad={folder / 'squad.json'}"]
    capsys.readouterr()
    for stage in STAGES:  # each run does the stages before it (fresh, skipped) and this one, then stops
        assert main(["run", "--no-progress", "-o", str(run), *args, "--stop-after", stage]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        names = [m.group(1) for line in lines if (m := STAGE_LINE.match(line))]
        assert names and names[-1] == stage, (stage, lines[-3:])
        assert lines[-1].startswith(f"stopped after {stage} as asked"), (stage, lines[-3:])
        unused = (stage == "synth" and data_given) or (stage == "rewrite" and style == "answer")
        assert ("not used" in [line for line in lines if STAGE_LINE.match(line)][-1]) == unused, lines[-2:]
