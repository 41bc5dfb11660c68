"""``eval.backend: openai``: predict and eval squad through a loopback completions server, retries included."""

import json
import re

import pytest
from completions_stub import CompletionsStub

from mathlora.app.cli import main
from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.math_grading import grade_file
from mathlora.evaluate.predict import predict_file
from mathlora.evaluate.squad import evaluate_squad, load_samples
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.modeling.openai_client import EndpointConfig

FAST = dict(backend="openai", model="tuned", timeout=2.0, retry_base_delay=0.002, retry_max_delay=0.01)


def eval_config(**flat) -> EvalConfig:
    """An EvalConfig from one flat set of settings (the endpoint's go into ``endpoint``)."""
    endpoint = {k: flat.pop(k) for k in list(flat) if k in EndpointConfig.model_fields}
    return EvalConfig(**flat, endpoint=endpoint)
GOLD = {f"p{i}": (f"计算 {i} + {2 * i}", f"{i} + {2 * i} = {3 * i}", str(3 * i)) for i in range(30)}


def _math_answer(prompt: str) -> str:
    problem = re.search(r"### Instruction:\n(.*?)\n", prompt).group(1)
    for _id, (p, _sol, value) in GOLD.items():
        if p == problem:
            return f"{value}\n### extra"
    return "?"


def _write_test_set(path):
    write_jsonl(path, [{"id": k, "problem": p, "solution": s, "type": "addsub"} for k, (p, s, _) in GOLD.items()])


def test_predict_through_a_flaky_server_then_grade(tmp_path, monkeypatch):
    monkeypatch.setenv("EVAL_KEY", "sk-eval-1")
    _write_test_set(tmp_path / "test.jsonl")
    cfg = eval_config(**FAST, concurrency=8, max_retries=8, max_new_tokens=16, api_key_env="EVAL_KEY")
    with CompletionsStub(_math_answer, fault_rate=0.3, seed=3) as stub:
        summary = predict_file(cfg.model_copy(update={"endpoint": cfg.endpoint.model_copy(update={"base_url": stub.base_url})}), None, "base-model", None,
                               tmp_path / "test.jsonl", tmp_path / "pred.jsonl", template="alpaca", progress=False)
    assert set(stub.faults_served) == {"500", "429"}
    assert all(b["model"] == "tuned" and b["temperature"] == 0 and b["max_tokens"] == 16 and "min_tokens" not in b
               and b["stop"] == ["\n### "] for b in stub.bodies)  # the template's next section ends a completion
    assert stub.auth_headers == {"Bearer sk-eval-1"}
    lines = list(read_jsonl(tmp_path / "pred.jsonl"))
    assert [x["id"] for x in lines] == list(GOLD)  # input order whatever the completion order
    assert all(x["server"] == stub.base_url and x["server_model"] == "tuned" and x["backend"] == "openai"
               for x in lines)
    assert all(x["answer"] == GOLD[x["id"]][2] and x["stopped"] for x in lines)
    assert all(x["completion"] == GOLD[x["id"]][2] for x in lines)  # cut where the stub wrote on past the stop
    assert summary["server_model"] == "tuned" and summary["count"] == 30
    assert summary["generated_tokens"] == sum(x["generated_tokens"] for x in lines) > 0
    report = grade_file(EvalConfig(), tmp_path / "pred.jsonl", tmp_path / "math.json")
    assert report["accuracy"] == 1.0 and report["count"] == 30
    for f in tmp_path.iterdir():
        assert b"sk-eval-1" not in f.read_bytes()


def test_squad_through_the_server_requires_one_new_token(tmp_path):
    from mathlora.synth.squad import generate_squad

    (tmp_path / "squad.json").write_text(json.dumps(generate_squad(6, seed=0)), encoding="utf-8")
    gold = {s["prompt"]: s["answers"][0] for s in load_samples(tmp_path / "squad.json")}
    for reject in (False, True):
        with CompletionsStub(lambda p: " " + gold[p] + "\nmore", fault_rate=0.3, reject_min_tokens=reject,
                             seed=5) as stub:
            cfg = eval_config(**FAST, base_url=stub.base_url, max_retries=8, squad_max_new_tokens=20)
            r = evaluate_squad(cfg, None, "base", None, tmp_path / "squad.json", tmp_path / f"s{reject}.json",
                               progress=False)
        assert (r["f1"], r["em"], r["count"]) == (100.0, 100.0, 6)
        assert r["server"] == stub.base_url and r["server_model"] == "tuned"
        sent = [b.get("min_tokens") for b in stub.bodies]
        if reject:  # the first refusal drops the field; the prompt is asked again without it
            assert sent[0] == 1 and sent[-1] is None and sent.count(1) <= 8
        else:
            assert set(sent) == {1}
        assert all(b["max_tokens"] == 20 for b in stub.bodies)


