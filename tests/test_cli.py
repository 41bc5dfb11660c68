"""The command line as a whole: one vocabulary (every command described, --no-progress and --quiet everywhere,
every boolean with its --no-X form, choices in --help, no help naming a flag the command lacks), the old
spellings as deprecated aliases, ``mathlora config list | show | copy``, and the effective calculator."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest
import yaml
from tests.cli_helpers import SMALL, assert_one_error, cli, write_lines

from mathlora.app.cli import all_parsers, build_parser, command_parsers

sys.path.insert(0, str(Path(__file__).parent / "evaluate"))  # calculator_model: the calculator-style stub model

# flags of other tools that help texts name on purpose (vLLM's, torchrun's)
OTHER_TOOLS = {"--served-model-name", "--lora-modules", "--enable-lora", "--nproc-per-node"}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_every_command_is_described_and_has_no_progress_and_quiet():
    parsers = all_parsers(build_parser())
    assert {"run", "config list", "config show", "config copy", "ingest", "sample", "normalize", "rewrite",
            "convert", "tokenize", "label", "train", "merge", "predict", "eval math", "eval model", "eval squad",
            "eval params", "report", "publish", "export mindformers", "import mindspore-ckpt", "ask",
            "serve", "synth"} <= set(parsers)
    for words, parser in parsers.items():
        assert parser.description, f"mathlora {words} has no description"
    for words, parser in command_parsers(build_parser()).items():
        assert {"--no-progress", "--progress", "--quiet", "-q"} <= _options(parser), words


def test_every_boolean_flag_has_its_no_form_and_choices_are_shown():
    for words, parser in command_parsers(build_parser()).items():
        for action in parser._actions:
            if action.nargs == 0 and action.help is not argparse.SUPPRESS and not isinstance(
                    action, (argparse._HelpAction, argparse._VersionAction)):
                assert isinstance(action, argparse.BooleanOptionalAction), (words, action.option_strings)
                longs = [s for s in action.option_strings if s.startswith("--")]
                assert any(s.startswith("--no-") for s in longs), (words, longs)
    helps = {w: p.format_help() for w, p in command_parsers(build_parser()).items()}
    assert "--judge {openai,local,heuristic}" in helps["label"]
    assert "--mode {round,truncate}" in helps["normalize"]
    assert "--overflow {truncate,drop}" in helps["tokenize"]
    for words in ("predict", "eval squad", "ask"):
        assert "--backend {local,openai}" in helps[words], words
    assert "--scope {auto,first_line,full,final}" in helps["predict"]
    assert "--calculator, --no-calculator" in helps["predict"]


def test_no_help_names_a_flag_its_command_lacks(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # argparse wraps at hyphens: one line per paragraph
    for words, parser in all_parsers(build_parser()).items():
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", parser.format_help()))
        missing = named - _options(parser) - OTHER_TOOLS
        assert not missing, f"mathlora {words} --help names {sorted(missing)}"


def test_the_vocabulary_run_model_judge_model():
    run_dirs = {w: p for w, p in command_parsers(build_parser()).items() if "--run" in _options(p)}
    assert {"run", "train", "report", "publish", "export mindformers", "ask", "serve"} <= set(run_dirs)
    parsers = command_parsers(build_parser())
    assert "--judge-model" in _options(parsers["label"])
    for words in ("predict", "eval model", "eval squad", "eval params", "tokenize", "merge", "ask", "serve",
                  "export mindspore-ckpt", "import mindspore-ckpt"):
        assert {"--model", "-m"} <= _options(parsers[words]), words
    for words, parser in parsers.items():
        opts = _options(parser)
        assert ("--input" in opts) == ("-i" in opts) and ("--output" in opts) == ("-o" in opts), words


@pytest.mark.parametrize("argv, dest, value, old, new", [
    (["run", "--output", "R"], "cfg:run_dir", "R", "mathlora run --output", "--run"),
    (["run", "-o", "R"], "cfg:run_dir", "R", "mathlora run -o", "--run"),
    (["label", "-i", "a", "-o", "b", "--model", "J"], "cfg:label.model", "J", "mathlora label --model",
     "--judge-model"),
    (["predict", "-i", "a", "-o", "b", "--server-model", "S"], "cfg:eval.model", "S",
     "mathlora predict --server-model", "--served-model"),
    (["eval", "squad", "--server-model", "S"], "cfg:eval.model", "S", "mathlora eval squad --server-model",
     "--served-model"),
    (["ask", "--server-model", "S", "1+1"], "cfg:eval.model", "S", "mathlora ask --server-model", "--served-model"),
    (["import", "mindspore-ckpt", "--ckpt", "c", "--base", "B", "-o", "x"], "base", "B",
     "mathlora import mindspore-ckpt --base", "--model"),
])
def test_old_spellings_still_parse_with_one_deprecation_line(capsys, argv, dest, value, old, new):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert err.splitlines() == [f"warning: `{old}` is deprecated, use `{new}` (the old spelling goes in the "
                                "next release)"]


def test_new_spellings_parse_silently(capsys):
    for argv, dest, value in [(["run", "--run", "R"], "cfg:run_dir", "R"),
                              (["label", "-i", "a", "-o", "b", "--judge-model", "J"], "cfg:label.model", "J"),
                              (["predict", "-i", "a", "-o", "b", "--served-model", "S"], "cfg:eval.model", "S"),
                              (["predict", "-i", "a", "-o", "b", "--no-calculator"], "cfg:eval.calculator", False),
                              (["predict", "-i", "a", "-o", "b", "--calculator"], "cfg:eval.calculator", True),
                              (["train", "--no-resume"], "resume", False),
                              (["export", "mindformers", "--run", "r", "-o", "x", "--no-mindrecord"], "mindrecord",
                               False)]:
        assert getattr(build_parser().parse_args(argv), dest) == value, argv
    assert capsys.readouterr().err == ""


def test_run_output_and_report_positional_work_with_a_warning(capsys, tmp_path):
    run = tmp_path / "run"
    rc, out, err = cli(capsys, "run", "--no-progress", "-o", run, *SMALL)
    assert rc == 0, err
    assert "`mathlora run -o` is deprecated, use `--run`" in err and (run / "manifest.json").is_file()
    assert "no complete checkpoint" not in err  # a fresh training has nothing to resume: no warning
    assert "config: demo + overrides; run folder " in err and "calculator on" in err
    (run / "report.md").unlink()
    rc, out, err = cli(capsys, "report", run)
    assert rc == 0 and (run / "report.md").is_file()
    assert err.splitlines() == ["warning: `mathlora report RUN_DIR` is deprecated, use `mathlora report --run "
                                "RUN_DIR` (the old spelling goes in the next release)"]
    rc, out, err = cli(capsys, "report", "--run", run)
    assert rc == 0 and err == "" and out.startswith("report: ")
    # the README's rebuild leaves a report the next run takes as its own (issue 32: not "report.html is damaged")
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", run, *SMALL)
    assert rc == 0, err
    assert "damaged" not in out + err and "no complete checkpoint" not in out + err
    assert_one_error(*cli(capsys, "report")[::2], "give the run folder: mathlora report --run DIR")


def test_label_model_is_the_judge_for_one_more_release(capsys, tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [{"id": "a", "problem": "1 + 1 = ?", "solution": "2"}])
    rc, out, err = cli(capsys, "label", "-i", src, "-o", tmp_path / "o.jsonl", "--judge", "local",
                       "--model", "tiny-random-llama", "--quiet")
    assert rc == 0, err
    assert "(local:tiny-random-llama" in out and "use `--judge-model`" in err
    rc, out, err = cli(capsys, "label", "-i", src, "-o", tmp_path / "o2.jsonl", "--judge", "local",
                       "--judge-model", "tiny-random-llama", "--quiet")
    assert rc == 0 and "(local:tiny-random-llama" in out and "deprecated" not in err


def test_ask_run_refuses_a_config_it_would_not_read(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: tiny-random-llama\n", encoding="utf-8")
    assert_one_error(*cli(capsys, "ask", "--run", run, "--config", "demo", "1 + 1 = ?")[::2],
                     "--run reads the run's own config", "not --config demo", "--set KEY=VALUE")


@pytest.fixture
def calculator_model(monkeypatch):
    """The calculator-style stub model in place of whatever model predict loads."""
    from calculator_model import build_tokenizer, script_model

    tok = build_tokenizer()
    model = script_model(tok)
    monkeypatch.setattr("mathlora.evaluate.generation.load_inference_model",
                        lambda spec, adapter, runtime, merge=True: (model, tok))


def test_predict_no_calculator_beats_the_demo_config(capsys, tmp_path, calculator_model):
    import json

    src = write_lines(tmp_path / "t.jsonl", [{"id": "a", "problem": "计算 1.5 + 2.25 等于多少？", "solution": "3.75"},
                                              {"id": "b", "problem": "求以下数据的平均值：[74, 13, 94]",
                                               "solution": "60.33"}])
    calls = {}
    for flags in ([], ["--calculator"], ["--no-calculator"]):
        out_file = tmp_path / f"p{len(calls)}.jsonl"
        rc, out, err = cli(capsys, "predict", "-i", src, "-o", out_file, "--no-progress", *flags)
        assert rc == 0, err
        lines = [json.loads(x) for x in out_file.read_text(encoding="utf-8").splitlines()]
        calls[" ".join(flags)] = (out.splitlines()[0], sum(x.get("calculator_calls", 0) for x in lines),
                                  [x["answer"] for x in lines])
    # the demo config turns the calculator on; --no-calculator turns it off, and predict says which
    assert calls[""][0].startswith("predict: calculator on, solution_style calculator") and calls[""][1] == 4
    assert calls["--calculator"][1:] == calls[""][1:] and calls[""][2] == ["3.75", "60.33"]
    assert calls["--no-calculator"][0].startswith("predict: calculator off") and calls["--no-calculator"][1] == 0
    assert calls["--no-calculator"][2] == ["7", "7"]


def test_quiet_silences_the_libraries_and_restores_them(capsys, tmp_path):
    import warnings

    from mathlora.app.cliargs import library_output

    import transformers
    from transformers.utils import logging as tlog

    before = tlog.get_verbosity()
    with library_output(quiet=True, progress=True):
        assert tlog.get_verbosity() == tlog.ERROR and not tlog.is_progress_bar_enabled()
        with warnings.catch_warnings(record=True) as seen:
            warnings.warn("old", FutureWarning)
            warnings.warn_explicit("lib", UserWarning, "x.py", 1, module="peft.tuners")
            warnings.warn("ours", UserWarning)
        assert [str(w.message) for w in seen] == ["ours"]
    assert tlog.get_verbosity() == before and tlog.is_progress_bar_enabled()
    assert transformers  # imported before: set through its API, then put back


def test_config_list_show_copy(capsys, tmp_path):
    from mathlora.app.config import CONFIG_DIR, load_config

    rc, out, _ = cli(capsys, "config", "list")
    names = [line.split()[0] for line in out.splitlines()[:-1]]
    assert rc == 0 and names == ["demo", "demo_notool", "gpu_smollm2", "llama3_8b_lora", "defaults"]
    assert "(base: demo)" in out.splitlines()[1]

    mine = tmp_path / "my.yaml"
    mine.write_text("base: demo\ntrain: {lr: 0.002}\n", encoding="utf-8")
    rc, out, _ = cli(capsys, "config", "show", "--config", mine, "sample.total=50", "--set", "seed=9")
    assert rc == 0 and out.splitlines()[0] == f"# mathlora config: {mine} <- demo + overrides"
    shown = yaml.safe_load(out)
    assert (shown["train"]["lr"], shown["sample"]["total"], shown["seed"]) == (0.002, 50, 9)
    assert shown["solution_style"] == load_config("demo").solution_style and "base" not in shown
    full = tmp_path / "full.yaml"
    full.write_text(out, encoding="utf-8")  # what show prints is a config that loads as itself
    assert load_config(full) == load_config(mine, ["sample.total=50", "seed=9"])

    rc, out, err = cli(capsys, "config", "copy", "llama3_8b_lora", tmp_path / "l.yaml")
    assert rc == 0, err
    assert (tmp_path / "l.yaml").read_text() == (CONFIG_DIR / "llama3_8b_lora.yaml").read_text()
    mine_text = mine.read_text()
    assert_one_error(*cli(capsys, "config", "copy", "demo", mine)[::2], f"{mine} exists; --overwrite replaces it")
    assert mine.read_text() == mine_text  # nothing lost
    assert cli(capsys, "config", "copy", "demo", mine, "--overwrite")[0] == 0
    rc, _, err = cli(capsys, "config", "copy", "demo", mine, "--force")  # the old spelling, for one release
    assert rc == 0 and "use `--overwrite`" in err
    assert mine.read_text() == (CONFIG_DIR / "demo.yaml").read_text()
    assert cli(capsys, "config", "copy", "gpu_smollm2", tmp_path)[0] == 0  # a folder gets NAME.yaml
    assert load_config(tmp_path / "gpu_smollm2.yaml") == load_config("gpu_smollm2")  # its base: is a name
    assert cli(capsys, "config", "copy", "defaults", tmp_path / "d.yaml")[0] == 0
    assert load_config(tmp_path / "d.yaml") == load_config("defaults")
    assert_one_error(*cli(capsys, "config", "copy", "nope", tmp_path / "n.yaml")[::2], "no shipped config named")
    cycle = tmp_path / "c.yaml"
    cycle.write_text("base: c.yaml\n", encoding="utf-8")
    assert_one_error(*cli(capsys, "config", "show", "--config", cycle)[::2], "config base cycle")


def test_ingest_reads_the_formats_and_columns_its_flags_name(capsys, tmp_path):
    import json

    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "计算 1.5 + 2.25 等于多少？", "input": "", "output": "3.75"},
                                  {"instruction": "Add", "input": "2 + 2", "output": "4"}]), encoding="utf-8")
    rc, out, err = cli(capsys, "ingest", "-i", alpaca, "-o", tmp_path / "a.jsonl", "--format", "alpaca")
    assert rc == 0, err
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["problem"], r["solution"]) for r in rows] == [("计算 1.5 + 2.25 等于多少？", "3.75"), ("Add\n2 + 2", "4")]
    qa = write_lines(tmp_path / "qa.jsonl", [{"question": "1 + 1 = ?", "answer": "2"}])
    rc, out, err = cli(capsys, "ingest", "-i", qa, "-o", tmp_path / "q.jsonl", "--columns",  # its own rejects file:
                       "{problem: question, solution: answer}", "--rejects", tmp_path / "q_rejects.jsonl")  # issue 31 H1
    assert rc == 0, err
    assert json.loads((tmp_path / "q.jsonl").read_text(encoding="utf-8"))["solution"] == "2"
    rc, _, err = cli(capsys, "ingest", "-i", qa, "-o", tmp_path / "x.jsonl", "--columns", "question")
    assert rc == 2 and "is not a mapping of roles to columns" in err


@pytest.mark.parametrize("group,sub", [("config", "show"), ("eval", "math"), ("export", "mindformers"),
                                       ("import", "mindspore-ckpt")])
def test_a_command_group_alone_prints_its_help_and_exits_2(group, sub, capsys):
    rc, out, _ = cli(capsys, group)
    assert rc == 2 and f"mathlora {group}" in out and sub in out
