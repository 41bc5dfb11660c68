"""Issue 31: special-token strings written in data stay text when tokenized for training (M8); a config YAML
that gives a key twice is an error naming both lines (M6)."""

import json

import pyarrow.parquet as pq
import pytest
from tests.cli_helpers import assert_one_error, cli

from mathlora.app.config import load_config, yaml_load
from mathlora.data.config import ConvertConfig, TokenizeConfig
from mathlora.data.convert import convert_file
from mathlora.data.tokenize import tokenize_file
from mathlora.errors import MathloraError
from mathlora.modeling.models import load_tokenizer


def test_special_token_strings_in_records_stay_text_in_training_tokens(tmp_path):
    tok = load_tokenizer("tiny-random-llama")
    assert {"<s>", "</s>"} <= set(tok.all_special_tokens)
    records = [{"id": "a", "problem": "What does <s> mean?", "solution": "It ends with </s> here, so \\boxed{1}."}]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    convert_file(ConvertConfig(), path, tmp_path / "conv.json")
    tokenize_file(TokenizeConfig(), tmp_path / "conv.json", tmp_path / "tok", model="tiny-random-llama",
                  progress=False)
    ids = pq.read_table(tmp_path / "tok" / "tokens.parquet").to_pylist()[0]["input_ids"]
    assert ids[-1] == tok.eos_token_id and tok.eos_token_id not in ids[:-1]  # one EOS: the real end
    assert tok.bos_token_id not in ids[1:]
    text = tok.decode(ids[:-1])
    assert "<s> mean?" in text and "ends with </s> here" in text


DUPLICATED = """model: tiny-random-llama
train:
  lr: 0.001
lora:
  r: 8
lora:
  r: 64
"""


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text(DUPLICATED, encoding="utf-8")
    with pytest.raises(MathloraError, match=r"key 'lora' is given twice, on line 4 and on line 6"):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  lr: 0.001\n  epochs: 1\n  lr: 0.1\n", encoding="utf-8")
    with pytest.raises(MathloraError, match=r"key 'lr' is given twice, on line 2 and on line 4"):
        load_config(nested)
    assert_one_error(*cli(capsys, "ask", "--config", path, "1 + 1")[::2], "given twice", "line 4", "line 6")


def test_yaml_merge_keys_still_override():
    assert yaml_load("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n") == {"a": {"b": 1}, "c": {"b": 2}}
