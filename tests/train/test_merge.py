import pytest
import torch

from mathlora.app.cli import main
from mathlora.errors import MathloraError
from mathlora.modeling.models import load_model
from mathlora.modeling.runtime import Runtime
from mathlora.train.merge import merge_adapter
from .conftest import tiny_config, train


def test_merged_model_logits_equal_base_plus_adapter(tmp_path, tokens_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = tiny_config(max_steps=3, lr=0.05, merge_checkpoints=True, save_steps=2)
    train(cfg, tokens_dir, tmp_path / "run", progress=False)
    merged_dir = merge_adapter(Runtime(), "tiny-random-llama", tmp_path / "run" / "adapter", tmp_path / "merged")

    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()  # plain transformers, no peft
    assert not any("lora" in n for n, _ in merged.named_parameters())
    tok = AutoTokenizer.from_pretrained(str(merged_dir))
    ids = torch.tensor([tok.encode("Q: 12 + 30 = ?\nA: ", add_special_tokens=False)])
    base = load_model("tiny-random-llama", Runtime())
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapter")).eval()(input_ids=ids).logits
        merged_logits = merged(input_ids=ids).logits
    assert (with_adapter - plain).abs().max() > 1e-3  # the adapter changes the model
    assert torch.allclose(merged_logits, with_adapter, atol=1e-5)
    # merge_checkpoints: every checkpoint carries its merged model
    step2 = AutoModelForCausalLM.from_pretrained(str(tmp_path / "run" / "checkpoints" / "step-2" / "merged"))
    assert (tmp_path / "run" / "checkpoints" / "step-3" / "merged" / "config.json").is_file()
    with torch.no_grad():
        assert not torch.allclose(step2(input_ids=ids).logits, merged_logits, atol=1e-5)


def test_merge_errors_and_cli(tmp_path, tokens_dir, capsys):
    with pytest.raises(MathloraError, match="adapter folder not found"):
        merge_adapter(Runtime(), "tiny-random-llama", tmp_path / "none", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MathloraError, match="lacks adapter_config.json"):
        merge_adapter(Runtime(), "tiny-random-llama", tmp_path / "empty", tmp_path / "out")
    assert main(["merge", "--model", "tiny-random-llama", "--adapter", str(tmp_path / "empty"),
                 "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: adapter folder")
    train(tiny_config(max_steps=1), tokens_dir, tmp_path / "run", progress=False)
    assert main(["merge", "--model", "tiny-random-llama", "--adapter", str(tmp_path / "run" / "adapter"),
                 "--output", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".m.*"))  # no temp folder left


def test_merge_computes_in_fp32_unless_pinned_and_saves_in_the_stored_dtype(tmp_path, tokens_dir):
    from safetensors.torch import load_file

    train(tiny_config(max_steps=2, lr=0.05), tokens_dir, tmp_path / "run", progress=False)
    adapter = tmp_path / "run" / "adapter"
    reference = load_file(str(merge_adapter(Runtime(), "tiny-random-llama", adapter, tmp_path / "ref")
                              / "model.safetensors"))
    assert {t.dtype for t in reference.values()} == {torch.float32}  # the tiny model is stored in fp32
    # precision auto (bf16 on a GPU box): the merge still runs in fp32, so it is the fp32 merge exactly
    auto = load_file(str(merge_adapter(Runtime("cpu", "bf16", precision_auto=True), "tiny-random-llama", adapter,
                                       tmp_path / "auto") / "model.safetensors"))
    assert all(torch.equal(auto[k], reference[k]) for k in reference)
    # pinned bf16 and a bf16 output: bf16 arithmetic, close to the fp32 merge rounded
    pinned = load_file(str(merge_adapter(Runtime("cpu", "bf16"), "tiny-random-llama", adapter, tmp_path / "bf16",
                                         dtype="bf16") / "model.safetensors"))
    assert {t.dtype for t in pinned.values()} == {torch.bfloat16}
    assert max(float((pinned[k].float() - reference[k]).abs().max()) for k in reference) < 1e-2


def test_merge_on_the_default_runtime(tmp_path):
    """B3: ``runtime=None`` (the documented default, ``Runtime.resolve()``) was an AttributeError."""
    from tests.cli_helpers import tiny_adapter

    adapter = tiny_adapter(tmp_path / "adapter")
    assert (merge_adapter(None, "tiny-random-llama", adapter, tmp_path / "merged") / "config.json").is_file()


def test_an_adapter_without_a_card_on_a_base_without_pad_is_not_shipped_with_pad_eos(tmp_path):
    """B4: a base tokenizer with no pad and no unk token (Llama 3's) got pad == EOS from ``load_tokenizer``'s
    older rule; the merged folder shipped it. One rule now: ``models.pad_token_for``."""
    import copy

    from transformers import AutoTokenizer

    from mathlora.modeling.models import load_tokenizer
    from tests.cli_helpers import tiny_adapter

    base = tmp_path / "base"
    load_model("tiny-random-llama", Runtime()).save_pretrained(str(base))
    tok = copy.deepcopy(load_tokenizer("tiny-random-llama"))
    tok.pad_token = None  # like Llama 3: no pad, no unk; <pad> stays a special token of the vocabulary
    tok.save_pretrained(str(base))
    assert AutoTokenizer.from_pretrained(str(base)).pad_token is None
    adapter = tiny_adapter(tmp_path / "adapter")
    (adapter / "README.md").unlink(missing_ok=True)  # not mathlora's: no card, no template
    merged = merge_adapter(Runtime(), str(base), adapter, tmp_path / "merged")
    shipped = AutoTokenizer.from_pretrained(str(merged))
    assert shipped.pad_token is not None and shipped.pad_token != shipped.eos_token
    assert load_tokenizer(str(base)).pad_token != load_tokenizer(str(base)).eos_token
