"""Input formats: alpaca, sharegpt, messages and mapped columns, from JSON, CSV, Parquet, Arrow and saved datasets;
a source with no usable record stops at ingest naming its columns; each format runs through `mathlora run`."""

from __future__ import annotations

import json
import re

import pytest
from tests.cli_helpers import SMALL, assert_one_error, cli
from tests.test_models import hub_answering_404  # noqa: F401 (a fixture)

from mathlora.data.config import DataConfig, IngestConfig
from mathlora.data.formats import Format, ReadOptions, choose_format, detect_format, to_record
from mathlora.data.sources import resolve_source, source_problems
from mathlora.data.ingest import ingest_file, record_id
from mathlora.errors import MathloraError


def problems(n: int) -> list[tuple[str, str]]:
    """Contest-style additions the heuristic judge and the rewrite recognise."""
    return [(f"计算 {100 + 7 * i}.25 + {3 + i}.5 等于多少？", f"{100 + 7 * i}.25 + {3 + i}.5 = {103 + 8 * i}.75")
            for i in range(n)]


def alpaca_rows(n: int) -> list[dict]:
    return [{"instruction": p, "input": "", "output": s, "system": "You are a calculator."} for p, s in problems(n)]


def sharegpt_rows(n: int) -> list[dict]:
    return [{"conversations": [{"from": "system", "value": "Be exact."}, {"from": "human", "value": p},
                               {"from": "gpt", "value": s}]} for p, s in problems(n)]


def read(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def ingest(tmp_path, src, **reading):
    return ingest_file(IngestConfig(), src, tmp_path / "records.jsonl", reading=ReadOptions(**reading))


# -- one row -------------------------------------------------------------------------------------------------

def test_alpaca_instruction_and_input_make_the_problem():
    fmt = choose_format(ReadOptions(format="alpaca"), ())
    rec, reason = to_record({"instruction": "Add.", "input": "2 + 3", "output": "5", "id": 9}, fmt)
    assert reason is None and rec == {"id": 9, "problem": "Add.\n2 + 3", "solution": "5"}
    rec, _ = to_record({"instruction": "1 + 1?", "input": "  ", "output": "2"}, fmt)
    assert rec["problem"] == "1 + 1?"  # an empty input adds nothing
    assert to_record({"instruction": "x"}, fmt) == (None, "missing output")
    assert to_record({"instruction": 3, "output": "x"}, fmt)[1].startswith("instruction is not a string")


def test_sharegpt_and_messages_take_the_first_exchange_and_keep_the_system_turn():
    share = Format("sharegpt", {"conversations": "conversations"})
    rec, reason = to_record({"conversations": [
        {"from": "system", "value": "Be exact."}, {"from": "human", "value": "1+1?"}, {"from": "gpt", "value": "2"},
        {"from": "human", "value": "and 2+2?"}, {"from": "gpt", "value": "4"}]}, share)
    assert reason is None and rec == {"problem": "1+1?", "solution": "2", "system": "Be exact.", "_later_turns": 2}
    msgs = Format("messages", {"messages": "chat"})  # mapped column, OpenAI-style content parts
    rec, _ = to_record({"chat": [{"role": "user", "content": [{"type": "text", "text": "3*3?"}]},
                                 {"role": "assistant", "content": "9"}], "level": 2}, msgs)
    assert rec == {"level": 2, "problem": "3*3?", "solution": "9", "_later_turns": 0}
    for turns, needle in [([{"role": "user", "content": "q"}], "no assistant turn"),
                          ([{"role": "assistant", "content": "a"}], "before the first user turn"),
                          ([{"role": "user", "content": "q"}, {"role": "user", "content": "q2"}], "not the assistant"),
                          ("text", "not a list of turns"), ([{"content": "q"}], "no from/role"),
                          ([{"role": "user", "content": None}, {"role": "assistant", "content": "a"}],
                           "chat[0], the first user turn, has no text")]:
        rec, reason = to_record({"chat": turns}, msgs)
        assert rec is None and needle in reason, reason


@pytest.mark.parametrize("columns, picked", [
    (["problem", "solution", "type"], ("problem_solution", {"problem": "problem", "solution": "solution"})),
    (["instruction", "input", "output"], ("alpaca", {"instruction": "instruction", "input": "input",
                                                     "output": "output"})),
    (["conversations", "id"], ("sharegpt", {"conversations": "conversations"})),
    (["messages"], ("messages", {"messages": "messages"})),
    (["question", "answer"], ("problem_solution", {"problem": "question", "solution": "answer"})),
    (["text", "label"], None)])
def test_auto_detects_the_format_from_the_columns(columns, picked):
    fmt = detect_format(columns)
    assert (fmt.name, fmt.columns) == picked if picked else fmt is None
    if fmt:
        assert fmt.detected and fmt.describe().startswith(fmt.name)


def test_columns_imply_the_format_and_bad_mappings_are_config_errors():
    assert choose_format(ReadOptions(columns={"problem": "q", "solution": "a"}), ["q", "a"]).columns == \
        {"problem": "q", "solution": "a"}
    assert choose_format(ReadOptions(columns={"output": "response"}), []).name == "alpaca"
    with pytest.raises(MathloraError, match="data.format is sharegpt"):
        choose_format(ReadOptions(format="sharegpt", columns={"problem": "q"}), [])
    with pytest.raises(ValueError, match="mixes the roles"):
        DataConfig(columns={"problem": "q", "output": "a"})
    with pytest.raises(ValueError, match="unknown key 'answer'"):
        DataConfig(columns={"answer": "a"})
    assert DataConfig(train="x", columns={"problem": "q"}).reading("test").split == "test"


def test_sources_are_told_apart(tmp_path):
    (tmp_path / "t.json").write_text("[]")
    assert resolve_source(str(tmp_path / "t.json")).kind == "json"
    assert resolve_source("openai/gsm8k").kind == "hub"
    with pytest.raises(MathloraError, match="data.train file not found"):
        resolve_source("data/missing.jsonl", "data.train")  # a data file's name is never a Hub dataset
    with pytest.raises(MathloraError, match="is a directory"):
        resolve_source(str(tmp_path), "data.train")


# -- files ---------------------------------------------------------------------------------------------------

def test_alpaca_json_array_ingests_and_says_which_format(tmp_path):
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps(alpaca_rows(5) + [{"instruction": "no answer"}], ensure_ascii=False), encoding="utf-8")
    counts = ingest(tmp_path, src)
    assert (counts["read"], counts["kept"], counts["rejected"]) == (6, 5, 1)
    assert counts["format"] == "alpaca (detected)"
    out = read(tmp_path / "records.jsonl")
    p, s = problems(1)[0]
    assert out[0] == {"id": record_id(p, s), "system": "You are a calculator.", "problem": p, "solution": s}
    assert read(tmp_path / "rejects.jsonl") == [{"line": 6, "reason": "missing output",
                                                "raw": {"instruction": "no answer"}}]


