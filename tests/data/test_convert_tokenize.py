import json

import pyarrow.parquet as pq
import pytest
from tests.cli_helpers import assert_one_error, cli

from mathlora.app.cli import main
from mathlora.data.config import ConvertConfig, TokenizeConfig
from mathlora.data.convert import convert_file, iter_json_array
from mathlora.data.tokenize import build_example, tokenize_file
from mathlora.run_dir.tokens import IGNORE
from mathlora.errors import MathloraError
from mathlora.modeling.models import load_tokenizer
from mathlora.modeling.templates import render_prompt
from tests.conftest import requires_smollm2

RECORDS = [
    {"id": "a1", "problem": "计算 4204.22 + -2369.17 等于多少？", "solution": "4204.22 + -2369.17 = 1835.05"},
    {"id": "b2", "problem": "计算 5636.97 的平方根？", "solution": "√5636.97 = 75.07975985"},
    {"id": "c3", "problem": "What is 3/4 of 12?", "solution": "3/4 of 12 is 9, so \\boxed{9}."},
]


@pytest.fixture
def records_file(tmp_path):
    p = tmp_path / "records.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    return p


def test_convert_writes_the_recipe_format(tmp_path, records_file):
    out = tmp_path / "conv.json"
    assert convert_file(ConvertConfig(), records_file, out)["conversations"] == 3
    data = json.loads(out.read_text(encoding="utf-8"))  # a plain JSON array
    assert data[0] == {"id": "a1", "conversations": [
        {"from": "human", "value": render_prompt("alpaca", RECORDS[0]["problem"])},
        {"from": "gpt", "value": RECORDS[0]["solution"]}]}
    assert data[0]["conversations"][0]["value"].endswith("### Instruction:\n计算 4204.22 + -2369.17 等于多少？"
                                                          "\n\n### Response: ")
    assert list(iter_json_array(out)) == data  # streaming reader agrees with json.loads
    convert_file(ConvertConfig(format="messages"), records_file, tmp_path / "msg.json")
    msg = json.loads((tmp_path / "msg.json").read_text(encoding="utf-8"))
    assert msg[2]["messages"][1] == {"role": "assistant", "content": RECORDS[2]["solution"]}


def test_iter_json_array_reads_foreign_pretty_printed_arrays(tmp_path):
    p = tmp_path / "pretty.json"
    items = [{"id": "x", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}] * 2
    p.write_text(json.dumps(items, indent=2))
    assert list(iter_json_array(p)) == items


def _decode_learnable(tok, ids, labels):
    return tok.decode([t for t, l in zip(ids, labels) if l != IGNORE])


@pytest.mark.parametrize("model", ["tiny-random-llama",
                                   pytest.param("smollm2-135m-instruct", marks=[requires_smollm2])])
def test_only_response_and_eos_are_learnable(tmp_path, records_file, model):
    convert_file(ConvertConfig(), records_file, tmp_path / "conv.json")
    stats = tokenize_file(TokenizeConfig(), tmp_path / "conv.json", tmp_path / "tok", model=model, progress=False)
    assert stats["kept"] == 3 and stats["rejected"] == 0
    table = pq.read_table(tmp_path / "tok" / "tokens.parquet").to_pylist()
    tok = load_tokenizer(model)
    for rec, row in zip(RECORDS, table):
        assert row["id"] == rec["id"] and row["length"] == len(row["input_ids"]) == len(row["labels"])
        assert _decode_learnable(tok, row["input_ids"], row["labels"]) == rec["solution"] + tok.eos_token
        # the masked prefix is exactly the inference prompt's tokens
        n_prompt = sum(1 for l in row["labels"] if l == IGNORE)
        assert row["input_ids"][:n_prompt] == tok(render_prompt("alpaca", rec["problem"]))["input_ids"]
        assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    on_disk = json.loads((tmp_path / "tok" / "stats.json").read_text())
    assert sum(b["count"] for b in on_disk["length_histogram"]) == 3


