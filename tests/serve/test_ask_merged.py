"""``ask --run`` loads the run's ``merged/`` folder instead of base + adapter (no peft) when it is the same model:
the same answers; a stale merge (the adapter written after it) or ``--adapter`` goes the old way. Run as the
process's command, ``ask`` freezes the heap before the interpreter exits (a faster exit)."""

import json
import os

import pytest
import yaml
from tests.cli_helpers import cli, tiny_adapter

from mathlora.app.config import load_config
from mathlora.modeling.runtime import Runtime

PROBLEM = "计算 1.5 + 2.25 等于多少？"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny-model run with a non-zero (so the merge changes the weights) adapter and its merged folder."""
    import torch
    from safetensors.torch import load_file, save_file

    from mathlora.train.merge import merge_adapter

    run = tmp_path_factory.mktemp("asks") / "myrun"
    (run / "train").mkdir(parents=True)
    cfg = load_config(None, {"model": "tiny-random-llama", "solution_style": "calculator", "template": "alpaca"})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    adapter = tiny_adapter(run / "train" / "adapter")
    weights = adapter / "adapter_model.safetensors"
    state = load_file(str(weights))
    gen = torch.Generator().manual_seed(3)
    save_file({k: (torch.randn(v.shape, generator=gen) * 0.5 if "lora_B" in k else v) for k, v in state.items()},
              str(weights))
    merge_adapter(Runtime(device="cpu", precision="fp32"), "tiny-random-llama", adapter, run / "merged",
                  template="alpaca")
    return run


def _ask(capsys, *args):
    rc, out, err = cli(capsys, "ask", "--json", "--max-new-tokens", "12", *args, PROBLEM)
    assert rc == 0, err
    return json.loads(out)


def test_ask_loads_the_merged_folder_without_peft_and_answers_the_same(capsys, run, monkeypatch):
    monkeypatch.setenv("MATHLORA_DEVICE", "cpu")
    attached = []
    import mathlora.evaluate.generation as generation

    attach = generation.attach_adapter
    monkeypatch.setattr(generation, "attach_adapter", lambda *a, **k: attached.append(a) or attach(*a, **k))
    fast = _ask(capsys, "--run", run)
    assert attached == []                                          # merged folder: no adapter attached
    slow = _ask(capsys, "--run", run, "--adapter", run / "train" / "adapter")   # --adapter: base + adapter
    assert len(attached) == 1
    assert fast == slow
    plain = _ask(capsys, "--model", "tiny-random-llama", "--template", "alpaca")
    assert plain["completion"] != fast["completion"]               # the adapter changes the answer: it was applied


def test_in_bf16_ask_loads_the_merged_folder_the_evaluation_scored(capsys, run, monkeypatch):
    """In bf16 the merged folder (an fp32 merge) is what eval_tuned_math loads and scores; ask answers as it."""
    from mathlora.evaluate.config import EvalConfig
    from mathlora.evaluate.predict import predict_file

    monkeypatch.setenv("MATHLORA_DEVICE", "cpu")
    monkeypatch.setenv("MATHLORA_PRECISION", "bf16")
    attached = []
    import mathlora.evaluate.generation as generation

    attach = generation.attach_adapter
    monkeypatch.setattr(generation, "attach_adapter", lambda *a, **k: attached.append(a) or attach(*a, **k))
    answer = _ask(capsys, "--run", run)
    assert attached == []
    test = run.parent / "bf16_test.jsonl"
    test.write_text(json.dumps({"id": "0", "problem": PROBLEM, "solution": "3.75"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    preds = run.parent / "bf16_preds.jsonl"
    predict_file(EvalConfig(max_new_tokens=12), Runtime(device="cpu", precision="bf16"), str(run / "merged"), None,
                 test, preds, template="alpaca", solution_style="calculator", calculator=True)
    assert json.loads(preds.read_text(encoding="utf-8").splitlines()[0])["completion"] == answer["completion"]


def test_a_merge_older_than_the_adapter_is_not_used(capsys, run, monkeypatch):
    monkeypatch.setenv("MATHLORA_DEVICE", "cpu")
    attached = []
    import mathlora.evaluate.generation as generation

    attach = generation.attach_adapter
    monkeypatch.setattr(generation, "attach_adapter", lambda *a, **k: attached.append(a) or attach(*a, **k))
    config = run / "train" / "adapter" / "adapter_config.json"
    later = (run / "merged" / "config.json").stat().st_mtime + 60
    before = config.stat()
    os.utime(config, (later, later))
    try:
        _ask(capsys, "--run", run)
    finally:
        os.utime(config, (before.st_atime, before.st_mtime))
    assert len(attached) == 1


def test_ask_as_the_process_command_freezes_the_heap_before_exit_and_in_process_calls_do_not(capsys):
    import gc
    import subprocess
    import sys

    code = ("import gc, sys; from mathlora.app.cli import main; sys.argv = ['mathlora', 'ask', '--model', "
            "'tiny-random-llama', '--max-new-tokens', '2', '1 + 1']; rc = main(); "
            "print('frozen', gc.get_freeze_count(), rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.splitlines()[-1].startswith("frozen ") and done.stdout.splitlines()[-1].endswith(" 0")
    assert int(done.stdout.splitlines()[-1].split()[1]) > 0, done.stderr[-2000:]
    before = gc.get_freeze_count()
    rc, _, _ = cli(capsys, "ask", "--model", "tiny-random-llama", "--max-new-tokens", "2", "1 + 1")
    assert rc == 0 and gc.get_freeze_count() == before
