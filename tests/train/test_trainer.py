import json
import shutil

import pytest
from safetensors.torch import load_file

from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime
from mathlora.train.checkpoint import list_checkpoints, newest_valid_checkpoint
from mathlora.train.trainer import train as train_stage
from mathlora.train.fingerprint import training_fingerprint
from .conftest import arithmetic_pairs, tiny_config, train, write_tokens

# Losses of the 6 steps of tiny_config(): seed 7, 24 records, batch 8, lr 1e-2, 2 epochs, packing on.
# Recorded on CPU in fp32 (the pinned test runtime); the tiny model's weights depend on the seed alone.
GOLDEN_LOSSES = [5.57052833446558, 5.501429715602518, 5.379604069266732,
                 5.332273061038884, 5.3190619021045915, 5.294926234654018]


def adapter(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def finished_run(tmp_path, tokens_dir):
    out = tmp_path / "run"
    summary = train(tiny_config(save_steps=2), tokens_dir, out, progress=False)
    return out, summary


def test_golden_loss_curve_and_output_layout(finished_run):
    out, summary = finished_run
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == pytest.approx(GOLDEN_LOSSES, abs=1e-4)
    # warmup 1 step at the peak, then cosine towards lr_end=0 (reached when the run ends)
    assert [r["lr"] for r in rows] == pytest.approx([1e-2, 1e-2, 9.045085e-3, 6.545085e-3, 3.454915e-3, 9.549150e-4])
    assert set(rows[0]) == {"step", "epoch", "loss", "lr", "grad_norm", "learnable_tokens", "tokens_per_s",
                            "seconds", "interval_steps", "interval_seconds", "interval_learnable_tokens",
                            "interval_tokens", "mfu"}
    assert summary["steps"] == 6 and summary["epochs"] == 2.0
    assert summary["learnable_tokens"] == sum(r["learnable_tokens"] for r in rows)
    base = summary["total"] - summary["trainable"]
    assert summary["ratio_line"].startswith(f"{summary['trainable']}/{base}={summary['trainable'] / base:.6f} "
                                            "(contest: trainable/base); ")
    # LoRA r8 on q,v of 2 layers, hidden 64, kv 32: 2 * (8*64 + 64*8 + 8*64 + 32*8) = 3584
    assert summary["trainable"] == 3584
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [2, 4, 6]
    assert summary["checkpoints"] == [str(out / "checkpoints" / f"step-{s}") for s in (2, 4, 6)]
    assert max_abs_diff(adapter(out / "adapter"), adapter(out / "checkpoints" / "step-6")) == 0
    assert any((out / "tensorboard").iterdir())
    assert json.loads((out / "summary.json").read_text())["final_loss"] == rows[-1]["loss"]


def test_checkpoint_adapter_loads_with_peft(finished_run):
    from peft import PeftModel

    from mathlora.modeling.models import load_model

    out, _ = finished_run
    model = PeftModel.from_pretrained(load_model("tiny-random-llama", Runtime.resolve()),
                                      str(out / "checkpoints" / "step-4"))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().max() > 0 for p in lora_b)


def test_resume_from_a_middle_checkpoint_equals_the_uninterrupted_run(finished_run, tokens_dir):
    out, summary = finished_run
    reference = adapter(out / "adapter")
    # simulate a crash right after the step-2 checkpoint: later work never happened
    for name in ("step-4", "step-6"):
        shutil.rmtree(out / "checkpoints" / name)
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    # a half-written checkpoint left by the kill must be ignored
    leftover = out / "checkpoints" / ".step-4.abc123.tmp"
    leftover.mkdir()
    (leftover / "adapter_model.safetensors").write_bytes(b"partial")
    assert newest_valid_checkpoint(out / "checkpoints").name == "step-2"

    resumed = train(tiny_config(save_steps=2), tokens_dir, out, resume=True, progress=False)
    assert max_abs_diff(adapter(out / "adapter"), reference) < 1e-6
    assert [r["step"] for r in metrics(out)] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in metrics(out)] == pytest.approx(GOLDEN_LOSSES, abs=1e-6)
    assert resumed["final_loss"] == pytest.approx(summary["final_loss"], abs=1e-6)
    assert resumed["learnable_tokens"] == summary["learnable_tokens"]