def test_overflow_truncate_drop_and_reject():
    assert build_example([1, 2], [3, 4, 5], 9, None, 10, "truncate") == ([1, 2, 3, 4, 5, 9],
                                                                         [IGNORE, IGNORE, 3, 4, 5, 9], None)
    assert build_example([1, 2], [3, 4, 5], 9, None, 4, "truncate") == ([1, 2, 3, 4], [IGNORE, IGNORE, 3, 4],
                                                                        "truncated")
    assert build_example([1, 2], [3, 4, 5], 9, None, 4, "drop")[2] == "dropped"
    assert build_example([1, 2, 3, 4], [5], 9, None, 4, "truncate")[2].startswith("no learnable token")
    assert build_example([1, 1, 2], [5], 9, 1, 10, "truncate")[0] == [1, 2, 5, 9]  # no double BOS


def test_tokenize_counts_truncated_and_rejected(tmp_path, records_file):
    convert_file(ConvertConfig(), records_file, tmp_path / "conv.json")
    # byte tokenizer: the alpaca prompt alone is ~150 bytes; 160 truncates some, none fully masked
    stats = tokenize_file(TokenizeConfig(seq_length=160), tmp_path / "conv.json", tmp_path / "tok",
                          model="tiny-random-llama", progress=False)
    assert stats["truncated"] >= 1 and stats["max_length"] <= 160
    with pytest.raises(MathloraError, match="no record left"):
        tokenize_file(TokenizeConfig(seq_length=100), tmp_path / "conv.json", tmp_path / "tok2",
                      model="tiny-random-llama", progress=False)
    assert not (tmp_path / "tok2").exists()
    assert (tmp_path / "tok").exists()


def test_normalize_then_cli_chain_is_byte_identical_on_rerun(tmp_path, records_file):
    for run in ("a", "b"):
        d = tmp_path / run
        assert main(["normalize", "-i", str(records_file), "-o", str(d / "norm.jsonl")]) == 0
        assert main(["convert", "-i", str(d / "norm.jsonl"), "-o", str(d / "conv.json")]) == 0
        assert main(["tokenize", "-i", str(d / "conv.json"), "-o", str(d / "tok"), "--model",
                     "tiny-random-llama"]) == 0
    for name in ("norm.jsonl", "conv.json", "tok/tokens.parquet", "tok/stats.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    norm = [json.loads(x) for x in (tmp_path / "a" / "norm.jsonl").read_text(encoding="utf-8").splitlines()]
    assert norm[1]["solution"] == "√5636.97 = 75.08" and norm[0] == RECORDS[0]


def test_stage_inputs_of_the_wrong_kind_fail_cleanly(tmp_path, records_file, capsys):
    assert main(["tokenize", "-i", str(records_file), "-o", str(tmp_path / "t"), "--model",
                 "tiny-random-llama"]) == 2
    assert "conversations" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    conv = tmp_path / "conv.json"
    convert_file(ConvertConfig(), records_file, conv)
    assert main(["normalize", "-i", str(conv), "-o", str(tmp_path / "n.jsonl")]) == 2
    assert main(["convert", "-i", str(records_file), "-o", str(tmp_path / "c.json"), "--template", "nope"]) == 2
    assert "unknown template" in capsys.readouterr().err
    assert main(["normalize", "-i", str(records_file), "-o", str(tmp_path / "n.jsonl"), "--mode", "floor"]) == 2


@requires_smollm2
def test_template_shortcut_equals_full_prompt_tokenization():
    from mathlora.data.tokenize import PromptEncoder
    from mathlora.synth.competition import generate

    tok = load_tokenizer("smollm2-135m-instruct")
    enc = PromptEncoder(tok, "alpaca")
    assert enc.enabled
    problems = [r["problem"] for r in generate(600, seed=5)] + [" leading space", "trailing space ", "a\n", "x"]
    prompts = [render_prompt("alpaca", p) for p in problems] + ["not a template prompt"]
    assert enc.encode(prompts) == tok(prompts, add_special_tokens=True)["input_ids"]
    assert enc.enabled  # no mismatch was found on the checked records


def test_a_truncated_conversation_array_is_refused(tmp_path, capsys, conversations):
    lines = conversations.read_text(encoding="utf-8").splitlines()
    assert lines[-1] == "]"
    conversations.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # cut after a complete element
    rc, _, err = cli(capsys, "tokenize", "-i", conversations, "-o", tmp_path / "t", "--model", "tiny-random-llama")
    assert_one_error(rc, err, "truncated")
    assert not (tmp_path / "t").exists()
