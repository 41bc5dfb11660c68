"""Every shipped config, on the tiny model with small counts, through the commands a user runs with it:
``config show``, ``run --stop-after tokenize``, ``train --max-steps 1`` with the config's own batch and
micro-batch settings, ``merge`` and ``export mindformers``. The GPU and Ascend recipes are otherwise exercised
by no test (B1, B2 and B5 of issue 28 lived there)."""

from pathlib import Path

import pytest
import yaml

from mathlora.app.cli import main
from mathlora.app.config import load_config

CONFIGS = sorted(p.stem for p in (Path(__file__).parents[1] / "configs").glob("*.yaml"))
SMALL = ["model=tiny-random-llama", "label.judge=heuristic", "label.model=null", "data.train=null",
         "data.test=null", "data.squad=null", "synth.count=60", "synth.test_count=4", "synth.squad_paragraphs=2",
         "sample.total=40"]


def test_every_shipped_config_is_covered():
    assert CONFIGS == ["demo", "demo_notool", "gpu_smollm2", "llama3_8b_lora"]


@pytest.mark.parametrize("name", CONFIGS)
def test_a_shipped_config_runs_through_every_command_on_the_tiny_model(name, tmp_path, capsys):
    run = tmp_path / "run"
    own = load_config(name).train  # the recipe's batch settings, kept as they are
    assert main(["config", "show", "--config", name, *SMALL]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"] == "tiny-random-llama" and shown["train"]["micro_batch_size"] == own.micro_batch_size

    assert main(["run", "--no-progress", "--config", name, "--run", str(run), *SMALL, "--stop-after", "tokenize"]) == 0
    assert (run / "tokens" / "tokens.parquet").is_file()
    capsys.readouterr()

    assert main(["train", "--config", name, f"run_dir={run}", *SMALL, "--max-steps", "1", "--no-progress"]) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert load_config(run / "config.yaml").train.micro_batch_size == own.micro_batch_size

    assert main(["merge", "--model", "tiny-random-llama", "--adapter", str(run / "train" / "adapter"),
                 "--output", str(run / "merged")]) == 0
    assert (run / "merged" / "config.json").is_file()

    out = tmp_path / "mf"
    assert main(["export", "mindformers", "--run", str(run), "--output", str(out), "--no-mindrecord"]) == 0
    data = yaml.safe_load((out / "finetune_mathlora.yaml").read_text(encoding="utf-8"))
    runner = data["runner_config"]
    assert runner["batch_size"] * runner["gradient_accumulation_steps"] * 8 == own.global_batch_size
    assert isinstance(data["recompute_config"]["recompute"], bool)
    assert isinstance(data["recompute_config"]["select_recompute"], bool)
