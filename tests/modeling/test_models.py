"""models.model_source: the one reading of a model spec, without loading anything."""

import pytest

from mathlora.errors import MathloraError
from mathlora.modeling.models import model_source


def test_each_kind_of_spec(tmp_path):
    assert model_source("tiny-random-llama").kind == "tiny"
    assert model_source("tiny-random-llama:seed=1").path is None
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert model_source(str(folder)) == model_source(str(folder)) and model_source(str(folder)).kind == "folder"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert (model_source(str(gguf)).kind, model_source(str(gguf)).path) == ("gguf", gguf)


@pytest.mark.parametrize("spec, message", [("", "label.model: empty model spec"),
                                           ("tiny-random-llama:bogus=1", "unknown tiny-random-llama option"),
                                           ("{tmp}/nothing", "not found: give a HF model folder"),
                                           ("{tmp}", "has no config.json"),
                                           ("{tmp}/file.txt", "expected a model folder or a .gguf file")])
def test_a_bad_spec_is_one_line_naming_the_setting(tmp_path, spec, message):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(MathloraError, match=message):
        model_source(spec.replace("{tmp}", str(tmp_path)), "label.model")


def test_model_identity_follows_the_content_not_the_path(tmp_path):
    import os

    from mathlora.modeling.models import model_identity

    assert model_identity("tiny-random-llama") == model_identity("tiny-random-llama")
    assert model_identity("tiny-random-llama") != model_identity("tiny-random-llama:seed=1")
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a" * 32)
    first = model_identity(str(folder))
    (folder / "model.safetensors").write_bytes(b"b" * 32)
    os.utime(folder / "model.safetensors", (5, 5))
    assert model_identity(str(folder)) != first
    moved = tmp_path / "moved"
    (folder / "model.safetensors").write_bytes(b"a" * 32)
    folder.rename(moved)
    assert model_identity(str(moved)) == first


# -- Hugging Face Hub ids, from a fake hub cache (the tests never reach the network) ---------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(root, repo: str, folder, commit: str = COMMIT, ref: str = "main"):
    """huggingface_hub's cache layout: models--org--name/refs/<ref> names the commit, snapshots/<commit>/ the files."""
    import shutil

    base = root / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, base / "snapshots" / commit)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / ref).write_text(commit)
    return base / "snapshots" / commit


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """tiny-random-llama saved as a transformers folder (config, safetensors, tokenizer)."""
    from mathlora.modeling.models import load_model, load_tokenizer
    from mathlora.modeling.runtime import Runtime

    folder = tmp_path_factory.mktemp("tiny-hf")
    load_model("tiny-random-llama", Runtime.resolve()).save_pretrained(folder, safe_serialization=True)
    load_tokenizer("tiny-random-llama").save_pretrained(folder)
    return folder


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_folder):
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # HF_HUB_CACHE follows HF_HOME
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_hub_cache(cache, "org/tiny", tiny_folder)
    return cache


def test_a_hub_id_resolves_from_the_cache(hub):
    from mathlora.modeling.models import load_tokenizer, model_identity, resolve_model_dir

    source = model_source("org/tiny")
    assert (source.kind, source.repo_id, source.revision) == ("hub", "org/tiny", None)
    assert source.path == hub / "models--org--tiny" / "snapshots" / COMMIT
    assert resolve_model_dir("org/tiny") == source.path == resolve_model_dir(f"org/tiny@{COMMIT}")
    assert model_identity("org/tiny") == f"hub:org/tiny@{COMMIT}" == model_identity(f"org/tiny@{COMMIT}")
    assert load_tokenizer("org/tiny").encode("1+1", add_special_tokens=False) == \
        load_tokenizer("tiny-random-llama").encode("1+1", add_special_tokens=False)


def test_a_hub_model_loads_with_the_same_weights_and_names_its_base_by_the_hub_id(hub):
    import torch

    from mathlora.modeling.models import load_model
    from mathlora.modeling.runtime import Runtime

    runtime = Runtime.resolve()
    model, reference = load_model("org/tiny", runtime), load_model("tiny-random-llama", runtime)
    assert model.config._name_or_path == "org/tiny"  # what peft writes as base_model_name_or_path
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(model(ids).logits, reference(ids).logits)


