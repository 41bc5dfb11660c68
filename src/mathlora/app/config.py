"""Typed configuration: YAML files validated by pydantic models, layered with ``base:``, dotted command-line
overrides.

Each stage owns its section model (in its package's ``config.py``); this module composes them into
the root ``Config``. Unknown keys and bad values fail with the field's dotted name and what is allowed.

Layers: a YAML names ``base: demo`` (a shipped config) or ``base: ../team.yaml`` (a path relative to it) and
holds only what differs; mappings merge key by key, lists and values replace. A YAML without ``base:`` starts
from the library defaults (``Config()``, the shipped name ``defaults``). A command given no ``--config`` runs
the demo config (``DEFAULT_CONFIG``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mathlora.modeling.openai_client import FLAT_ENDPOINT_KEYS, public_url
from mathlora.data.config import (ConvertConfig, DataConfig, IngestConfig, NormalizeConfig, SampleConfig,
                                  TokenizeConfig)
from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.export.config import PublishConfig
from mathlora.grpo.config import GrpoConfig
from mathlora.label.config import LabelConfig
from mathlora.modeling.runtime import RuntimeConfig
from mathlora.synth.config import SynthConfig
from mathlora.modeling.templates import DEFAULT_TEMPLATE
from mathlora.train.config import LoraConfig, TrainConfig
from mathlora.run_dir import write_text_atomic

CONFIG_DIR = Path(__file__).parents[1] / "configs"
# Keys that moved: an old config names them, the error says where they live now.
MOVED = {("train", "precision"): "runtime.precision", ("train", "device"): "runtime.device",
         ("eval", "precision"): "runtime.precision", ("label", "device"): "runtime.device",
         **{(section, key): f"{section}.endpoint.{key}" for section in ("label", "eval") for key in FLAT_ENDPOINT_KEYS}}


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that gives one key twice (YAML keeps the last silently; a config must not)."""


class YamlLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's base-60 numbers (``5:1`` is the text ``"5:1"``, not the integer 301) and
    with a key given twice in one mapping an error naming both lines (``train:`` twice would keep the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *base' merges; a key after it overrides by design
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: construct_mapping says so
                    continue
                if first is not None:
                    where = f"on line {first} and on line {line}" if first != line else f"on line {line}"
                    raise DuplicateKeyError(f"key {key!r} is given twice, {where}; keep one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
YamlLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver(_INT, re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X), list("-+0123456789"))
YamlLoader.add_implicit_resolver(_FLOAT, re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def yaml_load(text: str):
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 (a SafeLoader subclass)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    seed: int = Field(0, ge=0, le=2**32 - 1, description="global seed for every random choice (0..2^32-1)")
    run_dir: str = Field("runs/demo", description="folder that receives every artifact of a run")
    model: str = Field("smollm2-135m-instruct",
                       description="base model: a Hugging Face Hub id (org/name, org/name@revision), an HF "
                                   "folder, a .gguf file, smollm2-135m-instruct or tiny-random-llama")
    template: str = Field(DEFAULT_TEMPLATE, description="named prompt template used for training AND inference")
    runtime: RuntimeConfig = RuntimeConfig()
    solution_style: Literal["answer", "steps", "calculator", "decomposed"] = Field(
        "answer", description="training solutions: the competition's answers, worked steps, or worked steps "
                              "with <<expr=value>> calculator annotations, or tool-free steps small enough to "
                              "compute digit by digit (decomposed) (used from synth/rewrite to grading)")
    data: DataConfig = DataConfig()
    synth: SynthConfig = SynthConfig()
    ingest: IngestConfig = IngestConfig()
    label: LabelConfig = LabelConfig()
    sample: SampleConfig = SampleConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    convert: ConvertConfig = ConvertConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    lora: LoraConfig = LoraConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    grpo: GrpoConfig = GrpoConfig()
    publish: PublishConfig = PublishConfig()


def _format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden" and tuple(e["loc"]) in MOVED:
            msg = f"moved to {MOVED[tuple(e['loc'])]}"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key"
            section = _section_model(e["loc"][:-1])
            if section is not None:
                allowed = [*section.model_fields, *(["base"] if section is Config else [])]
                msg += f" (allowed: {', '.join(allowed)})"
        elif "input" in e and not isinstance(e["input"], (dict, list)):
            msg += f" (got {e['input']!r})"
        parts.append(f"{loc}: {msg}")
    return f"config error in {source}: " + "; ".join(parts)


def _section_model(loc: tuple) -> type[BaseModel] | None:
    model: Any = Config
    for key in loc:
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return None
        model = field.annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=2e-4`` -> (["train", "lr"], 0.0002). Values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise MathloraError(f"override {text!r} must look like section.key=value (e.g. train.lr=2e-4)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise MathloraError(f"override {text!r}: bad key {key!r}")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads "1e-5" as a string; let pydantic see a float where it parses as one.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") and value.strip() else value
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str] | dict[str, Any]) -> dict:
    items = overrides.items() if isinstance(overrides, dict) else [
        (".".join(k), v) for k, v in map(parse_override, overrides)]
    for dotted, value in items:
        keys = dotted.split(".")
        node = data
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    return data


