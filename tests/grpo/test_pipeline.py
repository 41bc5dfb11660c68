"""The grpo stage inside ``mathlora run`` and as ``mathlora grpo``: it runs after train when enabled, its model is
evaluated against the SFT model, a rerun is fresh, other settings need --force, the command reuses the run."""

from __future__ import annotations

import json

from tests.grpo.conftest import trl_or_skip
from tests.test_stages import GRPO, TINY

from mathlora.app.cli import main
from mathlora.run_dir.layout import RunLayout


def test_mathlora_run_trains_grpo_after_sft_and_scores_it_against_sft(tmp_path, capsys):
    trl_or_skip()
    run = tmp_path / "run"
    args = ["run", "--no-progress", "-o", str(run), *TINY, *GRPO, "grpo.steps=2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "grpo: done" in out and "eval_grpo_math: done" in out and "eval_grpo_squad: done" in out
    assert "; GRPO " in out.strip().splitlines()[-1]  # the run's last line: SFT -> GRPO accuracy
    lay = RunLayout(run)
    summary = json.loads(lay.grpo_summary.read_text())
    assert summary["steps"] == 2 and lay.grpo_merged_config.is_file() and lay.grpo_metrics.is_file()
    math = json.loads(lay.eval("grpo").math.read_text())
    assert math["baseline"] == str(lay.eval("tuned").math_predictions)  # SFT -> GRPO, per family too
    assert "per_type" in math["comparison"]
    assert "retention" in json.loads(lay.eval("grpo").squad.read_text())  # against the base model
    report = lay.report_md.read_text(encoding="utf-8")  # SFT -> GRPO per family, side by side
    assert "| GRPO |" in report and "change (points, GRPO + calculator - fine-tuned + calculator)" in report

    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("grpo", "eval_grpo_math", "eval_grpo_squad"):
        assert f"{name}: fresh, skipped" in out

    assert main([*args, "grpo.lr=0.001"]) == 2  # a finished GRPO run is never replaced without --force
    err = capsys.readouterr().err
    assert "holds a finished GRPO run made with other settings (changed: grpo.lr)" in err and "--force" in err
    assert main([*args, "grpo.save_steps=7", "grpo.log_every=2"]) == 0  # marked settings: the same run
    assert "grpo: fresh, skipped" in capsys.readouterr().out
    assert main(["grpo", "--no-progress", "--run", str(run), *TINY, *GRPO, "grpo.steps=2"]) == 0
    assert "holds this finished run (2 steps); nothing to do" in capsys.readouterr().out
    lay.grpo_summary.unlink()  # as an interrupted run leaves it: checkpoints only
    assert main([*args, "grpo.lr=0.001"]) == 2
    assert "holds an interrupted GRPO run made with other settings" in capsys.readouterr().err
    assert main([*args, "grpo.lr=0.001", "--force"]) == 0
    assert json.loads(lay.grpo_summary.read_text())["settings"]["grpo"]["lr"] == 0.001


def test_mathlora_grpo_trains_from_a_run_folders_sft_adapter(tmp_path, capsys):
    trl_or_skip()
    run = tmp_path / "run"
    assert main(["run", "--no-progress", "-o", str(run), *TINY, "--stop-after", "train"]) == 0
    capsys.readouterr()
    out = tmp_path / "grpo"
    assert main(["grpo", "--no-progress", "--run", str(run), "--output", str(out), "--steps", "1",
                 "--num-generations", "2", "--prompts-per-step", "1", "--max-completion-length", "4",
                 "--no-merge"]) == 0  # the run's own config: the tiny model, its template
    printed = capsys.readouterr().out
    assert "grpo: 1 steps, 2 completions per step" in printed and "without the calculator" in printed
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and not (out / "merged").exists()


def test_grpo_enabled_without_trl_stops_before_the_first_stage(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "trl", None)
    assert main(["run", "--no-progress", "-o", str(tmp_path / "run"), *TINY, *GRPO]) == 2
    err = capsys.readouterr().err
    assert "the grpo stage needs TRL: pip install 'mathlora[grpo]'" in err
    assert not (tmp_path / "run" / "records.jsonl").exists()