def test_finished_run_returns_its_summary_and_other_settings_are_refused(finished_run, tokens_dir):
    out, summary = finished_run
    before = (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    again = train(tiny_config(save_steps=2), tokens_dir, out, progress=False)
    assert again == json.loads((out / "summary.json").read_text())
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == before
    # checkpoint cadence may change without invalidating the run
    assert train(tiny_config(save_steps=3), tokens_dir, out, progress=False)["steps"] == 6
    with pytest.raises(MathloraError, match="other settings"):
        train(tiny_config(save_steps=2, lr=0.5), tokens_dir, out, progress=False)
    fresh = train(tiny_config(lr=0.5, max_steps=2), tokens_dir, out, resume=False, progress=False)
    assert fresh["steps"] == 2 and [s for s, _ in list_checkpoints(out / "checkpoints")] == [2]


def test_accumulation_and_packing_do_not_change_the_result(tmp_path, tokens_dir):
    """Loss = sum over the global batch / its learnable tokens, however it is split into micro-batches."""
    base = dict(max_steps=3, save_steps=None)
    ref = train(tiny_config(micro_batch_size=8, packing=False, **base), tokens_dir, tmp_path / "a", progress=False)
    one = train(tiny_config(micro_batch_size=1, packing=False, **base), tokens_dir, tmp_path / "b", progress=False)
    packed = train(tiny_config(micro_batch_size=1, packing=True, pack_length=64, **base), tokens_dir,
                   tmp_path / "c", progress=False)
    ckpt = train(tiny_config(gradient_checkpointing=True, **base), tokens_dir, tmp_path / "d", progress=False)
    a = adapter(tmp_path / "a" / "adapter")
    for other in ("b", "c", "d"):
        assert max_abs_diff(a, adapter(tmp_path / other / "adapter")) < 1e-5, other
    assert ref["final_loss"] == pytest.approx(one["final_loss"], abs=1e-5)
    assert ref["final_loss"] == pytest.approx(packed["final_loss"], abs=1e-5)
    assert ref["final_loss"] == pytest.approx(ckpt["final_loss"], abs=1e-5)


def test_no_checkpoint_to_resume_warns_and_starts(tmp_path, tokens_dir, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    summary = train(tiny_config(max_steps=1), tokens_dir, out, resume=True, progress=False)
    assert summary["steps"] == 1
    assert "no complete checkpoint" in capsys.readouterr().err


def test_bad_inputs_raise_one_line_errors(tmp_path, tokens_dir):
    with pytest.raises(MathloraError, match="tokens folder not found"):
        train(tiny_config(), tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MathloraError, match="is a file"):
        train(tiny_config(), tokens_dir, tmp_path / "file", progress=False)
    cfg = tiny_config()
    with pytest.raises(MathloraError, match="fp16"):
        train_stage(cfg.train, Runtime(precision="fp16"), tokens_dir, tmp_path / "out", lora=cfg.lora, seed=cfg.seed)


def test_one_fingerprint_decides_what_is_the_same_run(tmp_path, tokens_dir):
    """The rule the trainer (resume, finished runs) and `mathlora run` (keep or delete train/) share."""
    def fp(cfg, runtime=Runtime(), tokens=tokens_dir):
        return training_fingerprint(cfg.train, runtime, tokens, lora=cfg.lora, seed=cfg.seed)

    base = fp(tiny_config())
    for same in (dict(log_every=5), dict(save_steps=1), dict(micro_batch_size=1), dict(gradient_checkpointing=True),
                 dict(merge_checkpoints=True), dict(distributed="fsdp"),
                 # the speed levers: float rounding only
                 dict(gradient_checkpointing="auto"), dict(gradient_checkpointing="selective"),
                 dict(micro_batch_size="auto"), dict(memory_fraction=0.5), dict(liger=False), dict(liger=True),
                 dict(compile="default"), dict(attn_implementation="eager")):
        assert fp(tiny_config(**same)) == base, same
    assert fp(tiny_config(), Runtime("cuda:1", "fp32")) == base  # the device, once the precision is fixed
    assert fp(tiny_config(), Runtime("cpu", "bf16")) != base
    for other in (dict(lr=0.5), dict(epochs=1), dict(max_steps=2), dict(packing=False), dict(pack_length=64)):
        assert fp(tiny_config(**other)) != base, other
    cfg = tiny_config()
    cfg.lora.r = 4
    assert fp(cfg) != base
    cfg = tiny_config()
    cfg.seed = 8
    assert fp(cfg) != base
    # what the tokens artifact says counts too: its sequence length (the default packing length)
    longer = write_tokens(tmp_path / "longer", arithmetic_pairs(24, seed=1), seq_length=512)
    assert fp(tiny_config(), tokens=longer) != base


def test_the_model_comes_from_the_tokens_stats(tmp_path, tokens_dir):
    (tokens_dir / "stats.json").write_text("{}")
    with pytest.raises(MathloraError, match="lacks model, seq_length"):
        train(tiny_config(), tokens_dir, tmp_path / "out", progress=False)
    (tokens_dir / "stats.json").unlink()
    with pytest.raises(MathloraError, match="stats.json not found"):
        train(tiny_config(), tokens_dir, tmp_path / "out", progress=False)


def test_max_steps_that_overrides_epochs_says_so(tmp_path, tokens_dir, capsys):
    train(tiny_config(max_steps=1), tokens_dir, tmp_path / "out", progress=False)
    assert "note: train.max_steps=1 sets the length; train.epochs=2 would be" in capsys.readouterr().err