def test_offline_and_not_cached_is_one_line(hub):
    with pytest.raises(MathloraError, match=r"model 'org/absent' is not in the Hugging Face cache .* and "
                                            r"HF_HUB_OFFLINE is set; run once with network") as e:
        model_source("org/absent")
    assert "\n" not in str(e.value)
    with pytest.raises(MathloraError, match=r"label.model 'org/tiny@v2' is not in the Hugging Face cache"):
        model_source("org/tiny@v2", "label.model")  # a revision the cache does not hold


def test_no_network_and_not_cached_is_one_line(tmp_path, monkeypatch):
    """Not offline, but the Hub cannot be reached (a closed local port stands for it): the same one line."""
    import huggingface_hub.constants as hub_constants

    from mathlora.modeling.models import check_hub_model, resolve_model_dir

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    source = model_source("org/absent")
    assert (source.kind, source.path) == ("hub", None)  # not asked yet: model_source reads only the cache
    for call in (lambda: check_hub_model(source), lambda: resolve_model_dir("org/absent")):
        with pytest.raises(MathloraError, match=r"'org/absent' is not in the Hugging Face cache .* cannot be "
                                                r"reached") as e:
            call()
        assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


def test_mathlora_run_trains_a_hub_model_from_the_cache(hub, tmp_path, capsys):
    import json

    from tests.cli_helpers import SMALL, cli

    run = tmp_path / "run"
    small = [x for x in SMALL if not x.startswith("model=")]
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", run, *small, "model=org/tiny")
    assert rc == 0, err
    adapter = json.loads((run / "train/adapter/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "org/tiny"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["tokenize"]["settings"]["model_identity"] == f"hub:org/tiny@{COMMIT}"
    assert (run / "merged/config.json").exists() and (run / "report.html").exists()


def test_a_missing_hub_model_stops_before_the_first_stage(hub, tmp_path, capsys):
    from tests.cli_helpers import SMALL, assert_one_error, cli

    small = [x for x in SMALL if not x.startswith("model=")]
    rc, out, err = cli(capsys, "run", "--no-progress", "--run", tmp_path / "run", *small, "model=org/absent")
    assert_one_error(rc, err, "org/absent", "HF_HUB_OFFLINE")
    assert "[ 1/" not in out


@pytest.fixture
def hub_answering_404(tmp_path, monkeypatch):
    """A local server standing in for the Hub, answering every request as the Hub does for a missing repo."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import huggingface_hub.constants as hub_constants

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b'{"error": "Repository Not Found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    yield
    server.shutdown()


def test_a_model_the_hub_does_not_have_is_one_line(hub_answering_404):
    from mathlora.modeling.models import check_hub_model, resolve_model_dir

    for call in (lambda: check_hub_model(model_source("org/typo")), lambda: resolve_model_dir("org/typo")):
        with pytest.raises(MathloraError, match=r"model 'org/typo' not found on the Hugging Face Hub \(a private or "
                                                r"gated model needs `hf auth login` or HF_TOKEN\)") as e:
            call()
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec", ["org/name-", "org/-name", "org/name.git", "org/" + "n" * 97])
def test_a_name_the_hub_would_refuse_is_no_hub_id(spec):
    """org/name in shape but not by the Hub's rules: the spec's own one line, never huggingface_hub's
    validation error as a traceback."""
    from mathlora.modeling.models import split_hub_id

    assert split_hub_id(spec) is None
    with pytest.raises(MathloraError, match=r"not found: give a HF model folder, a Hub id \(org/name\[@revision\]\)"):
        model_source(spec)


def test_a_folder_transformers_cannot_read_is_one_line_for_the_tokenizer_and_the_config(tmp_path):
    from mathlora.modeling.models import load_tokenizer, meta_model

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}', encoding="utf-8")
    with pytest.raises(MathloraError, match=r"^could not load tokenizer of .*broken"):
        load_tokenizer(str(folder))
    with pytest.raises(MathloraError, match=r"^could not read the config of model .*broken"):
        meta_model(str(folder))
