"""evaluate.math_eval: one model's math evaluation in one folder, as `mathlora eval model` and `mathlora run` do."""

import json

from mathlora.app.cli import main
from mathlora.evaluate.math_eval import math_baselines, math_outputs
from mathlora.run_dir.records import read_jsonl, write_jsonl

TEST = [{"id": "a", "problem": "1 + 1", "solution": "1 + 1 = 2", "type": "add"},
        {"id": "b", "problem": "2 + 2", "solution": "2 + 2 = 4", "type": "add"}]


def test_eval_model_scores_with_and_without_the_calculator_then_compares_with_a_baseline(tmp_path, capsys):
    write_jsonl(tmp_path / "test.jsonl", TEST)
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    args = ["eval", "model", "--model", "tiny-random-llama", "--input", str(tmp_path / "test.jsonl"),
            "--no-progress", "--calculator", "eval.max_new_tokens=4"]
    assert main([*args, "-o", str(base)]) == 0
    out = capsys.readouterr().out
    assert "math accuracy" in out and "without the calculator" in out
    assert all(p.is_file() for p in math_outputs(base, calculator=True))
    assert [x["id"] for x in read_jsonl(base / "math_nocalc_predictions.jsonl")] == ["a", "b"]
    assert main([*args, "-o", str(tuned), "--baseline", str(base)]) == 0
    assert "comparison" in json.loads((tuned / "math.json").read_text())
    assert "comparison" in json.loads((tuned / "math_nocalc.json").read_text())
    # without the calculator a folder holds one evaluation: the old _nocalc files go (replacing the folder's
    # evaluation is asked for with --overwrite, as every command's existing output is)
    assert main([a for a in args if a != "--calculator"] + ["eval.calculator=false", "-o", str(tuned)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([a for a in args if a != "--calculator"] + ["eval.calculator=false", "-o", str(tuned),
                                                             "--overwrite"]) == 0
    assert not list(tuned.glob("math_nocalc*"))


def test_the_baselines_follow_the_calculator_setting(tmp_path):
    assert math_baselines(None, calculator=True) == {}
    assert set(math_baselines(tmp_path, calculator=True)) == {"", "_nocalc"}
    assert math_baselines(tmp_path, calculator=False) == {"": tmp_path / "math_predictions.jsonl"}


def test_the_math_evaluation_loads_its_model_once_for_both_predictions(tmp_path, monkeypatch):
    """With and without the calculator: two predictions, one load (it was one load per prediction)."""
    from mathlora.evaluate import generation, math_eval
    from mathlora.evaluate.config import EvalConfig
    from mathlora.modeling.runtime import Runtime

    loads = []
    real_load, real_predict = generation.load_inference_model, math_eval.predict_file

    def counted_load(*args, **kwargs):
        loads.append(args[0])
        return real_load(*args, **kwargs)

    def predict_as_if_the_calculator_was_used(*args, **kwargs):  # else the second prediction is a copy
        out = real_predict(*args, **kwargs)
        return {**out, "calculator_calls": 1} if kwargs.get("calculator") else out

    monkeypatch.setattr(generation, "load_inference_model", counted_load)
    monkeypatch.setattr(math_eval, "predict_file", predict_as_if_the_calculator_was_used)
    write_jsonl(tmp_path / "test.jsonl", TEST)
    cfg = EvalConfig(calculator=True, max_new_tokens=2)
    math_eval.evaluate_math(cfg, Runtime.resolve(), "tiny-random-llama", None, tmp_path / "test.jsonl",
                            tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "math_nocalc_predictions.jsonl").is_file()
    assert loads == ["tiny-random-llama"]
