"""HF <-> MindSpore checkpoints of Llama-family models (MindFormers' parameter names), LoRA adapters included.

``export_ckpt`` reads a HF model (its safetensors as stored: no dtype change, no re-initialisation) and/or a
peft LoRA adapter and writes one ``.ckpt`` with ``mindspore.save_checkpoint``; ``import_ckpt`` reads a ``.ckpt``
with ``mindspore.load_checkpoint`` and writes a HF folder (``config.json`` and tokenizer from the base model
spec, ``model.safetensors``) and, when the checkpoint holds LoRA tensors, a peft adapter folder.

Both directions are bit-exact: float32/float16 arrays pass through numpy unchanged; bfloat16 (which numpy
lacks) travels as float32, which holds every bfloat16 value exactly, and is cast back. Tied embeddings are
stored once (``model.tok_embeddings.embedding_weight``), as MindFormers does with ``tie_word_embeddings``.

Names: see ``ms_names``. MindSpore is optional (``pip install 'mathlora[mindspore]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mathlora.modeling.adapters import ADAPTER_WEIGHTS
from mathlora.errors import MathloraError
from mathlora.export import ms_names
from mathlora.modeling.models import is_tiny, resolve_model_dir, tiny_config
from mathlora.modeling.models import is_tiny, load_model, resolve_model_dir
from mathlora.modeling.runtime import Runtime
from mathlora.modeling.adapters import read_adapter_config, require_adapter_dir
from mathlora.modeling.models import load_tokenizer
from mathlora.run_dir.atomic import atomic_path

MINDSPORE_HINT = "pip install 'mathlora[mindspore]'"
# Extra scalars stored next to the tensors (mindspore.save_checkpoint's append_dict); not model parameters.
META_LORA_ALPHA = "mathlora_lora_alpha"


def require_mindspore(what: str = "this command"):
    try:
        import mindspore
    except ImportError:
        raise MathloraError(f"{what} needs MindSpore, which is not installed: {MINDSPORE_HINT}") from None
    return mindspore


# -- reading HF models -------------------------------------------------------------------------------------
def resolve_export_model(spec: str) -> str:
    """A model spec, or a run folder (its ``merged/`` model)."""
    p = Path(spec).expanduser()
    if p.is_dir() and (p / "manifest.json").exists() and not (p / "config.json").exists():
        merged = p / "merged"
        if not (merged / "config.json").exists():
            raise MathloraError(f"run folder {p} has no merged model (merged/config.json); "
                                f"finish the run or give a model folder")
        return str(merged)
    return spec


def hf_config(spec: str):
    """The transformers config of a model spec (no weights loaded)."""

    if is_tiny(spec):
        return tiny_config(spec)[0]
    from transformers import AutoConfig

    path = resolve_model_dir(spec)
    try:
        return AutoConfig.from_pretrained(str(path))
    except Exception as e:  # transformers raises several kinds on a bad config
        raise MathloraError(f"could not read the config of {spec}: {e}") from None


def hf_state_dict(spec: str) -> dict[str, Any]:
    """Every stored tensor of a model spec, as stored (safetensors read directly; the tiny model built)."""
    import torch


    if is_tiny(spec):
        model = load_model(spec, Runtime(device="cpu", precision="fp32"))
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    folder = resolve_model_dir(spec)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise MathloraError(f"model folder {folder} has no *.safetensors weights (save it with safetensors)")
    from safetensors.torch import load_file

    tensors: dict[str, Any] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return tensors


def read_adapter(adapter_dir) -> tuple[dict[str, Any], dict]:
    """(tensors, adapter_config) of a peft LoRA folder."""
    from safetensors.torch import load_file


    d = require_adapter_dir(adapter_dir)
    config = read_adapter_config(d)
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise MathloraError(f"adapter {d} is {config.get('peft_type')}, not LoRA")
    if config.get("use_rslora") or config.get("use_dora"):
        raise MathloraError(f"adapter {d} uses rsLoRA/DoRA, which MindFormers' LoRA does not compute")
    return load_file(str(d / ADAPTER_WEIGHTS)), config


# -- tensor conversion ---------------------------------------------------------------------------------------
def torch_to_ms(t):
    """A mindspore Tensor with the same dtype and bits as the torch tensor."""
    import mindspore as ms
    import torch

    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return ms.Tensor(t.to(torch.float32).numpy(), dtype=ms.bfloat16)  # exact: bf16 is a subset of fp32
    return ms.Tensor(t.numpy())


def ms_to_torch(p):
    """A torch tensor with the same dtype and bits as the mindspore Tensor/Parameter."""
    import mindspore as ms
    import torch

    if p.dtype == ms.bfloat16:
        return torch.from_numpy(p.astype(ms.float32).asnumpy().copy()).to(torch.bfloat16)
    return torch.from_numpy(p.asnumpy().copy())


# -- export --------------------------------------------------------------------------------------------------
def export_ckpt(model: str | None, output, *, adapter=None) -> dict:
    """Write ``output`` (.ckpt) with the model's weights and/or the adapter's LoRA tensors, MindFormers names."""
    if model is None and adapter is None:
        raise MathloraError("give --model, --adapter, or both")
    out = Path(output)
    if out.suffix != ".ckpt":
        raise MathloraError(f"output {out} must end in .ckpt (MindSpore appends it otherwise)")
    if out.is_dir():
        raise MathloraError(f"output {out} is a directory; expected a .ckpt file path")
    ms = require_mindspore("export mindspore-ckpt")
    entries: list[tuple[str, Any]] = []
    counts = {"tensors": 0, "lora_tensors": 0, "tied_embeddings": False}
    if model is not None:
        spec = resolve_export_model(model)
        config = hf_config(spec)
        _require_llama(config, spec)
        tensors = hf_state_dict(spec)
        tied = bool(getattr(config, "tie_word_embeddings", False))
        if tied and ms_names.LM_HEAD in tensors:
            import torch

            if not torch.equal(tensors[ms_names.LM_HEAD], tensors[ms_names.HF_EMBED]):
                raise MathloraError(f"{spec}: config ties the embeddings but lm_head differs from embed_tokens")
            del tensors[ms_names.LM_HEAD]
        counts["tied_embeddings"] = tied
        for name in sorted(tensors):
            if name.endswith("rotary_emb.inv_freq"):
                continue  # a buffer recomputed from the config, not a weight
            entries.append((ms_names.hf_to_ms(name), tensors[name]))
        counts["tensors"] = len(entries)
        counts["model"] = spec
    append: dict[str, Any] = {}
    if adapter is not None:
        lora, lcfg = read_adapter(adapter)
        for name in sorted(lora):
            entries.append((ms_names.peft_to_ms(name), lora[name]))
        counts["lora_tensors"] = len(lora)
        append[META_LORA_ALPHA] = float(lcfg.get("lora_alpha", 8))
        counts["lora_alpha"] = append[META_LORA_ALPHA]
        counts["lora_r"] = lcfg.get("r")
    names = [n for n, _ in entries]
    if len(set(names)) != len(names):
        raise MathloraError("two tensors map to the same MindFormers name; is the adapter already merged?")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.ckpt")
    try:
        ms.save_checkpoint([{"name": n, "data": torch_to_ms(t)} for n, t in entries], str(tmp),
                           append_dict=append or None)
        os.chmod(tmp, 0o644)  # mindspore leaves its checkpoints read-only
        os.replace(tmp, out)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    counts["bytes"] = out.stat().st_size
    return counts


def _require_llama(config, spec: str) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type != "llama":
        raise MathloraError(f"{spec} is a {model_type!r} model; MindFormers' llama names fit Llama-family "
                            f"models (model_type 'llama') only")


# -- import --------------------------------------------------------------------------------------------------
def load_ckpt(path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(base tensors by HF name, LoRA tensors by peft name, extra scalars) of a MindFormers llama checkpoint."""
    ms = require_mindspore("import mindspore-ckpt")
    p = Path(path)
    if not p.is_file():
        raise MathloraError(f"checkpoint not found: {p}")
    try:
        params = ms.load_checkpoint(str(p))
    except Exception as e:  # mindspore raises ValueError/RuntimeError on a bad file
        raise MathloraError(f"could not read MindSpore checkpoint {p}: {str(e).splitlines()[0]}") from None
    base: dict[str, Any] = {}
    lora: dict[str, Any] = {}
    extra: dict[str, Any] = {"skipped": 0}
    for name, value in params.items():
        if name.startswith("mathlora_"):
            extra[name] = value.asnumpy().item() if hasattr(value, "asnumpy") else value
        elif not name.startswith(("model.", "lm_head.")):
            # optimizer state (adam_m./adam_v.), step counters, loss scale... of a MindFormers training checkpoint
            extra["skipped"] += 1
        elif ms_names.is_ms_lora(name):
            lora[ms_names.ms_to_peft(name)] = ms_to_torch(value)
        else:
            base[ms_names.ms_to_hf(name)] = ms_to_torch(value)
    return base, lora, extra


