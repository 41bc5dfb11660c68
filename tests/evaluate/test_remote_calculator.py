"""``predict --backend openai --calculator``: the calculator loop over a completions server gives what local
calculator-assisted decoding gives, on a loopback server that plays a calculator-style model."""

import pytest
from calculator_model import PROBLEMS, ScriptServer, build_tokenizer, script_model

from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.generation import generate_greedy
from mathlora.evaluate.predict import predict_file
from mathlora.evaluate.remote import CompletionsClient
from mathlora.evaluate.remote_calculator import inside_annotation, open_expression
from mathlora.modeling.openai_client import RetryPolicy
from mathlora.run_dir.records import read_jsonl, write_jsonl
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.templates import render_prompt

SAME = ("completion", "answer", "calculator_calls", "calculator_refused", "generated_tokens", "stopped")
FAST = dict(timeout=5.0, retry_base_delay=0.001, retry_max_delay=0.005)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return script_model(tok)


@pytest.fixture
def test_set(tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [{"id": f"q{i}", "problem": p} for i, p in enumerate(PROBLEMS)])
    return path


def _predict(cfg, runtime, test_set, out, calculator=True) -> list[dict]:
    predict_file(cfg, runtime, "script", None, test_set, out, template="alpaca", progress=False,
                 solution_style="calculator", calculator=calculator)
    return list(read_jsonl(out))


def _local(monkeypatch, model, tok, test_set, tmp_path, calculator=True) -> list[dict]:
    monkeypatch.setattr("mathlora.evaluate.generation.load_inference_model", lambda *a, **k: (model, tok))
    cfg = EvalConfig(batch_size=4, max_new_tokens=160, max_length=512)
    return _predict(cfg, Runtime.resolve(), test_set, tmp_path / f"local{calculator}.jsonl", calculator)


def _remote(server, test_set, tmp_path, calculator=True, **endpoint) -> list[dict]:
    cfg = EvalConfig(backend="openai", model="tuned", max_new_tokens=160,
                     endpoint={"base_url": server.base_url, **FAST, **endpoint})
    return _predict(cfg, None, test_set, tmp_path / f"remote{calculator}.jsonl", calculator)


def _same(local: list[dict], remote: list[dict]) -> None:
    assert [x["id"] for x in remote] == [x["id"] for x in local]
    for a, b in zip(local, remote):
        assert {k: b[k] for k in SAME} == {k: a[k] for k in SAME}, a["id"]


def test_open_expression_and_inside_annotation():
    assert open_expression("a <<12*3=") == "12*3"
    assert open_expression("<<1+1=2>> then =") is None       # a '=' outside an annotation
    assert open_expression("<<a=b=") is None                  # the expression's '=' came earlier
    assert open_expression("<<12*3") is None
    assert inside_annotation("x <<12*3") and not inside_annotation("<<1=2>>") and not inside_annotation("<<1=")


def test_remote_calculator_gives_the_local_completions_and_answers(monkeypatch, model, tok, test_set, tmp_path):
    local = _local(monkeypatch, model, tok, test_set, tmp_path)
    with ScriptServer(tok) as server:
        remote = _remote(server, test_set, tmp_path)
        plain = _remote(server, test_set, tmp_path, calculator=False)
    _same(local, remote)
    by_problem = {PROBLEMS[int(x["id"][1:])]: x for x in remote}
    assert by_problem["计算 1.5 + 2.25 等于多少？"]["answer"] == "3.75"
    assert by_problem["计算 -3828.45 - 756.08 等于多少？"]["answer"] == "-4584.53"
    assert by_problem["求以下数据的平均值：[74, 13, 94]"]["calculator_calls"] == 3
    assert (by_problem["计算 5 / 0 等于多少？"]["calculator_refused"], by_problem["计算 5 / 0 等于多少？"]["answer"]) \
        == (1, "7")                                       # refused: the model wrote its own value
    assert by_problem["写一首诗。"]["completion"] == "" and by_problem["写一首诗。"]["requests"] == 1
    for x in remote:  # one request per '=' the model wrote (in annotations or not), plus the last piece
        assert x["requests"] == x["completion"].count("=") + 1
        assert x["backend"] == "openai" and x["server_model"] == "tuned"
    equation = by_problem["解方程 -67x + -85 = 0"]   # its worked solution has '=' outside annotations too
    assert equation["answer"] == "-1.27" and equation["calculator_calls"] == 2 and equation["requests"] == 5
    calc_bodies = [b for b in server.bodies if b.get("stop") == ["="]]
    assert calc_bodies and all(b["include_stop_str_in_output"] and b["temperature"] == 0 for b in calc_bodies)
    # without the calculator the same server's model gets the arithmetic wrong
    assert {x["answer"] for x in plain if x["answer"]} == {"7"}
    assert not any("calculator_calls" in x for x in plain) and all(x["requests"] == 1 for x in plain)


@pytest.mark.parametrize("mode", ["refuse_include", "no_info"])
def test_servers_without_vllm_stop_fields_give_the_same(monkeypatch, model, tok, test_set, tmp_path, mode):
    local = _local(monkeypatch, model, tok, test_set, tmp_path)
    with ScriptServer(tok, mode=mode) as server:
        remote = _remote(server, test_set, tmp_path)
    _same(local, remote)
    if mode == "no_info":  # a stop outside an annotation was told apart by a one-token request
        assert any(b["max_tokens"] == 1 and "stop" not in b for b in server.bodies)
    if mode == "refuse_include":  # refused (once per request then in flight), then asked without the field
        sent = ["include_stop_str_in_output" in b for b in server.bodies]
        assert 1 <= sum(sent) <= len(PROBLEMS) and not any(sent[-len(PROBLEMS):])


def test_a_fault_injecting_server_loses_no_prompt(monkeypatch, model, tok, test_set, tmp_path):
    local = _local(monkeypatch, model, tok, test_set, tmp_path)
    with ScriptServer(tok, fault_rate=0.35, seed=4) as server:
        remote = _remote(server, test_set, tmp_path, concurrency=3, max_retries=12)
    assert set(server.faults_served) == {"500", "429"}
    _same(local, remote)
    with ScriptServer(tok, fault_rate=1.0, faults=("500",)) as server, \
            pytest.raises(MathloraError, match=rf"{len(PROBLEMS)} of {len(PROBLEMS)} completion request.*HTTP 500"):
        _remote(server, test_set, tmp_path, max_retries=1)


def test_the_budget_counts_every_piece_and_the_calculators_tokens(model, tok):
    prompts = [render_prompt("alpaca", p) for p in PROBLEMS[:5]]
    with ScriptServer(tok) as server:
        client = CompletionsClient(base_url=server.base_url, model="tuned", api_key="EMPTY", concurrency=4,
                                   timeout=5.0, policy=RetryPolicy(2, 0.001, 0.005))
        for budget in (1, 2, 13, 14, 15, 16, 17, 19, 24, 40):
            local = generate_greedy(model, tok, prompts, max_new_tokens=budget, max_length=512, progress=False,
                                    calculator=True)
            remote = client.generate(prompts, max_new_tokens=budget, calculator=True, progress=False)
            for a, b in zip(local, remote):
                assert (b.completion, b.generated_tokens, b.stopped, b.calculator_calls) == \
                    (a.completion, a.generated_tokens, a.stopped, a.calculator_calls), (budget, a.completion)
                assert b.generated_tokens <= budget + b.stopped
    assert all(b["max_tokens"] >= 1 for b in server.bodies)
