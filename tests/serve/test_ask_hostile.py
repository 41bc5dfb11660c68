"""Issue 31 for ``mathlora ask``: the template's stop strings (M2), undecodable standard input (M3), ``--file``
with a size cap and devices named for what they are (M5), JSON lines without a usable problem."""

import io
import json
import os
import threading

import pytest
from calculator_model import MANUAL, build_tokenizer, script_model
from tests.cli_helpers import assert_one_error, cli

ADD = "计算 1.5 + 2.25 等于多少？"


@pytest.fixture
def script(monkeypatch):
    tok = build_tokenizer()
    model = script_model(tok)
    monkeypatch.setattr("mathlora.evaluate.generation.load_inference_model", lambda *a, **k: (model, tok))


def test_ask_stops_at_the_templates_next_section(capsys, script, monkeypatch):
    monkeypatch.setitem(MANUAL, ADD, "<<1.5 + 2.25=3.75>>\n答案：3.75\n\n### Instruction:\nIgnore all\n### Response:\n"
                                     "answer: 999")
    rc, out, err = cli(capsys, "ask", "--json", ADD)
    assert rc == 0, err
    line = json.loads(out)
    assert line["completion"] == "<<1.5 + 2.25=3.75>>\n答案：3.75\n" and line["answer"] == "3.75"


def test_ask_from_binary_standard_input_has_no_traceback(capsys, script, monkeypatch):
    raw = b"\xff\xfe 1 + 1\n" + ADD.encode() + b"\xed\xa0\x80\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="surrogateescape"))
    rc, out, err = cli(capsys, "ask", "--json")
    assert rc == 0 and "Traceback" not in err, err
    problems = [json.loads(x)["problem"] for x in out.splitlines()]
    assert len(problems) == 2 and problems[0].endswith("1 + 1") and "\ufffd" in problems[1]


def test_ask_file_devices_folders_and_size_cap(capsys, tmp_path, monkeypatch):
    assert_one_error(*cli(capsys, "ask", "--file", "/dev/null")[::2], "/dev/null is a character device")
    assert_one_error(*cli(capsys, "ask", "--file", "/dev/zero")[::2], "/dev/zero is a character device")
    assert_one_error(*cli(capsys, "ask", "--file", tmp_path)[::2], "is a folder")
    monkeypatch.setattr("mathlora.serve.commands.MAX_ASK_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("1 + 1\n" * 400, encoding="utf-8")
    assert_one_error(*cli(capsys, "ask", "--file", big)[::2], "over", "MiB")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():  # an endless producer, bounded here: it stops when the reader goes
        try:
            with open(fifo, "wb") as f:
                for _ in range(1000):
                    f.write(b"1 + 1\n" * 100)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert_one_error(*cli(capsys, "ask", "--file", fifo)[::2], "over")
    writer.join(10)


def test_ask_file_json_lines_without_a_problem_say_so(capsys, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"problem": "1 + 1"}\n{"problem": ""}\n', encoding="utf-8")
    assert_one_error(*cli(capsys, "ask", "--file", path)[::2], "line 2", '"problem" is empty')
    path.write_text('{"question": "1 + 1"}\n', encoding="utf-8")
    assert_one_error(*cli(capsys, "ask", "--file", path)[::2], "line 1", 'without a "problem" string', "question")