# What a command given no --config runs: the demo config (the one `mathlora run` and `make run` use).
DEFAULT_CONFIG = "demo"
# The reserved config name of the library's own defaults (Config() with no file): where a YAML without
# `base:` starts, what `mathlora config show --config defaults` prints.
LIBRARY_DEFAULTS = "defaults"


def shipped_configs() -> dict[str, Path]:
    """The shipped configs by name (``demo`` -> .../configs/demo.yaml), sorted."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def _config_names() -> str:
    return ", ".join([*shipped_configs(), LIBRARY_DEFAULTS])


def shipped_name(ref: str | os.PathLike) -> str | None:
    """``demo`` / ``demo.yaml`` -> ``demo`` when that is a shipped config (or ``defaults``), else None."""
    p = Path(ref)
    if p.parent != Path(".") or p.suffix not in ("", ".yaml"):
        return None
    if p.stem == LIBRARY_DEFAULTS and p.suffix == "":
        return LIBRARY_DEFAULTS
    return p.stem if p.stem in shipped_configs() else None


def resolve_config_path(path: str | os.PathLike, *, relative_to: Path | None = None) -> Path | None:
    """A config file path, or the name of a shipped config (``demo``, ``llama3_8b_lora``); None for
    ``defaults`` (the library defaults, no file). A file of that name wins over a shipped name. With
    ``relative_to`` (a ``base:`` of a YAML) a relative path is taken from that folder."""
    p = Path(path)
    candidate = relative_to / p if relative_to is not None and not p.is_absolute() else p
    if candidate.exists():
        if candidate.is_dir():
            raise MathloraError(f"config {candidate} is a directory; expected a YAML file")
        return candidate
    name = shipped_name(p)
    if name == LIBRARY_DEFAULTS:
        return None
    if name is not None:
        return shipped_configs()[name]
    raise MathloraError(f"config file not found: {candidate} (shipped configs: {_config_names()}; "
                        "`mathlora config list` describes them)")


def _base_exists(ref: str | os.PathLike, relative_to: Path | None) -> bool:
    p = Path(ref)
    return (relative_to / p if relative_to is not None and not p.is_absolute() else p).exists() or \
        shipped_name(p) is not None


def _label(path: Path | None) -> str:
    """How a layer is named in messages: a shipped config by its name, a user's file by its path."""
    if path is None:
        return LIBRARY_DEFAULTS
    shipped = {p.resolve(): name for name, p in shipped_configs().items()}
    return shipped.get(path.resolve(), str(path))


MAX_CONFIG_BYTES = 1 << 20  # a config is a page of settings; a larger file is not one (a YAML of 37 MB parsed for minutes)


def _read_mapping(p: Path) -> dict:
    try:
        if p.is_file() and p.stat().st_size > MAX_CONFIG_BYTES:
            raise MathloraError(f"config {p} is {p.stat().st_size / 2**20:.1f} MiB; a config is at most "
                                f"{MAX_CONFIG_BYTES >> 20} MiB (is this the right file?)")
        loaded = yaml_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise MathloraError(f"config {p} is not valid YAML: {e}") from None
    except UnicodeDecodeError:
        raise MathloraError(f"config {p} is not UTF-8 text") from None
    except OSError as e:
        raise MathloraError(f"cannot read config {p}: {e.strerror or e}") from None
    if not isinstance(loaded, dict):
        raise MathloraError(f"config {p} must be a mapping of sections, got {type(loaded).__name__}")
    return loaded


# mappings that are one value: a layer's data.columns replaces its base's (merged, two formats' roles would mix)
WHOLE_MAPPINGS = {("data", "columns")}


def deep_merge(base: dict, over: dict, _at: tuple = ()) -> dict:
    """``over`` on top of ``base``: mappings merge key by key (except ``WHOLE_MAPPINGS``), anything else (lists
    included) replaces."""
    merged = dict(base)
    for key, value in over.items():
        at = (*_at, key)
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and at not in WHOLE_MAPPINGS:
            merged[key] = deep_merge(merged[key], value, at)
        else:
            merged[key] = value
    return merged


