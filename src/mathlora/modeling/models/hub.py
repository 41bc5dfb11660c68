"""Hugging Face Hub model ids (``org/name[@revision]``): parsing, the offline switch, the cache and its
snapshots, one-line errors. ``mathlora.modeling.models`` resolves a Hub spec through these."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mathlora.errors import MathloraError

if TYPE_CHECKING:
    from mathlora.modeling.models import ModelSource

# ``org/name`` or ``org/name@revision`` (a branch, tag or commit); a local path of that shape wins
HUB_MODEL = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<rev>[\w.][\w./-]*))?$")
# what a model folder needs: config, safetensors weights (never a pickle), tokenizer and generation files
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "tokenizer*"]
HUB_IGNORE = ["original/*", "onnx/*", "*.gguf", "*.bin", "*.pth", "*.pt", "*.h5", "*.msgpack", "*.onnx"]
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline(*also: str) -> bool:
    """``HF_HUB_OFFLINE`` (or one of the variables ``also`` names) is set, read now: huggingface_hub reads it
    once, at import."""
    return any(os.environ.get(k, "").upper() in _TRUE for k in ("HF_HUB_OFFLINE", *also))


def hub_cache() -> Path:
    """The Hugging Face hub cache as the environment names it now (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def split_hub_id(spec: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None) for a spec that names a Hub model, else None."""
    m = HUB_MODEL.match(spec)
    if not m or ".." in spec or "--" in m["repo"] or m["repo"].endswith((".gguf", ".")):
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:  # the Hub's own rules (no leading or trailing '-', 96 characters at most, ...)
        validate_repo_id(m["repo"])
    except HFValidationError:
        return None
    return m["repo"], m["rev"]


def cached_snapshot(repo: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of ``repo`` at ``revision`` (default main) holding a config.json, or None;
    reads only the cache (huggingface_hub's layout: refs/<revision> names the commit, snapshots/<commit>)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "config.json", cache_dir=str(hub_cache()), revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def _hub_where(repo: str, revision: str | None) -> str:
    return repo + (f"@{revision}" if revision else "")


def hub_error(what: str, repo: str, revision: str | None, e: BaseException | None) -> MathloraError:
    """One line for a Hub model that cannot be had: offline and not cached, not found, gated, no network."""
    name = _hub_where(repo, revision)
    kind = type(e).__name__ if e is not None else ""
    if e is None or kind in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or hub_offline() \
            or "Connect" in kind or "Timeout" in kind:
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face Hub cannot be reached"
        return MathloraError(f"{what} {name!r} is not in the Hugging Face cache ({hub_cache()}) and {why}; run once "
                             f"with network (or `hf download {repo}`), or give a local model folder (there is "
                             f"none at {name})")
    if kind == "RevisionNotFoundError":
        return MathloraError(f"{what} {name!r}: revision {revision!r} not found on the Hugging Face Hub")
    if kind in ("RepositoryNotFoundError", "GatedRepoError"):
        return MathloraError(f"{what} {name!r} not found on the Hugging Face Hub (a private or gated model needs "
                             "`hf auth login` or HF_TOKEN), and no such local folder")
    first = (str(e).strip().splitlines() or [kind])[0][:300]
    return MathloraError(f"{what} {name!r}: no local folder of that name, and the Hugging Face Hub answered: "
                         f"{first}")


_HUB_FOLDERS: dict[tuple, Path] = {}


def hub_snapshot(repo: str, revision: str | None, what: str = "model") -> Path:
    """The local snapshot of a Hub model (downloaded into the usual cache the first time; a pinned commit
    that is cached, or any cached revision offline, is used without asking the Hub). Once per process."""
    key = (repo, revision, str(hub_cache()), hub_offline())
    if key in _HUB_FOLDERS and (_HUB_FOLDERS[key] / "config.json").is_file():
        return _HUB_FOLDERS[key]
    cached = cached_snapshot(repo, revision)
    if cached is not None and (hub_offline() or (revision and _COMMIT.match(revision))):
        folder = cached
    elif hub_offline():
        raise hub_error(what, repo, revision, None)
    else:
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(repo, revision=revision, cache_dir=str(hub_cache()),
                                            allow_patterns=HUB_PATTERNS, ignore_patterns=HUB_IGNORE))
        except Exception as e:  # network, not found, gated: one line each
            raise hub_error(what, repo, revision, e) from None
    if not (folder / "config.json").is_file():
        raise MathloraError(f"{what} {_hub_where(repo, revision)!r}: the Hub repository has no config.json "
                            "(not a transformers model)")
    if not any(folder.glob("*.safetensors")):
        raise MathloraError(f"{what} {_hub_where(repo, revision)!r} has no safetensors weights (mathlora never "
                            "unpickles .bin checkpoints); convert it or pick a repository with safetensors")
    _HUB_FOLDERS[key] = folder
    return folder


def check_hub_model(source: "ModelSource", what: str = "model") -> None:
    """Preflight of a Hub model not cached yet: ask the Hub that it exists (no download)."""
    if source.kind != "hub" or source.path is not None:
        return
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(source.repo_id, revision=source.revision, timeout=15)
    except Exception as e:
        raise hub_error(what, source.repo_id, source.revision, e) from None
