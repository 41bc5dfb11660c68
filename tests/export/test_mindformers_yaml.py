"""``mathlora export mindformers``: the YAML carries the recipe in MindFormers' keys and parses back unchanged."""

import pytest
import yaml

from mathlora.app.cli import main
from mathlora.app.config import load_config
from mathlora.errors import MathloraError
from mathlora.export.mindformers import (MINDRECORD_NAME, YAML_NAME, batch_layout, checkpoint_interval, dump_yaml,
                                         mindformers_config)

LLAMA3_8B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "vocab_size": 128256, "intermediate_size": 14336, "rms_norm_eps": 1e-5,
             "rope_theta": 500000.0, "max_position_embeddings": 8192, "bos_token_id": 128000,
             "eos_token_id": 128001, "tie_word_embeddings": False}


def test_recipe_yaml_has_mindformers_keys_and_round_trips():
    cfg = load_config("llama3_8b_lora", {"model": "tiny-random-llama"})
    data = mindformers_config(cfg, LLAMA3_8B, {"kept": 100000}, dataset_dir="/data/tokens.mindrecord",
                              devices=8, load_checkpoint="/ckpt/llama3_8b.ckpt", pad_token_id=128002)
    text = dump_yaml(data)
    assert "&id" not in text and "*id" not in text  # no YAML aliases
    back = yaml.safe_load(text)
    assert back == data
    assert back["seed"] == 0 and back["run_mode"] == "finetune"
    assert back["load_checkpoint"] == "/ckpt/llama3_8b.ckpt" and back["auto_trans_ckpt"] is True
    assert back["runner_config"] == {"epochs": 3, "batch_size": 4, "sink_mode": True, "sink_size": 1,
                                     "gradient_accumulation_steps": 1}
    opt = back["optimizer"]
    assert opt["type"] == "AdamWeightDecay"  # MindFormers 1.5 to 1.9 (the default release, 1.9)
    assert (opt["beta1"], opt["beta2"], opt["eps"], opt["weight_decay"]) == (0.9, 0.95, 1e-8, 0.0)
    lr = back["lr_schedule"]
    assert lr == {"type": "CosineWithWarmUpLR", "learning_rate": 1e-5, "lr_end": 0.0, "warmup_ratio": 0.03,
                  "total_steps": -1}
    assert back["runner_wrapper"]["use_clip_grad"] is True and back["runner_wrapper"]["max_grad_norm"] == 1.0
    assert back["parallel_config"]["data_parallel"] == 8 and back["use_parallel"] is True
    assert back["recompute_config"]["recompute"] is True
    monitor = back["callbacks"][1]
    assert monitor["type"] == "CheckpointMonitor"
    assert monitor["save_checkpoint_steps"] == 700  # gcd of 2100/2800/3500/4200: all the recipe's checkpoints
    assert monitor["keep_checkpoint_max"] == 9375 // 700 + 1  # 100000 records, 32/step, 3 epochs: 9375 steps
    assert back["train_dataset"]["data_loader"] == {"type": "MindDataset", "dataset_dir": "/data/tokens.mindrecord",
                                                    "shuffle": True}
    assert back["train_dataset"]["input_columns"] == ["input_ids", "labels"]
    assert back["train_dataset_task"]["dataset_config"] == back["train_dataset"]
    mc = back["model"]["model_config"]
    assert back["model"]["arch"]["type"] == "LlamaForCausalLM" and mc["type"] == "LlamaConfig"
    assert (mc["seq_length"], mc["hidden_size"], mc["num_layers"], mc["num_heads"], mc["n_kv_heads"]) == \
        (256, 4096, 32, 32, 8)
    assert (mc["vocab_size"], mc["intermediate_size"], mc["rms_norm_eps"], mc["theta"]) == \
        (128256, 14336, 1e-5, 500000.0)
    assert (mc["bos_token_id"], mc["eos_token_id"], mc["pad_token_id"]) == (128000, 128001, 128002)
    assert mc["compute_dtype"] == "bfloat16" and mc["tie_word_embeddings"] is False
    assert mc["pet_config"] == {"pet_type": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lora_dropout": 0.0,
                                "param_init_type": "float32", "compute_dtype": "bfloat16",
                                "target_modules": ".*wq|.*wv"}


def test_batch_layout_and_checkpoint_interval():
    assert batch_layout(32, 32, 8) == (4, 1)
    assert batch_layout(32, 2, 8) == (2, 2)
    assert batch_layout(32, 8, 1) == (8, 4)
    assert batch_layout(24, 5, 1) == (4, 6)
    with pytest.raises(MathloraError, match="not a multiple of --devices"):
        batch_layout(32, 8, 6)
    assert checkpoint_interval(None, 50) == 50
    assert checkpoint_interval(10, 50) == 10
    assert checkpoint_interval([20, 30, 999], 50) == 10


def test_non_llama_base_is_refused():
    cfg = load_config(None, {"model": "tiny-random-llama"})
    with pytest.raises(MathloraError, match="Llama-family"):
        mindformers_config(cfg, {**LLAMA3_8B, "model_type": "qwen2"}, {"kept": 10}, dataset_dir="x")


def test_a_run_that_continues_an_adapter_is_refused():
    cfg = load_config("llama3_8b_lora", {"model": "tiny-random-llama", "lora.init_from": "runs/x/train/adapter"})
    with pytest.raises(MathloraError, match=r"lora.init_from \(runs/x/train/adapter\) is not carried to MindFormers"):
        mindformers_config(cfg, LLAMA3_8B, {"kept": 10}, dataset_dir="x")


