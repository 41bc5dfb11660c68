import json

import pytest

from mathlora.app.cli import main
from mathlora.run_dir.records import read_jsonl, write_jsonl


def test_predict_then_eval_math_cli(tmp_path, capsys):
    write_jsonl(tmp_path / "test.jsonl", [{"id": "a", "problem": "1 + 1", "solution": "1 + 1 = 2", "type": "add"},
                                          {"id": "b", "problem": "2 + 2", "solution": "2 + 2 = 4", "type": "add"}])
    rc = main(["predict", "--model", "tiny-random-llama", "--input", str(tmp_path / "test.jsonl"),
               "--output", str(tmp_path / "pred.jsonl"), "--max-new-tokens", "4", "--no-progress"])
    assert rc == 0 and "predict: 2 problems" in capsys.readouterr().out
    assert [x["id"] for x in read_jsonl(tmp_path / "pred.jsonl")] == ["a", "b"]
    rc = main(["eval", "math", "--predictions", str(tmp_path / "pred.jsonl")])
    out = capsys.readouterr().out
    assert rc == 0 and "math accuracy" in out and "add" in out
    assert json.loads((tmp_path / "pred.math.json").read_text())["count"] == 2


def test_eval_math_cli_with_baseline_prints_before_after(tmp_path, capsys):
    write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "completion": "2", "gold": "= 2", "type": "add"}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "a", "completion": "3", "gold": "= 2", "type": "add"}])
    rc = main(["eval", "math", "--predictions", str(tmp_path / "p.jsonl"), "--baseline", str(tmp_path / "b.jsonl"),
               "--output", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "before 0.0000 -> after 1.0000 (+1.0000; fixed 1, broken 0)" in out


def test_squad_cli_dump_samples_and_external_predictions(tmp_path, capsys):
    from mathlora.synth.squad import generate_squad

    (tmp_path / "s.json").write_text(json.dumps(generate_squad(3, seed=1)))
    assert main(["eval", "squad", "--data", str(tmp_path / "s.json"), "--dump-samples",
                 str(tmp_path / "samples.jsonl")]) == 0
    samples = list(read_jsonl(tmp_path / "samples.jsonl"))
    write_jsonl(tmp_path / "pred.jsonl", [{"id": s["id"], "prediction": s["answers"][0]} for s in samples])
    rc = main(["eval", "squad", "--data", str(tmp_path / "s.json"), "--predictions", str(tmp_path / "pred.jsonl"),
               "--output", str(tmp_path / "tuned.json")])
    assert rc == 0 and "F1 100.00  EM 100.00" in capsys.readouterr().out
    # A weaker model than the baseline fails the retention check: exit 1 and FAIL.
    write_jsonl(tmp_path / "bad.jsonl", [{"id": s["id"], "prediction": "no idea"} for s in samples])
    rc = main(["eval", "squad", "--data", str(tmp_path / "s.json"), "--predictions", str(tmp_path / "bad.jsonl"),
               "--output", str(tmp_path / "bad.json"), "--baseline", str(tmp_path / "tuned.json")])
    assert rc == 1 and "FAIL" in capsys.readouterr().out


def test_eval_params_cli_needs_an_adapter(tmp_path, capsys):
    rc = main(["eval", "params", "--model", "tiny-random-llama"])
    assert rc == 2 and capsys.readouterr().err.startswith("error: give --adapter")


@pytest.mark.parametrize("argv,message", [
    (["eval", "math", "--predictions", "{tmp}/missing.jsonl"], "predictions file not found"),
    (["eval", "math", "--predictions", "{tmp}"], "is a directory"),
    (["eval", "squad", "--data", "{tmp}/wrong.json", "--predictions", "{tmp}/x.jsonl", "--output", "{tmp}/r.json"],
     "not SQuAD v1.1 JSON"),
    (["eval", "squad", "--data", "{tmp}/wrong.json", "--predictions", "{tmp}/x.jsonl"], "give --output"),
    (["predict", "--model", "tiny-random-llama", "--input", "{tmp}/empty.jsonl", "--output", "{tmp}/o.jsonl"],
     "is empty"),
    (["predict", "--model", "tiny-random-llama", "--adapter", "{tmp}", "--input", "{tmp}/ok.jsonl",
      "--output", "{tmp}/o.jsonl"], "has no adapter_config.json"),
    (["eval", "math", "--predictions", "{tmp}/empty.jsonl", "eval.atol=-1"], "eval.atol"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "wrong.json").write_text(json.dumps([{"context": "c"}]))
    (tmp_path / "empty.jsonl").write_text("")
    write_jsonl(tmp_path / "ok.jsonl", [{"id": "1", "problem": "1 + 1"}])
    rc = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