def read_layers(path: str | os.PathLike) -> tuple[dict, list[str]]:
    """The merged mapping of a config and its ``base:`` chain, and the chain's names (the given file first,
    ``defaults`` never named: a chain ends on the library defaults). ``base:`` is a shipped config name or a
    path relative to the file that names it; a cycle or a missing base is one error line."""
    layers: list[tuple[Path | None, dict]] = []
    seen: list[Path] = []
    ref: str | os.PathLike | None = path
    relative_to: Path | None = None
    while ref is not None:
        if layers and not _base_exists(ref, relative_to):
            raise MathloraError(f"config {_label(layers[-1][0])}: base {str(ref)!r} not found (a shipped config: "
                                f"{_config_names()}; or a path relative to {relative_to})")
        p = resolve_config_path(ref, relative_to=relative_to)
        if p is None:
            break
        if p.resolve() in seen:
            names = " -> ".join(_label(x) for x in [*(layer for layer, _ in layers), p])
            raise MathloraError(f"config base cycle: {names}")
        seen.append(p.resolve())
        mapping = _read_mapping(p)
        base = mapping.pop("base", None)
        if base is not None and (not isinstance(base, str) or not base.strip()):
            raise MathloraError(f"config {_label(p)}: base must be a config name or path (got {base!r})")
        layers.append((p, mapping))
        ref, relative_to = (base.strip() if base else None), p.parent
    merged: dict = {}
    for _, mapping in reversed(layers):
        merged = deep_merge(merged, mapping)
    return merged, [_label(p) for p, _ in layers] or [LIBRARY_DEFAULTS]


def describe_layers(chain: list[str], overrides) -> str:
    """``my.yaml <- demo + overrides``: what a loaded config was made of."""
    return " <- ".join(chain) + (" + overrides" if overrides else "")


def load_config_layers(path: str | os.PathLike | None = None,
                       overrides: list[str] | dict[str, Any] | None = None) -> tuple[Config, list[str]]:
    """``load_config`` and the names of the layers it read (the given file first)."""
    data, chain = read_layers(DEFAULT_CONFIG if path is None else path)
    if overrides:
        keys = overrides.keys() if isinstance(overrides, dict) else [".".join(parse_override(x)[0])
                                                                     for x in overrides]
        if "base" in keys:
            raise MathloraError("base is not an override: name the config with --config NAME (or `base:` in "
                                "your YAML)")
        data = apply_overrides(data, overrides)
    try:
        return Config.model_validate(data), chain
    except ValidationError as e:
        raise MathloraError(_format_validation_error(e, describe_layers(chain, overrides))) from None


def load_config(path: str | os.PathLike | None = None,
                overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load a config, apply overrides, validate. ``path`` is a YAML file or a shipped config's name; None
    means the demo config (what a command given no --config runs). A YAML may name ``base: NAME_OR_PATH``:
    it is read on top of that config (mappings merge, lists and values replace); with no ``base:`` it is read
    on top of the library defaults (``Config()``)."""
    return load_config_layers(path, overrides)[0]


def shipped_description(path: Path, width: int = 110) -> str:
    """The first sentence of a shipped config's leading comment, cut to ``width`` at a comma or a word."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    sentence = text.split(". ", 1)[0].rstrip(".")
    if len(sentence) <= width:
        return sentence
    cut = sentence[:width]
    at = cut.rfind(", ") if cut.rfind(", ") > width // 2 else cut.rfind(" ")
    return cut[:at].rstrip(",") + ", ..."


def copy_config(name: str, dest: str | os.PathLike, *, force: bool = False) -> Path:
    """Write shipped config ``name`` (its text, comments included) to ``dest`` (a file, or a folder that
    receives NAME.yaml); ``defaults`` writes the library defaults in full. Never replaces a file unless
    ``force``."""

    shipped = shipped_name(name)
    if shipped is None:
        raise MathloraError(f"no shipped config named {name!r} (shipped configs: {_config_names()})")
    target = Path(dest)
    if target.is_dir():
        target = target / f"{shipped}.yaml"
    if target.exists() and not force:
        raise MathloraError(f"{target} exists; --overwrite replaces it")
    if shipped == LIBRARY_DEFAULTS:
        text = "# The library defaults (what a YAML without base: starts from), written by mathlora config copy.\n" + \
            dump_config(Config())
    else:
        text = shipped_configs()[shipped].read_text(encoding="utf-8")
    write_text_atomic(target, text)
    return target


def public_config(cfg: Config) -> dict:
    """``cfg`` as JSON-able data with every URL's user info removed (``openai_client.public_url``): what is
    written to a run's ``config.yaml`` and manifest or printed; the command itself keeps using ``cfg``."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str) and _URL_WITH_USER.match(value):
            return public_url(value)
        return value
    return strip(cfg.model_dump(mode="json"))


_URL_WITH_USER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")


def dump_config(cfg: Config) -> str:
    """The config as YAML, URLs without their user info (``public_config``)."""
    return yaml.safe_dump(public_config(cfg), sort_keys=False, allow_unicode=True)