def test_sharegpt_jsonl_counts_multi_turn_records(tmp_path):
    rows = sharegpt_rows(3)
    rows[1]["conversations"] += [{"from": "human", "value": "again?"}, {"from": "gpt", "value": "yes"}]
    src = tmp_path / "share.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "not json\n", encoding="utf-8")
    counts = ingest(tmp_path, src)
    assert (counts["kept"], counts["multi_turn"], counts["format"]) == (3, 1, "sharegpt (detected)")
    out = read(tmp_path / "records.jsonl")
    assert [r["problem"] for r in out] == [p for p, _ in problems(3)] and out[0]["system"] == "Be exact."
    assert "conversations" not in out[0] and "_later_turns" not in out[0]
    assert read(tmp_path / "rejects.jsonl")[0]["line"] == 4  # the per-line report stays


def test_parquet_csv_and_arrow_with_other_column_names(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"question": [p for p, _ in problems(4)] + [None], "answer": [s for _, s in problems(4)] + ["x"],
            "level": [1, 2, 3, 4, 5]}
    table = pa.table(rows)
    mapping = {"problem": "question", "solution": "answer"}
    pq.write_table(table, tmp_path / "train.data")  # found by its PAR1 magic under any name
    counts = ingest(tmp_path, tmp_path / "train.data", columns=mapping)
    assert (counts["kept"], counts["rejected"], counts["format"]) == (4, 1, "problem_solution (question->problem, "
                                                                 "answer->solution)")
    out = read(tmp_path / "records.jsonl")
    assert out[0] == {"id": record_id(*problems(1)[0]), "level": 1, "problem": problems(1)[0][0],
                      "solution": problems(1)[0][1]}
    assert read(tmp_path / "rejects.jsonl")[0]["row"] == 5
    first = (tmp_path / "records.jsonl").read_bytes()

    table.to_pandas().to_csv(tmp_path / "train.csv", index=False)
    counts = ingest(tmp_path, tmp_path / "train.csv")  # auto: question/answer; CSV cells are text
    assert counts["kept"] == 4 and counts["columns"] == mapping
    assert [r["level"] for r in read(tmp_path / "records.jsonl")] == ["1", "2", "3", "4"]

    ds = datasets.Dataset.from_dict(rows)
    ds.save_to_disk(str(tmp_path / "saved"))
    assert ingest(tmp_path, tmp_path / "saved", columns=mapping)["kept"] == 4
    assert (tmp_path / "records.jsonl").read_bytes() == first  # same rows, same records, whatever the container
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    assert resolve_source(str(arrow)).builder == "arrow"
    assert ingest(tmp_path, arrow, columns=mapping)["kept"] == 4
    assert (tmp_path / "records.jsonl").read_bytes() == first
    assert set(source_problems(resolve_source(str(arrow)), ReadOptions(columns=mapping))) == \
        {p for p, _ in problems(4)}