def test_cli_writes_yaml_from_a_run(run_dir, tmp_path, capsys):
    out = tmp_path / "mf"
    assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(out), "--devices", "1",
                 "--no-mindrecord"]) == 0
    assert f"wrote {out / YAML_NAME}" in capsys.readouterr().out
    text = (out / YAML_NAME).read_text(encoding="utf-8")
    assert text.startswith("# MindFormers LoRA finetune config")
    data = yaml.safe_load(text)
    assert yaml.safe_load(dump_yaml(data)) == data
    mc = data["model"]["model_config"]
    # the tiny model's shape and ids (byte tokenizer: <s>=256, </s>=257, <pad>=258)
    assert (mc["hidden_size"], mc["num_layers"], mc["num_heads"], mc["n_kv_heads"], mc["intermediate_size"]) == \
        (64, 2, 4, 2, 128)
    assert (mc["vocab_size"], mc["bos_token_id"], mc["eos_token_id"], mc["pad_token_id"]) == (259, 256, 257, 258)
    assert mc["theta"] == 10000.0 and mc["rms_norm_eps"] == 1e-6
    assert data["use_parallel"] is False and data["auto_trans_ckpt"] is False
    assert data["train_dataset"]["data_loader"]["dataset_dir"] == str((out / MINDRECORD_NAME).resolve())
    # demo recipe: 10 records, batch 8, 2 epochs... from the run's config.yaml
    cfg = load_config(run_dir / "config.yaml")
    assert data["runner_config"]["epochs"] == int(cfg.train.epochs)
    assert data["optimizer"]["learning_rate"] == cfg.train.lr
    assert data["callbacks"][1]["save_checkpoint_steps"] == 2


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["export", "mindformers", "--run", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: run folder not found")
    (tmp_path / "r").mkdir()
    assert main(["export", "mindformers", "--run", str(tmp_path / "r"), "--output", str(tmp_path / "o")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_missing_mindspore_names_the_extra(run_dir, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mindspore", None)  # import mindspore -> ImportError
    assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'mathlora[mindspore]'" in err
    assert main(["export", "mindspore-ckpt", "--model", "tiny-random-llama", "--output", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: export mindspore-ckpt needs MindSpore") and "mathlora[mindspore]" in err
    assert main(["import", "mindspore-ckpt", "--ckpt", str(tmp_path / "x.ckpt"), "--base", "tiny-random-llama",
                 "--output", str(tmp_path / "hf")]) == 2
    assert "pip install 'mathlora[mindspore]'" in capsys.readouterr().err


def test_mindrecord_beside_the_yaml(run_dir, tmp_path):
    pytest.importorskip("mindspore")
    from mindspore.mindrecord import FileReader

    out = tmp_path / "mf"
    assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(out), "--devices", "1"]) == 0
    reader = FileReader(str(out / MINDRECORD_NAME))
    rows = [(list(r["input_ids"]), list(r["labels"])) for r in reader.get_next()]
    reader.close()
    assert len(rows) == 10
    assert all(len(ids) == len(lab) == 257 for ids, lab in rows)  # seq_length 256 + 1
    assert rows[0][0][:3] == [256, 65, 66] and rows[0][0][3:5] == [258, 258]  # padded with <pad>
    assert rows[0][1][:3] == [-100, 65, 66] and set(rows[0][1][3:]) == {-100}


def test_a_run_with_an_auto_micro_batch_exports_batch_1_and_says_so(tmp_path, capsys):
    """B1: ``train.micro_batch_size: auto`` (gpu_smollm2's) was a TypeError traceback (``'auto'`` vs an int)."""
    cfg = load_config(None, {"model": "tiny-random-llama", "train.micro_batch_size": "auto"})
    data = mindformers_config(cfg, LLAMA3_8B, {"kept": 1000}, dataset_dir="x", devices=8)
    # MindFormers plans no memory: one row a pass, the global batch by gradient accumulation
    assert data["runner_config"]["batch_size"] == 1
    assert data["runner_config"]["gradient_accumulation_steps"] == cfg.train.global_batch_size // 8
    from .conftest import make_run

    run_dir = make_run(tmp_path / "auto", extra_overrides={"train.micro_batch_size": "auto"})
    out = tmp_path / "mf"
    assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(out), "--devices", "1",
                 "--no-mindrecord"]) == 0
    printed = capsys.readouterr().out
    assert "train.micro_batch_size auto" in printed
    # one device is MindFormers' stand_alone mode, which resets gradient_accumulation_steps to 1 (seen in
    # MindFormers 1.9.0 when run: its base_trainer warns and does so): the global batch goes in one step
    written = yaml.safe_load((out / YAML_NAME).read_text(encoding="utf-8"))["runner_config"]
    global_batch = load_config(run_dir / "config.yaml").train.global_batch_size
    assert (written["batch_size"], written["gradient_accumulation_steps"]) == (global_batch, 1)


@pytest.mark.parametrize("recompute, expected", [(True, (True, False)), (False, (False, False)),
                                                 ("selective", (False, True)), ("auto", (True, False))])
def test_recompute_is_the_boolean_mindformers_reads(recompute, expected):
    """B2: ``gradient_checkpointing: auto | selective`` went into ``recompute`` as a string MindFormers does not
    read; selective is MindFormers' select_recompute, auto every layer (no memory plan off CUDA)."""
    cfg = load_config(None, {"model": "tiny-random-llama", "train.gradient_checkpointing": recompute})
    rc = mindformers_config(cfg, LLAMA3_8B, {"kept": 100}, dataset_dir="x")["recompute_config"]
    assert (rc["recompute"], rc["select_recompute"]) == expected
    assert all(isinstance(rc[k], bool) for k in ("recompute", "select_recompute"))
