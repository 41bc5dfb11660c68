"""What training and merging hand out loads anywhere: the adapter names its base by the user's spec (not this
machine's cache), loads in plain peft after it is moved with another cache, and every exported tokenizer has the
training prompt as its chat template; adapter, checkpoint and merged folders carry mathlora's model card."""

from __future__ import annotations

import json
import shutil

import torch

from mathlora.modeling.adapters import base_model_name, hub_id
from mathlora.export.model_card import CardFacts
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.templates import render_prompt
from mathlora.train.merge import merge_adapter
from .conftest import arithmetic_pairs, tiny_config, train, write_tokens

PROBLEM = "计算 12 + 30 等于多少？"


def _base_folder(tmp_path):
    """The tiny random model saved as a plain HF folder: a base model given by its path."""
    from mathlora.modeling.models import load_model, load_tokenizer

    folder = tmp_path / "models" / "tiny-base"
    load_model("tiny-random-llama", Runtime()).save_pretrained(str(folder), safe_serialization=True)
    load_tokenizer("tiny-random-llama").save_pretrained(str(folder))
    return folder


def test_the_base_model_is_named_by_the_users_spec():
    assert base_model_name("smollm2-135m-instruct") == hub_id("smollm2-135m-instruct") == \
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model_name("/data/models/llama") == "/data/models/llama" and hub_id("/data/models/llama") is None
    assert base_model_name("tiny-random-llama") == "tiny-random-llama"
    cached = "/root/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B/snapshots/62bd457b/"
    assert base_model_name(cached) == "meta-llama/Meta-Llama-3-8B"
    assert hub_id("/x/datasets--openai--gsm8k/snapshots/abc/main/train.jsonl", "datasets") == "openai/gsm8k"
    assert base_model_name("Qwen/Qwen2.5-0.5B-Instruct@main") == "Qwen/Qwen2.5-0.5B-Instruct"  # a Hub id spec


def test_a_pinned_hub_revision_is_recorded_as_peft_revision():
    from peft import LoraConfig

    from mathlora.modeling.adapters import name_base_model

    class Wrapped:
        peft_config = {"default": LoraConfig(target_modules=["q_proj"])}

    name_base_model(Wrapped, "Qwen/Qwen2.5-0.5B-Instruct@" + "a" * 40)
    config = Wrapped.peft_config["default"]
    assert (config.base_model_name_or_path, config.revision) == ("Qwen/Qwen2.5-0.5B-Instruct", "a" * 40)


def test_a_moved_adapter_loads_in_plain_peft_with_another_cache(tmp_path, monkeypatch):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = _base_folder(tmp_path)
    spec = str(base_dir)
    tokens = write_tokens(tmp_path / "tokens", arithmetic_pairs(16, seed=3), model=spec)
    stats = json.loads((tokens / "stats.json").read_text())
    (tokens / "stats.json").write_text(json.dumps({**stats, "template": "alpaca"}))
    monkeypatch.setenv("MATHLORA_CACHE", str(tmp_path / "cache-a"))
    cfg = tiny_config(max_steps=2, lr=0.05, save_steps=1)
    cfg = cfg.model_copy(update={"model": spec})
    train(cfg, tokens, tmp_path / "run" / "train", progress=False)
    adapter = tmp_path / "run" / "train" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == spec  # the path given, not a cache folder
    ids = torch.tensor([AutoTokenizer.from_pretrained(str(adapter)).encode(render_prompt("alpaca", PROBLEM))])
    with torch.no_grad():
        before = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(spec), str(adapter)).eval()(
            input_ids=ids).logits

    moved = tmp_path / "elsewhere" / "my-adapter"
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "run"), str(tmp_path / "elsewhere" / "run"))
    shutil.copytree(tmp_path / "elsewhere" / "run" / "train" / "adapter", moved)
    monkeypatch.setenv("MATHLORA_CACHE", str(tmp_path / "cache-b"))  # another machine's cache: empty
    with torch.no_grad():
        plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(spec), str(moved)).eval()
        auto = AutoPeftModelForCausalLM.from_pretrained(str(moved)).eval()  # the base from adapter_config.json
        assert torch.allclose(plain(input_ids=ids).logits, before, atol=1e-6)
        assert torch.allclose(auto(input_ids=ids).logits, before, atol=1e-6)
    assert (moved / "chat_template.jinja").is_file()  # what `vllm serve --chat-template` takes
    tok = AutoTokenizer.from_pretrained(str(moved))
    assert tok.apply_chat_template([{"role": "user", "content": PROBLEM}], add_generation_prompt=True,
                                   tokenize=False) == render_prompt("alpaca", PROBLEM)
    assert not (tmp_path / "cache-b").exists()


def test_cards_of_adapter_checkpoints_and_merged(tmp_path, tokens_dir):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = tiny_config(max_steps=2, lr=0.05, save_steps=1, merge_checkpoints=True)
    train(cfg, tokens_dir, tmp_path / "run", progress=False)
    adapter, step1 = tmp_path / "run" / "adapter", tmp_path / "run" / "checkpoints" / "step-1"
    for folder, library in ((adapter, "peft"), (step1, "peft")):
        text = (folder / "README.md").read_text(encoding="utf-8")
        assert "More Information Needed" not in text  # peft's empty card is replaced
        card = ModelCard.load(folder / "README.md")
        assert card.data.library_name == library and "mathlora" in card.data.tags
        assert card.data.base_model is None  # tiny-random-llama is not a Hub model
    assert "checkpoint at step 1" in (step1 / "README.md").read_text(encoding="utf-8")
    from mathlora.train.checkpoint import checkpoint_problem

    assert checkpoint_problem(step1) is None  # the card is inside the checkpoint's checksum
    facts = CardFacts.from_card(adapter / "README.md")
    assert facts.template == "alpaca" and facts.recipe["seed"] == "7" and facts.recipe["steps trained"] == "2"

    merged = merge_adapter(Runtime(), "tiny-random-llama", adapter, tmp_path / "merged")
    card = ModelCard.load(merged / "README.md")
    assert card.data.library_name == "transformers" and card.data.to_dict()["mathlora"]["template"] == "alpaca"
    assert "vllm serve" in card.text
    tok = AutoTokenizer.from_pretrained(str(merged))
    assert tok.apply_chat_template([{"role": "user", "content": PROBLEM}], add_generation_prompt=True,
                                   tokenize=False) == render_prompt("alpaca", PROBLEM)
    model = AutoModelForCausalLM.from_pretrained(str(merged))
    assert model.config.pad_token_id == tok.pad_token_id != tok.eos_token_id
    # a checkpoint's merged model gets the same template (from the tokens' stats)
    ck_tok = AutoTokenizer.from_pretrained(str(step1 / "merged"))
    assert ck_tok.chat_template == tok.chat_template