def test_a_damaged_table_is_one_line(tmp_path, capsys):
    bad = tmp_path / "train.parquet"
    bad.write_bytes(b"PAR1 not really")
    rc, _, err = cli(capsys, "ingest", "-i", bad, "-o", tmp_path / "records.jsonl")
    assert_one_error(rc, err, "train.parquet", "parquet")


def test_a_csv_that_is_not_utf8_is_one_line_and_nothing_else(tmp_path, capsys):
    """A GBK export (Excel's default for Chinese): our one line says what to do; datasets' own log line of the
    same failure is held back."""
    import logging

    bad = tmp_path / "gbk.csv"  # past the header's read: the bad line is found by datasets, while streaming
    bad.write_bytes("problem,solution\n".encode() + "".join(f"{i} + 1,{i + 1}\n" for i in range(2000)).encode()
                    + "计算 1 + 1 等于多少？,2\n".encode("gbk"))
    seen: list = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger = logging.getLogger("datasets.packaged_modules.csv.csv")
    logger.addHandler(handler)
    try:
        rc, _, err = cli(capsys, "ingest", "-i", bad, "-o", tmp_path / "records.jsonl")
    finally:
        logger.removeHandler(handler)
    assert_one_error(rc, err, "gbk.csv: could not read it from its first rows (", "not UTF-8 text: save it as UTF-8")
    assert seen == []
    (tmp_path / "gbk_header.csv").write_bytes("题目,答案\n1+1,2\n".encode("gbk"))  # preflight reads no names of U+FFFD
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", tmp_path / "run", *SMALL,
                       f"data.train={tmp_path / 'gbk_header.csv'}", "data.columns={problem: 题目, solution: 答案}")
    assert_one_error(rc, err, "gbk_header.csv: could not read it as csv", "not UTF-8 text: save it as UTF-8")
    assert "[ 1/" not in out  # before the first stage


def test_no_usable_record_stops_at_ingest_naming_the_columns(tmp_path, capsys):
    src = tmp_path / "qa.jsonl"
    src.write_text("".join(json.dumps({"q": p, "a": s}, ensure_ascii=False) + "\n" for p, s in problems(3)),
                   encoding="utf-8")
    rc, out, err = cli(capsys, "ingest", "-i", src, "-o", tmp_path / "records.jsonl")
    line = assert_one_error(rc, err, "no usable record", "3 read", "its columns are a, q", "data.columns",
                            "data.format")
    assert "rejects.jsonl" in line and len(read(tmp_path / "rejects.jsonl")) == 3  # the reasons are written
    assert not (tmp_path / "records.jsonl").exists()  # the output is not
    with pytest.raises(MathloraError, match=r"format alpaca \(prompt->instruction, a->output\) needs prompt: map them"):
        ingest(tmp_path, src, columns={"instruction": "prompt", "output": "a"})
    (tmp_path / "squad_like.json").write_text(json.dumps({"version": 1, "data": [{"problem": "1", "solution": "2"}]},
                                                         indent=2), encoding="utf-8")
    with pytest.raises(MathloraError, match=r"no usable record: the file is one JSON object with the keys version, "
                                            r"data, not rows; give a JSON array or JSON lines of records \(the rows "
                                            r"may be its 'data' list: jq '.data'"):
        ingest(tmp_path, tmp_path / "squad_like.json")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(MathloraError, match="no records"):
        ingest(tmp_path, tmp_path / "empty.jsonl")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"problem": pa.array([], pa.string())}), tmp_path / "empty.parquet")
    (tmp_path / "header.csv").write_text("problem,solution\n", encoding="utf-8")
    for name in ("empty.parquet", "header.csv"):  # datasets cannot stream a Parquet file of no rows: not its error
        with pytest.raises(MathloraError, match=rf"^{re.escape(str(tmp_path / name))}: no records \(the table has no "
                                                r"rows\)$"):
            ingest(tmp_path, tmp_path / name)


