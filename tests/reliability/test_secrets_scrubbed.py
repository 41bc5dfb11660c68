"""Issue 31 H2: a URL's user info is never printed, recorded or sent; an upstream's error body loses every
credential form (Bearer, Basic and its base64, URL user info, the key itself) before it is kept -- scrubbed
before it is cut, so no half of a credential is left."""

import base64
import json

import pytest
from tests.loopback import LoopbackServer, send_json

from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.evaluate.remote import CompletionsClient, server_info
from mathlora.modeling.openai_client import RetryPolicy, check_base_url, public_url, scrub, url_secrets

PAIR = base64.b64encode(b"user:pa55word").decode()


def test_public_url_drops_the_user_info():
    assert public_url("http://user:pa55word@host:8000/v1") == "http://host:8000/v1"
    assert public_url("https://tok3n@host/v1?x=1") == "https://host/v1?x=1"
    assert public_url("http://host/v1") == "http://host/v1"
    assert set(url_secrets("http://user:pa%24%24word@h/v1")) >= {"pa%24%24word", "pa$$word"}


@pytest.mark.parametrize("text", [
    "Authorization: Basic " + PAIR,
    '{"headers": {"authorization": "Basic ' + PAIR + '"}}',
    "proxy-authorization=Bearer sk-abcdef123456",
    "got Bearer sk-abcdef123456 from you",
    "fetch http://user:pa55word@10.0.0.1/v1 failed",
    '{"api_key": "sk-abcdef123456"}',
])
def test_every_credential_form_is_scrubbed(text):
    out = scrub(text, "sk-abcdef123456", *url_secrets("http://user:pa55word@h/v1"))
    for secret in ("pa55word", PAIR, "sk-abcdef123456", "abcdef"):
        assert secret not in out, out
    assert "***" in out


def test_the_key_itself_is_scrubbed_wherever_it_appears():
    assert scrub("the key sk-abcdef123456 is wrong", "sk-abcdef123456") == "the key *** is wrong"
    assert scrub("plain text, max_tokens: 64", None) == "plain text, max_tokens: 64"


def test_bad_urls_are_reported_without_their_user_info():
    with pytest.raises(MathloraError) as e:
        check_base_url("ftp://user:pa55word@host/v1")
    assert "pa55word" not in str(e.value) and "ftp://host/v1" in str(e.value)
    with pytest.raises(MathloraError) as e:
        check_base_url("http://user:pa55word@host:99999/v1")
    assert "pa55word" not in str(e.value)


def test_prediction_files_record_the_server_without_credentials():
    cfg = EvalConfig.model_validate({"backend": "openai", "model": "m",
                                     "endpoint": {"base_url": "http://user:pa55word@127.0.0.1:8000/v1"}})
    assert server_info(cfg, None)["server"] == "http://127.0.0.1:8000/v1"


class Echo(LoopbackServer):
    """A 401 whose body echoes the request's credentials well past where an excerpt is cut."""

    def on_post(self, handler, body):
        got = handler.headers.get("Authorization", "")
        filler = "x" * 130
        send_json(handler, 401, json.dumps({"error": f"{filler} you sent {got} for http://user:pa55word@up/v1 "
                                                     f"with key sk-operator-key-123"}).encode())


def test_a_failed_generation_names_the_server_without_credentials():
    with Echo() as upstream:
        base = upstream.base_url.replace("http://", "http://user:pa55word@")
        client = CompletionsClient(base_url=base, model="m", api_key="sk-operator-key-123", timeout=10,
                                   policy=RetryPolicy(0, 0.001, 0.001))
        with pytest.raises(MathloraError) as e:
            client.generate(["1 + 1"], max_new_tokens=4, progress=False)
    message = str(e.value)
    assert f"to {upstream.base_url}/completions failed" in message and "HTTP 401" in message
    for secret in ("pa55word", "pa55", PAIR, PAIR[:8], "sk-operator", "user:"):
        assert secret not in message, message
