"""Issue 32: a model card's usage snippet, run as written (the tiny model, greedy), gives the text ``mathlora ask``
gives for the same run; a calculator-style run's snippet carries the CalculatorLogitsProcessor lines and its
checkpoint cards say the solution style."""

from __future__ import annotations

import contextlib
import io
import json
import re

import yaml

from mathlora.app.config import load_config
from mathlora.export.model_card import CardFacts, card_text
from tests.cli_helpers import cli, tiny_adapter

PROBLEM = "计算 4204.22 + -2369.17 等于多少？"  # the cards' own example


def _run(tmp_path):
    from mathlora.modeling.models import load_model, load_tokenizer
    from mathlora.modeling.runtime import Runtime

    base = tmp_path / "tiny-base"
    load_model("tiny-random-llama", Runtime()).save_pretrained(str(base), safe_serialization=True)
    load_tokenizer("tiny-random-llama").save_pretrained(str(base))
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    cfg = load_config(None, {"model": str(base), "solution_style": "calculator", "template": "alpaca",
                             "eval": {"max_new_tokens": 12}})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    return run, tiny_adapter(run / "train" / "adapter")


def test_the_cards_snippet_gives_what_ask_gives_and_has_the_calculator(capsys, tmp_path):
    run, adapter = _run(tmp_path)
    facts = CardFacts.from_run(run)
    card = card_text(facts, "checkpoint", step=2)
    assert facts.solution_style == "calculator" and "solution_style: calculator" in card
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "CalculatorLogitsProcessor(tok)" in code and "max_new_tokens=12" in code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code.replace("path/to/this/folder", str(adapter)), {})
    rc, out, err = cli(capsys, "ask", "--run", run, "--json", PROBLEM)
    assert rc == 0, err
    asked = json.loads(out.splitlines()[-1])["completion"]
    assert printed.getvalue().rstrip("\n").strip() == asked.strip()
    assert asked.strip()  # something was generated, so the comparison means something


def test_the_trainers_checkpoint_cards_say_the_runs_solution_style(tmp_path):
    from mathlora.export.model_card import training_facts
    from mathlora.modeling.runtime import Runtime
    from mathlora.train.job import TrainJob

    run, _ = _run(tmp_path)
    cfg = load_config(run / "config.yaml")
    job = TrainJob(cfg.train, cfg.lora, cfg.seed, cfg.model, 64, Runtime.resolve(), run / "tokens")
    facts = training_facts(job, template="alpaca", steps=2)
    assert facts.solution_style == "calculator" and facts.recipe["solution style"] == "calculator"
    card = card_text(facts, "checkpoint", step=2)
    assert "solution_style: calculator" in card and "CalculatorLogitsProcessor" in card
