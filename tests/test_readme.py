"""README's commands: every ``mathlora ...`` line of its bash blocks parses with today's command line and no
deprecated spelling; the "One stage at a time" walk-through runs as written, on the tiny model."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from tests.cli_helpers import SMALL, cli
from tests.conftest import single_torch_thread

from mathlora.app.cli import build_parser

one_torch_thread = pytest.fixture(autouse=True)(single_torch_thread)

README = Path(__file__).parents[1] / "README.md"


def bash_blocks() -> dict[str, list[str]]:
    """The bash blocks of README under each ``## `` section title."""
    blocks: dict[str, list[str]] = {}
    section = ""
    for part in re.split(r"(^## [^\n]*$|^```bash\n.*?^```$)", README.read_text(encoding="utf-8"), flags=re.M | re.S):
        if part.startswith("## "):
            section = part[3:].strip()
        elif part.startswith("```bash"):
            blocks.setdefault(section, []).append(part.split("\n", 1)[1].rsplit("```", 1)[0])
    return blocks


def mathlora_commands(block: str) -> list[list[str]]:
    """The argv of each ``mathlora`` invocation in a block (continuation lines joined, comments and a trailing
    ``&`` dropped; ``... | mathlora ask`` and ``torchrun ... -m mathlora train`` included)."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        for segment in line.split(" | "):
            words = [w for w in shlex.split(segment, comments=True) if w != "&"]
            if "mathlora" in words and words[0] not in ("pip", "export"):  # `export VAR=...`, not `mathlora export`
                found.append(words[words.index("mathlora") + 1:])
    return [argv for argv in found if argv and not argv[0].startswith("'")]


def test_readme_has_the_commands_this_test_reads():
    blocks = bash_blocks()
    assert {"One stage at a time", "Configs", "Use the tuned model", "Your own model and data on a GPU"} <= set(blocks)
    assert len(mathlora_commands(blocks["One stage at a time"][0])) == 20


def test_every_readme_command_parses_without_a_deprecated_spelling(capsys):
    every = [argv for blocks in bash_blocks().values() for block in blocks for argv in mathlora_commands(block)]
    assert len(every) >= 40
    assert {"run", "config", "ingest", "export", "import", "publish", "ask", "serve"} <= {argv[0] for argv in every}
    for argv in every:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            raise AssertionError(f"README: mathlora {' '.join(argv)}: {capsys.readouterr().err}") from None
        assert getattr(args, "func", None), argv
        err = capsys.readouterr().err
        assert "deprecated" not in err, (argv, err)


@pytest.mark.slow  # twenty commands, a 20-step training among them: half a minute on 2 busy cores (make test runs it)
def test_the_one_stage_walkthrough_runs_as_written_on_the_tiny_model(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = bash_blocks()["One stage at a time"][0].replace("smollm2-135m-instruct", "tiny-random-llama")
    commands = mathlora_commands(block)
    assert commands[-1] == ["report", "--run", "runs/demo"]
    # the run folder `report` rebuilds (its first stages are enough for a report)
    rc, _, err = cli(capsys, "run", "--run", "runs/demo", "--no-progress", "--stop-after", "ingest", *SMALL)
    assert rc == 0, err
    for argv in commands:
        rc, out, err = cli(capsys, *argv)
        assert rc == 0, f"mathlora {' '.join(argv)}: {err}"
    assert Path("predictions.jsonl").is_file() and Path("tuned_squad.json").is_file()
    assert Path("merged/config.json").is_file() and Path("runs/demo/report.md").is_file()