def test_hub_dataset_offline_is_one_line(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets", raising=False)
    with pytest.raises(MathloraError, match=r"Hub dataset 'mathlora-tests/none', split 'test': not in the local "
                                            r"cache and HF_HUB_OFFLINE is set") as e:
        ingest(tmp_path, "mathlora-tests/none", split="test")
    assert "\n" not in str(e.value)


# -- mathlora run ----------------------------------------------------------------------------------------------

def _run(capsys, tmp_path, data, *extra):
    run = tmp_path / "run"
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", run, *SMALL, f"data.train={data}", *extra)
    assert rc == 0, err
    manifest = json.loads((run / "manifest.json").read_text())
    return run, out, manifest["stages"]


def test_run_on_an_alpaca_json(tmp_path, capsys):
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps(alpaca_rows(40), ensure_ascii=False), encoding="utf-8")
    run, out, stages = _run(capsys, tmp_path, src)
    assert stages["ingest"]["counts"]["format"] == "alpaca (detected)" and stages["ingest"]["counts"]["kept"] == 40
    assert "format=alpaca (detected)" in out
    assert (run / "train/adapter/adapter_config.json").exists() and (run / "report.html").exists()
    # the synthetic test set is disjoint from the user's problems, read in their format
    test = {r["problem"] for r in read(run / "test_records.jsonl")}
    assert not test & {p for p, _ in problems(40)}


def test_run_on_a_sharegpt_json(tmp_path, capsys):
    src = tmp_path / "sharegpt.json"
    src.write_text(json.dumps(sharegpt_rows(40), ensure_ascii=False), encoding="utf-8")
    run, _, stages = _run(capsys, tmp_path, src, "data.format=sharegpt")
    assert stages["ingest"]["counts"]["format"] == "sharegpt" and stages["train"]["counts"]  # as set
    answers = {s.rsplit(" = ", 1)[1] for _, s in problems(40)}  # the demo trains on calculator-style rewrites
    conversations = json.loads((run / "conversations.json").read_text(encoding="utf-8"))
    assert conversations and all(c["conversations"][1]["value"].rsplit("：", 1)[1] in answers for c in conversations)


def test_run_on_a_parquet_with_other_column_names(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "train.parquet"
    pq.write_table(pa.table({"q": [p for p, _ in problems(40)], "a": [s for _, s in problems(40)]}), src)
    # a mapping the file lacks is caught before the first stage
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", tmp_path / "refused", *SMALL, f"data.train={src}",
                       "data.columns.problem=question", "data.columns.solution=a")
    assert_one_error(rc, err, "data.train", "its columns are a, q", "needs question")
    assert "[ 1/" not in out
    run, out, stages = _run(capsys, tmp_path, src, "data.columns={problem: q, solution: a}")
    assert stages["ingest"]["counts"]["kept"] == 40 and stages["ingest"]["counts"]["columns"] == \
        {"problem": "q", "solution": "a"}
    assert (run / "train/adapter/adapter_config.json").exists()
    # the mapping is part of ingest's fingerprint: another mapping ingests again
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", run, *SMALL, f"data.train={src}",
                       "data.columns={problem: a, solution: q}", "--stop-after", "ingest")
    assert rc == 0, err
    assert "ingest: done" in out and read(run / "records.jsonl")[0]["problem"] == problems(1)[0][1]