def test_requests_that_keep_failing_fail_the_command(tmp_path):
    _write_test_set(tmp_path / "test.jsonl")
    with CompletionsStub(_math_answer, status=503) as stub:
        cfg = eval_config(**FAST, base_url=stub.base_url, max_retries=1)
        with pytest.raises(MathloraError, match=r"30 of 30 completion request\(s\).*HTTP 503.*2 attempt"):
            predict_file(cfg, None, "m", None, tmp_path / "test.jsonl", tmp_path / "o.jsonl", template="alpaca",
                         progress=False)
    assert set(stub.counts.values()) == {2}
    with CompletionsStub(_math_answer, status=401) as stub:  # client errors are not retried
        cfg = eval_config(**FAST, base_url=stub.base_url, max_retries=5)
        with pytest.raises(MathloraError, match="HTTP 401"):
            predict_file(cfg, None, "m", None, tmp_path / "test.jsonl", tmp_path / "o.jsonl", template="alpaca",
                         progress=False)
    assert set(stub.counts.values()) == {1}
    assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(MathloraError, match="server applies the adapter"):
        predict_file(eval_config(**FAST), None, "m", str(tmp_path), tmp_path / "test.jsonl", tmp_path / "o.jsonl",
                     template="alpaca", progress=False)



def test_predict_cli_backend_flags(tmp_path, capsys):
    _write_test_set(tmp_path / "test.jsonl")
    with CompletionsStub(_math_answer) as stub:
        rc = main(["predict", "--input", str(tmp_path / "test.jsonl"), "--output", str(tmp_path / "p.jsonl"),
                   "--backend", "openai", "--base-url", stub.base_url, "--server-model", "tuned",
                   "--concurrency", "4", "--no-progress", "eval.stop=[]"])
    captured = capsys.readouterr()
    assert rc == 0 and "openai" in captured.out
    assert {b["model"] for b in stub.bodies} == {"tuned"}
    lines = list(read_jsonl(tmp_path / "p.jsonl"))
    assert len(lines) == 30
    # the default config turns the calculator on: the server is asked in pieces that stop at '='. This stub's
    # answers have none, and it does not say why a piece stopped: one more one-token request tells its stop
    # from a '=' (greedy decoding would write the '=' again)
    assert all(x["calculator_calls"] == 0 and x["requests"] == 2 for x in lines)
    pieces = [b for b in stub.bodies if "stop" in b]
    assert len(pieces) == 30 and all(b["stop"] == ["="] for b in pieces) and "calculator 0 calls" in captured.out
    assert sorted(b["max_tokens"] for b in stub.bodies if "stop" not in b) == [1] * 30
    # with the template's stop string (the default), the first piece already wrote on into a '### ' section: the
    # completion ends there, cut before it, and no request asks what that stop was
    with CompletionsStub(_math_answer) as stub:
        rc = main(["predict", "--input", str(tmp_path / "test.jsonl"), "--output", str(tmp_path / "p.jsonl"),
                   "--backend", "openai", "--base-url", stub.base_url, "--server-model", "tuned", "--no-progress"])
    lines = list(read_jsonl(tmp_path / "p.jsonl"))
    assert rc == 0 and len(stub.bodies) == 30
    assert all(x["requests"] == 1 and x["stopped"] and x["completion"] == GOLD[x["id"]][2] for x in lines)


def test_mathlora_run_refuses_the_openai_backend_before_any_stage(tmp_path):
    from mathlora.app.config import load_config
    from mathlora.app.pipeline import Pipeline

    cfg = load_config(None, {"run_dir": str(tmp_path / "run"), "eval.backend": "openai"})
    with pytest.raises(MathloraError, match="mathlora run generates locally"):
        Pipeline(cfg)
    assert not (tmp_path / "run").exists()