def _expected_shapes(config) -> dict[str, tuple]:
    """Parameter shapes of the HF model for ``config``, without allocating weights."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("rotary_emb.inv_freq")}


def import_ckpt(ckpt, base: str, output, *, adapter_output=None, lora_alpha: float | None = None) -> dict:
    """Write a HF folder (and/or a peft adapter) from a MindFormers llama checkpoint; ``base`` gives config and
    tokenizer. A checkpoint with LoRA tensors only writes just the adapter, to ``output``."""
    import torch
    from safetensors.torch import save_file


    out = Path(output)
    if out.exists() and not out.is_dir():
        raise MathloraError(f"output {out} exists and is a file; expected a folder path")
    tensors, lora, extra = load_ckpt(ckpt)
    if not tensors and not lora:
        raise MathloraError(f"{ckpt} holds no llama weights and no LoRA tensors")
    if lora and lora_alpha is None and META_LORA_ALPHA not in extra:
        raise MathloraError(f"{ckpt} holds LoRA tensors but not their alpha (MindFormers' pet_config.lora_alpha): "
                            f"give --lora-alpha")
    config = hf_config(base)
    _require_llama(config, base)
    summary: dict[str, Any] = {"tensors": len(tensors), "lora_tensors": len(lora), "skipped": extra["skipped"]}
    if tensors:
        expected = _expected_shapes(config)
        tied = bool(getattr(config, "tie_word_embeddings", False))
        if ms_names.LM_HEAD not in tensors and not tied:
            raise MathloraError(f"{ckpt} has no lm_head.weight but {base} does not tie its embeddings")
        if ms_names.LM_HEAD in tensors and tied:
            if torch.equal(tensors[ms_names.LM_HEAD], tensors.get(ms_names.HF_EMBED, torch.empty(0))):
                del tensors[ms_names.LM_HEAD]
            else:  # trained untied: keep both and untie the config
                config.tie_word_embeddings = False
                tied = False
        want = {k for k in expected if not (tied and k == ms_names.LM_HEAD)}
        missing = sorted(want - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise MathloraError(f"{ckpt} does not fit {base}: "
                                + "; ".join(x for x in (
                                    f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
                                    if missing else "",
                                    f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}"
                                    if unexpected else "") if x))
        bad = [k for k in tensors if tuple(tensors[k].shape) != expected[k]]
        if bad:
            k = bad[0]
            raise MathloraError(f"{ckpt} does not fit {base}: {k} has shape {tuple(tensors[k].shape)}, "
                                f"the base model needs {expected[k]}")
        dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
        if len(dtypes) == 1:
            config.dtype = str(next(iter(dtypes))).removeprefix("torch.")
        summary["tied_embeddings"] = tied
        tokenizer = load_tokenizer(base)
        inside = lora and adapter_output is None
        with atomic_path(out, directory=True) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "model.safetensors"),
                      metadata={"format": "pt"})
            config.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if inside:
                _write_adapter(tmp / "adapter", lora, base, extra, lora_alpha, ckpt)
        summary["model"] = str(out)
        if inside:
            summary["adapter"] = str(out / "adapter")
    if lora and "adapter" not in summary:
        # LoRA tensors only: the adapter is the output; with weights too and --adapter-output: there
        target = Path(adapter_output) if adapter_output is not None else out
        with atomic_path(target, directory=True) as tmp:
            _write_adapter(tmp, lora, base, extra, lora_alpha, ckpt)
        summary["adapter"] = str(target)
    return summary


def _write_adapter(folder: Path, lora: dict, base: str, extra: dict, lora_alpha: float | None, ckpt) -> None:
    from peft import LoraConfig as PeftLoraConfig
    from safetensors.torch import save_file

    alpha = lora_alpha if lora_alpha is not None else extra.get(META_LORA_ALPHA)
    if alpha is None:
        raise MathloraError(f"{ckpt} holds LoRA tensors but not their alpha (MindFormers' pet_config.lora_alpha): "
                            f"give --lora-alpha")
    ranks = {t.shape[0] for k, t in lora.items() if ".lora_A." in k}
    if len(ranks) != 1:
        raise MathloraError(f"{ckpt}: LoRA tensors have ranks {sorted(ranks)}; expected one rank")
    targets = sorted({k.split(".lora_")[0].rsplit(".", 1)[-1] for k in lora})
    missing_pairs = [k for k in lora if ".lora_A." in k and k.replace(".lora_A.", ".lora_B.") not in lora]
    if missing_pairs:
        raise MathloraError(f"{ckpt}: LoRA tensor {missing_pairs[0]} has no lora_B partner")
    config = PeftLoraConfig(r=int(next(iter(ranks))), lora_alpha=float(alpha), target_modules=targets,
                            lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    config.base_model_name_or_path = base
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    save_file({k: v.contiguous() for k, v in lora.items()}, str(folder / ADAPTER_WEIGHTS),
              metadata={"format": "pt"})
