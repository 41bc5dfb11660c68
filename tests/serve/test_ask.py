"""``mathlora ask``: a problem from the arguments, a file or standard input -> the worked solution and the
final answer; the base model, --adapter or --run; the calculator on by default for calculator-style models."""

import io
import json
import time

import pytest
import yaml
from calculator_model import build_tokenizer, script_model
from tests.cli_helpers import assert_one_error, cli, tiny_adapter

from mathlora.app.config import load_config
from mathlora.errors import MathloraError

ADD = "计算 1.5 + 2.25 等于多少？"
MEAN = "求以下数据的平均值：[74, 13, 94]"


@pytest.fixture
def script(monkeypatch):
    """The calculator-style stub model in place of whatever model the command loads; records what it got."""
    tok = build_tokenizer()
    model = script_model(tok)
    loaded = []

    def load(spec, adapter, runtime, merge=True):
        loaded.append((spec, adapter))
        return model, tok

    monkeypatch.setattr("mathlora.evaluate.generation.load_inference_model", load)
    return loaded


def _run_dir(tmp_path, style="calculator", adapter=True):
    run = tmp_path / "myrun"
    (run / "train").mkdir(parents=True)
    cfg = load_config(None, {"model": "tiny-random-llama", "solution_style": style, "template": "alpaca"})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    if adapter:
        tiny_adapter(run / "train" / "adapter")
    return run


def test_ask_prints_the_worked_solution_and_the_calculators_answer(capsys, script):
    rc, out, err = cli(capsys, "ask", ADD)
    assert rc == 0, err
    assert out.splitlines() == ["<<1.5 + 2.25=3.75>>", "答案：3.75", "answer: 3.75  [calculator: 1 call(s), 0 refused]"]
    rc, out, _ = cli(capsys, "ask", "--no-calculator", ADD)
    assert rc == 0 and out.splitlines()[-1] == "answer: 7"          # the model's own arithmetic


def test_ask_reads_a_file_and_standard_input(capsys, script, tmp_path, monkeypatch):
    path = tmp_path / "q.txt"
    path.write_text(f"{ADD}\n\n" + json.dumps({"problem": MEAN}, ensure_ascii=False) + "\n", encoding="utf-8")
    rc, out, _ = cli(capsys, "ask", "--file", path, "--json")
    lines = [json.loads(x) for x in out.splitlines()]
    assert rc == 0 and [x["problem"] for x in lines] == [ADD, MEAN]
    assert lines[0]["answer"] == "3.75" and lines[1]["calculator_calls"] == 3
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{ADD}\n{MEAN}\n"))
    rc, out, _ = cli(capsys, "ask")
    assert rc == 0 and out.count("Q: ") == 2 and f"Q: {MEAN}" in out and "answer: 3.75" in out


def test_ask_a_run_folder_uses_its_adapter_template_and_style(capsys, script, tmp_path):
    run = _run_dir(tmp_path)
    rc, out, err = cli(capsys, "ask", "--run", run, ADD)
    assert rc == 0, err
    assert script[-1] == ("tiny-random-llama", str(run / "train" / "adapter"))
    assert "answer: 3.75  [calculator" in out
    run2 = _run_dir(tmp_path / "b", style="steps")      # not calculator style: the calculator is off by default
    rc, out, _ = cli(capsys, "ask", "--run", run2, ADD)
    assert rc == 0 and out.splitlines()[-1] == "answer: 7"


def test_ask_the_tiny_model_with_a_real_adapter(capsys, tmp_path):
    run = _run_dir(tmp_path)
    rc, out, err = cli(capsys, "ask", "--run", run, "--set", "eval.max_new_tokens=6", ADD, "1 + 1")
    assert rc == 0, err
    assert out.count("answer: ") == 2 and out.startswith(f"Q: {ADD}")


def test_ask_mistakes_are_one_line_errors(capsys, tmp_path, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty(""))
    assert_one_error(*cli(capsys, "ask")[::2], "give a problem")
    assert_one_error(*cli(capsys, "ask", "--run", tmp_path / "nope", ADD)[::2], "run folder not found")
    assert_one_error(*cli(capsys, "ask", "--run", tmp_path, ADD)[::2], "not a mathlora run folder")
    run = _run_dir(tmp_path, adapter=False)
    assert_one_error(*cli(capsys, "ask", "--run", run, ADD)[::2], "no trained adapter yet")
    assert_one_error(*cli(capsys, "ask", "--adapter", tmp_path / "none", ADD)[::2], "adapter folder not found")
    assert_one_error(*cli(capsys, "ask", "--file", tmp_path / "none.txt")[::2], "cannot read")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    assert_one_error(*cli(capsys, "ask", "--file", tmp_path / "empty.txt")[::2], "no problem to ask")
    assert_one_error(*cli(capsys, "ask", "--template", "nope", ADD)[::2], "unknown template")


def test_ask_interactive_answers_each_line_as_it_comes_with_one_load(capsys, script, monkeypatch):
    """Issue 32: ``mathlora ask --interactive`` (not ``-i``: that is ``--input`` on every command): a prompt loop
    on standard input, the model loaded once."""
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{ADD}\n\n{MEAN}\nquit\n{ADD}\n"))
    rc, out, err = cli(capsys, "ask", "--interactive")
    assert rc == 0, err
    assert out.count("answer: ") == 2 and "answer: 3.75" in out and "Q: " not in out  # stopped at quit
    assert len(script) == 1 and err.count("> ") == 4  # one load; a prompt before each line read
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{ADD}"))  # end of input ends it too
    rc, out, _ = cli(capsys, "ask", "--interactive", "--json")
    assert rc == 0 and json.loads(out.splitlines()[0])["answer"] == "3.75"
    assert_one_error(*cli(capsys, "ask", "--interactive", ADD)[::2], "--interactive reads its problems from standard input")


def test_ask_interactive_loads_the_model_while_the_first_problem_is_typed(capsys, script, monkeypatch):
    import threading

    class SlowTyping(io.StringIO):
        """Standard input whose first line comes only once the model has been loaded (or 10 s have passed)."""
        seen_load: list[bool] = []

        def readline(self, *a):
            deadline = time.monotonic() + 10
            while not script and time.monotonic() < deadline:
                time.sleep(0.01)
            self.seen_load.append(bool(script))
            return super().readline(*a)

    monkeypatch.setattr("sys.stdin", SlowTyping(f"{ADD}\n"))
    rc, out, err = cli(capsys, "ask", "--interactive")
    assert rc == 0, err
    assert SlowTyping.seen_load[0] and len(script) == 1 and "answer: 3.75" in out   # loaded before any input
    assert not [t for t in threading.enumerate() if t.name == "ask-preload"]


def test_ask_interactive_a_model_that_does_not_load_is_one_line_error(capsys, monkeypatch):
    def refuse(spec, adapter, runtime, merge=True):
        raise MathloraError("could not load model nope: broken")

    monkeypatch.setattr("mathlora.evaluate.generation.load_inference_model", refuse)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{ADD}\n"))
    assert_one_error(*cli(capsys, "ask", "--interactive")[::2], "could not load model nope")