def test_run_stops_at_ingest_when_no_record_is_usable(tmp_path, capsys):
    src = tmp_path / "qa.json"  # a JSON array: its columns are not read before the run (not cheap), ingest says
    src.write_text(json.dumps([{"q": p, "a": s} for p, s in problems(30)], ensure_ascii=False), encoding="utf-8")
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", tmp_path / "run", *SMALL, f"data.train={src}")
    assert_one_error(rc, err, "no usable record", "30 read", "its columns are a, q", "data.columns")
    assert "ingest ..." in out and "label" not in out  # not stages later, in sample
    assert len(read(tmp_path / "run" / "rejects.jsonl")) == 30


def test_preflight_reads_a_csv_header_and_a_saved_dataset_split(tmp_path, capsys):
    import datasets

    (tmp_path / "train.tsv").write_text("text\tlabel\n1+1\t2\n", encoding="utf-8")
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", tmp_path / "run", *SMALL,
                       f"data.train={tmp_path / 'train.tsv'}")
    assert_one_error(rc, err, "data.train", "its columns are label, text", "data.format")
    assert "[ 1/" not in out
    assert ingest(tmp_path, tmp_path / "train.tsv", columns={"problem": "text", "solution": "label"})["kept"] == 1
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"problem": ["1+1"], "solution": ["2"]}),
                          "dev": datasets.Dataset.from_dict({"problem": ["2+2"], "solution": ["4"]})}
                         ).save_to_disk(str(tmp_path / "saved"))
    assert ingest(tmp_path, tmp_path / "saved", split="dev")["kept"] == 1
    assert read(tmp_path / "records.jsonl")[0]["problem"] == "2+2"
    with pytest.raises(MathloraError, match=r"holds the splits train, dev, not 'test'; set data.train_split"):
        ingest(tmp_path, tmp_path / "saved", split="test")


def test_a_hub_dataset_is_loaded_with_its_subset_split_and_revision(tmp_path, monkeypatch):
    """The Hub path up to ``datasets.load_dataset`` (which needs the network): the name, subset, split and revision
    reach it as configured, and its rows ingest like a file's (GSM8K's question/answer, detected)."""
    import datasets

    calls = []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return datasets.Dataset.from_dict({"question": [p for p, _ in problems(3)],
                                           "answer": [s for _, s in problems(3)]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    reading = DataConfig(test="openai/gsm8k", subset="main", revision="v1", test_split="test[:3]").reading("test")
    counts = ingest_file(IngestConfig(), "openai/gsm8k", tmp_path / "records.jsonl", reading=reading)
    assert calls == [("openai/gsm8k", "main", {"split": "test[:3]", "revision": "v1"})]
    assert (counts["kept"], counts["format"], counts["columns"]) == (
        3, "problem_solution (question->problem, answer->solution; detected)",
        {"problem": "question", "solution": "answer"})
    assert reading.settings(hub=True) == {"format": "auto", "columns": {}, "subset": "main", "split": "test[:3]",
                                          "revision": "v1"}


def test_the_test_file_is_read_with_the_same_format_and_columns(tmp_path, capsys):
    rows = [{"q": p, "a": s} for p, s in problems(40)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:30]), encoding="utf-8")
    test.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[30:]), encoding="utf-8")
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", tmp_path / "run", *SMALL, f"data.train={train}",
                       f"data.test={test}", "data.columns={problem: q, solution: a}", "--stop-after", "ingest_test")
    assert rc == 0, err
    assert [r["problem"] for r in read(tmp_path / "run" / "test_records.jsonl")] == [p for p, _ in problems(40)[30:]]


def test_a_hub_dataset_the_hub_does_not_have_stops_before_the_run(hub_answering_404, tmp_path, capsys):
    from mathlora.data.sources import check_source

    with pytest.raises(MathloraError, match=r"data.train 'org/typo': no such local file, and no such dataset on the "
                                            r"Hugging Face Hub"):
        check_source("org/typo", ReadOptions(), "data.train")
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", tmp_path / "run", *SMALL, "data.train=org/typo")
    assert_one_error(rc, err, "data.train 'org/typo'", "no such dataset")
    assert "[ 1/" not in out
