"""models.model_source: the one reading of a model spec, without loading anything."""

import pytest

from mathlora.errors import MathloraError
from mathlora.models import model_source


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

    from mathlora.models import model_identity

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
