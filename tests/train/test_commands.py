import json

from mathlora.cli import main


def test_train_command_defaults_to_run_dir_and_prints_a_summary(tmp_path, tokens_dir, capsys):
    run_dir = tmp_path / "run"
    tokens = run_dir / "tokens"
    tokens.parent.mkdir()
    tokens_dir.rename(tokens)
    args = ["train", f"run_dir={run_dir}", "model=tiny-random-llama", "train.global_batch_size=8",
            "train.gradient_checkpointing=false", "--max-steps", "2", "--lr", "0.01", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trained 2 steps" in out and "learnable tokens/s" in out and "3584/" in out
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["adapter"] == str(run_dir / "train" / "adapter")


def test_train_command_user_errors_exit_2(tmp_path, capsys):
    assert main(["train", "model=tiny-random-llama", "--tokens", str(tmp_path / "missing"),
                 "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: tokens folder not found")
    assert main(["train", "train.distributed=zero"]) == 2
    assert "train.distributed" in capsys.readouterr().err
