"""``mathlora export mindformers`` targets: the MindFormers release (its optimizer's name) and the device (the CPU
switches), the runner script beside the YAML, and the notes on what MindFormers cannot express."""

import ast
from pathlib import Path

import pytest
import yaml

from mathlora.app.cli import main
from mathlora.app.config import load_config
from mathlora.errors import MathloraError
from mathlora.export import mf_runner
from mathlora.export.mf_targets import CPU_SWITCHES, DEFAULT_MINDFORMERS, MINDSPORE_FOR, mindformers_release
from mathlora.export.mindformers import RUNNER_NAME, YAML_NAME, mindformers_config

SMOLLM2_2L = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 2, "num_attention_heads": 9,
              "num_key_value_heads": 3, "vocab_size": 49152, "intermediate_size": 1536, "rms_norm_eps": 1e-5,
              "rope_theta": 100000.0, "max_position_embeddings": 8192, "bos_token_id": 1, "eos_token_id": 2,
              "tie_word_embeddings": True}


def _config(**kw):
    cfg = load_config(None, {"model": "tiny-random-llama", "train.global_batch_size": 16,
                             "train.micro_batch_size": 4, "runtime.precision": "bf16"})
    return mindformers_config(cfg, SMOLLM2_2L, {"kept": 64}, dataset_dir="/d/tokens.mindrecord", **kw)


def test_release_names_the_optimizer_and_is_validated():
    assert DEFAULT_MINDFORMERS == "1.9" and MINDSPORE_FOR["1.9"] == "2.9.0"
    assert _config(devices=2)["optimizer"]["type"] == "AdamWeightDecay"
    assert _config(devices=2, mindformers="1.3")["optimizer"]["type"] == "FP32StateAdamWeightDecay"
    assert _config(devices=2, mindformers="1.6.0")["optimizer"]["type"] == "AdamWeightDecay"
    assert [mindformers_release(v) for v in ("1.9", "1.9.0", "v1.7", " 1.3.2", None)] == \
        ["1.9", "1.9", "1.7", "1.3", "1.9"]
    with pytest.raises(MathloraError, match="hyper-parallel"):
        mindformers_release("2.0.0")
    for bad in ("1.4", "1.5", "0.8", "latest", "1", ""):
        with pytest.raises(MathloraError, match="1.3 .* or 1.6 to 1.9"):
            mindformers_release(bad)


def test_ascend_target_has_no_cpu_switch():
    data = _config(devices=2)
    mc = data["model"]["model_config"]
    assert data["context"]["device_target"] == "Ascend" and data["context"]["max_device_memory"] == "58GB"
    assert mc["use_flash_attention"] is True and "use_rope_slice" not in mc and "fused_rms_norm" not in mc
    assert mc["compute_dtype"] == "bfloat16" and mc["pet_config"]["compute_dtype"] == "bfloat16"
    assert data["runner_config"]["sink_mode"] is True and data["train_dataset"]["num_parallel_workers"] == 8
    assert (data["runner_config"]["batch_size"], data["runner_config"]["gradient_accumulation_steps"]) == (4, 2)


def test_cpu_target_switches():
    data = _config(devices=1, device_target="cpu")
    mc = data["model"]["model_config"]
    assert data["context"]["device_target"] == "CPU" and "max_device_memory" not in data["context"]
    assert {k: mc[k] for k in CPU_SWITCHES} == {"use_rope_slice": True, "fused_rms_norm": False,
                                               "use_flash_attention": False}
    assert {mc["compute_dtype"], mc["param_init_type"], mc["embedding_init_type"],
            mc["pet_config"]["compute_dtype"]} == {"float32"}
    assert data["runner_config"]["sink_mode"] is False
    assert data["train_dataset"]["num_parallel_workers"] == 1 == data["train_dataset_task"]["dataset_config"][
        "num_parallel_workers"]
    # one device is MindFormers' stand_alone mode, which does not accumulate: the global batch in one step
    assert (data["runner_config"]["batch_size"], data["runner_config"]["gradient_accumulation_steps"]) == (16, 1)
    assert data["train_dataset"]["batch_size"] == mc["batch_size"] == 16
    with pytest.raises(MathloraError, match="give --devices 1"):
        _config(devices=8, device_target="cpu")
    with pytest.raises(MathloraError, match="give ascend or cpu"):
        _config(devices=1, device_target="gpu")


def test_cli_cpu_export_writes_runner_and_notes(run_dir, tmp_path, capsys):
    out = tmp_path / "mf"
    assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(out), "--device-target", "cpu",
                 "--mindformers", "1.9.0", "--no-mindrecord"]) == 0
    printed = capsys.readouterr().out
    assert "note: train.packing has no MindFormers counterpart" in printed  # the README's "no packing" note
    assert "note: device target cpu:" in printed
    assert f"wrote {out / RUNNER_NAME}" in printed
    text = (out / YAML_NAME).read_text(encoding="utf-8")
    assert "# for MindFormers 1.9 (with MindSpore 2.9.0), device target cpu" in text
    assert f"python {(out / RUNNER_NAME).resolve()} --load_checkpoint BASE.ckpt" in text
    data = yaml.safe_load(text)
    assert data["use_parallel"] is False and data["context"]["device_target"] == "CPU"
    assert (out / RUNNER_NAME).read_text(encoding="utf-8") == Path(mf_runner.__file__).read_text(encoding="utf-8")


def test_cli_refuses_bad_targets_in_one_line(run_dir, tmp_path, capsys):
    assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(tmp_path / "o"),
                 "--mindformers", "2.1", "--no-mindrecord"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mindformers 2.1 is not covered" in err
    assert main(["export", "mindformers", "--run", str(run_dir), "--output", str(tmp_path / "o"),
                 "--device-target", "cpu", "--devices", "2", "--no-mindrecord"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --devices 1" in err
    assert not (tmp_path / "o").exists()


def test_runner_imports_only_the_standard_library_at_module_level():
    """run_finetune.py runs in MindFormers' environment, where mathlora is not installed."""
    tree = ast.parse(Path(mf_runner.__file__).read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names if isinstance(n, ast.Import)} | \
            {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert names <= {"__future__", "argparse", "os", "sys"}
    inner = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "mathlora" not in inner
