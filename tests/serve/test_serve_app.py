"""``mathlora serve``'s app on loopback, driven by the ``openai`` client and httpx: the local model with the
calculator, a proxy in front of a stub upstream, and bad requests answered 4xx with one line."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from calculator_model import ScriptServer, build_tokenizer, script_model
from completions_stub import CompletionsStub
from serving import running

from mathlora.evaluate.remote import CompletionsClient
from mathlora.modeling.openai_client import RetryPolicy
from mathlora.serve.app import build_app
from mathlora.serve.engines import LocalEngine, ProxyEngine
from mathlora.serve.protocol import Limits
from mathlora.modeling.templates import render_prompt

ADD = "计算 1.5 + 2.25 等于多少？"
SUB = "计算 -3828.45 - 756.08 等于多少？"
LIMITS = Limits(max_tokens=200, default_max_tokens=160, prompt_chars=3000, prompts=8, body_bytes=20_000)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def local_url(tok):
    engine = LocalEngine(script_model(tok), tok, max_length=400, batch_size=8, calculator=True)
    with running(build_app(engine, served="demo", template="alpaca", scope="final", limits=LIMITS)) as url:
        yield url


def _client(url):
    return openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=30)


def test_the_openai_client_gets_the_calculators_values_from_the_local_model(local_url):
    client = _client(local_url)
    assert [m.id for m in client.models.list()] == ["demo"]
    r = client.completions.create(model="demo", prompt=ADD, max_tokens=160)
    choice = r.choices[0]
    assert choice.text == "<<1.5 + 2.25=3.75>>\n答案：3.75" and choice.finish_reason == "stop"
    assert choice.answer == "3.75" and choice.calculator == {"calls": 1, "refused": 0}
    assert r.usage.completion_tokens == len(choice.text) - 2 + 1   # '<<' and '>>' are one token each; EOS
    chat = client.chat.completions.create(model="demo", messages=[
        {"role": "system", "content": "You are a calculator."}, {"role": "user", "content": SUB}])
    assert chat.choices[0].message.content.endswith("答案：-4584.53") and chat.choices[0].answer == "-4584.53"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": [{"type": "text", "text": ADD}]}], stream=True))
    assert streamed == choice.text
    batch = client.completions.create(model="demo", prompt=[SUB, ADD], max_tokens=160)
    assert [c.answer for c in batch.choices] == ["-4584.53", "3.75"] and [c.index for c in batch.choices] == [0, 1]
    cut = client.completions.create(model="demo", prompt=ADD, max_tokens=160, stop=["\n"])
    assert cut.choices[0].text == "<<1.5 + 2.25=3.75>>" and cut.choices[0].finish_reason == "stop"
    short = client.completions.create(model="demo", prompt=ADD, max_tokens=5)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(local_url):
    client = _client(local_url)
    problems = [ADD, SUB] * 4
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda p: client.completions.create(model="demo", prompt=p, max_tokens=160 - len(p) % 2),
                                problems))
    assert [r.choices[0].answer for r in replies] == ["3.75", "-4584.53"] * 4


BAD = [
    ("completions", b"not json", 400, "not JSON"),
    ("completions", b"[1, 2]", 400, "JSON object"),
    ("completions", {"model": "demo"}, 400, "prompt"),
    ("completions", {"prompt": 5}, 400, "prompt"),
    ("completions", {"prompt": ""}, 400, "empty"),
    ("completions", {"prompt": "x" * 3001}, 400, "3001 characters"),
    ("completions", {"prompt": ["a"] * 9}, 400, "1 to 8 prompts"),
    ("completions", {"prompt": ADD, "max_tokens": 0}, 400, "max_tokens"),
    ("completions", {"prompt": ADD, "max_tokens": 10_000}, 400, "over this server's limit of 200"),
    ("completions", {"prompt": ADD, "max_tokens": "many"}, 400, "max_tokens"),
    ("completions", {"prompt": ADD, "n": 2}, 400, "n must be 1"),
    ("completions", {"prompt": ADD, "echo": True}, 400, "echo"),
    ("completions", {"prompt": ADD, "logprobs": 2}, 400, "logprobs"),
    ("completions", {"prompt": ADD, "temperature": 9}, 400, "temperature"),
    ("completions", {"prompt": ADD, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("completions", {"prompt": ADD, "model": "gpt-4"}, 404, "not served here"),
    ("completions", {"prompt": "计算 " + "1" * 2900}, 400, "max_length 400"),
    ("completions", b"{" + b" " * 30_000 + b"}", 413, "over 20000 bytes"),
    ("chat/completions", {"messages": []}, 400, "messages"),
    ("chat/completions", {"messages": [{"role": "system", "content": "hi"}]}, 400, "no user message"),
    ("chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    ("chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "only text"),
    ("nothing", {"prompt": ADD}, 404, "Not Found"),
]


@pytest.mark.parametrize("path,body,status,why", BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_requests_get_a_4xx_with_one_line(local_url, path, body, status, why):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{local_url}/{path}", timeout=30, headers={"content-type": "application/json"}, **kw)
    assert r.status_code == status
    message = r.json()["error"]["message"]
    assert why in message and "\n" not in message and "Traceback" not in message


def test_wrong_method_is_405(local_url):
    r = httpx.get(f"{local_url}/completions", timeout=30)
    assert r.status_code == 405 and "error" in r.json()


def test_a_proxy_applies_the_calculator_loop_to_an_upstream_server(tok):
    with ScriptServer(tok, fault_rate=0.3, seed=2) as upstream:
        client = CompletionsClient(base_url=upstream.base_url, model="tuned", api_key="EMPTY", concurrency=4,
                                   timeout=5.0, policy=RetryPolicy(10, 0.001, 0.005))
        engine = ProxyEngine(client, calculator=True)
        with running(build_app(engine, served="tuned", template="alpaca", scope="final", limits=LIMITS)) as url:
            r = _client(url).completions.create(model="tuned", prompt=ADD, max_tokens=160)
            chat = _client(url).chat.completions.create(model="tuned", messages=[{"role": "user", "content": SUB}])
    assert r.choices[0].text == "<<1.5 + 2.25=3.75>>\n答案：3.75" and r.choices[0].answer == "3.75"
    assert r.choices[0].calculator == {"calls": 1, "refused": 0}
    assert chat.choices[0].answer == "-4584.53"
    assert all(b["model"] == "tuned" and b["stop"] == ["="] for b in upstream.bodies)
    first = {b["prompt"] for b in upstream.bodies if b["prompt"].endswith("### Response: ")}
    assert first == {render_prompt("alpaca", ADD), render_prompt("alpaca", SUB)}  # the template around the problem


def test_an_upstream_that_keeps_failing_is_a_502(tok):
    with ScriptServer(tok, fault_rate=1.0, faults=("500",)) as upstream:
        client = CompletionsClient(base_url=upstream.base_url, model="tuned", api_key="sk-secret-key",
                                   timeout=5.0, policy=RetryPolicy(1, 0.001, 0.005))
        with running(build_app(ProxyEngine(client, calculator=True), served="tuned", template="alpaca",
                               scope="final", limits=LIMITS)) as url:
            r = httpx.post(f"{url}/completions", json={"prompt": ADD}, timeout=30)
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "HTTP 500" in message and "2 attempt" in message and "sk-secret-key" not in message


def test_a_request_the_upstream_refuses_is_a_400(tok):
    with CompletionsStub(lambda p: "", status=400) as upstream:
        client = CompletionsClient(base_url=upstream.base_url, model="tuned", api_key="EMPTY", timeout=5.0,
                                   policy=RetryPolicy(3, 0.001, 0.005))
        with running(build_app(ProxyEngine(client, calculator=True), served="tuned", template="alpaca",
                               scope="final", limits=LIMITS)) as url:
            r = httpx.post(f"{url}/completions", json={"prompt": ADD}, timeout=30)
    assert r.status_code == 400 and "HTTP 400" in r.json()["error"]["message"] and sum(upstream.counts.values()) == 1
