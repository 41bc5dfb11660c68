import json

from mathlora.app.cli import main


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


def _tree(root):
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_train_never_clears_an_output_folder_it_did_not_make(tmp_path, tokens_dir, capsys):
    mine = tmp_path / "mine"
    (mine / "adapter").mkdir(parents=True)
    (mine / "adapter" / "adapter_model.safetensors").write_bytes(b"my adapter")
    (mine / "checkpoints" / "step-9").mkdir(parents=True)
    (mine / "checkpoints" / "step-9" / "weights.bin").write_bytes(b"my checkpoint")
    (mine / "metrics.jsonl").write_text('{"step": 1}\n')
    before = _tree(tmp_path)
    args = ["train", "model=tiny-random-llama", "train.global_batch_size=8", "train.gradient_checkpointing=false",
            "--tokens", str(tokens_dir), "--output", str(mine), "--max-steps", "1", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: output folder") and "holds 'adapter' and is not a mathlora training folder" in err
    assert len(err.strip().splitlines()) == 1
    assert _tree(tmp_path) == before
    # the folder it made is its own: a rerun with --no-resume starts over there
    out = tmp_path / "out"
    assert main([*args[:-4], str(out), "--max-steps", "1", "--no-progress"]) == 0
    assert (out / ".mathlora-artifact").is_file()
    assert main([*args[:-4], str(out), "--max-steps", "2", "--no-resume", "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


def test_micro_batch_size_auto_is_taken_on_the_command_line(capsys):
    """B5: ``--micro-batch-size auto`` was refused by argparse although ``train.micro_batch_size`` takes auto."""
    from mathlora.app.cliargs import config_from_args
    from mathlora.app.cli import build_parser

    args = build_parser().parse_args(["train", "model=tiny-random-llama", "--micro-batch-size", "auto"])
    assert config_from_args(args).train.micro_batch_size == "auto"
    args = build_parser().parse_args(["train", "model=tiny-random-llama", "--micro-batch-size", "4"])
    assert config_from_args(args).train.micro_batch_size == 4


def test_init_from_is_taken_on_the_command_line(tmp_path, tokens_dir, capsys):
    from mathlora.app.cliargs import config_from_args
    from mathlora.app.cli import build_parser

    args = build_parser().parse_args(["train", "model=tiny-random-llama", "--init-from", "runs/a/train/adapter"])
    assert config_from_args(args).lora.init_from == "runs/a/train/adapter"
    assert main(["train", "model=tiny-random-llama", "--init-from", str(tmp_path / "none"),
                 "--tokens", str(tokens_dir), "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: adapter folder not found")
