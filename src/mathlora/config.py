"""Typed configuration: YAML files validated by pydantic models, dotted command-line overrides.

Each stage owns its section model (in its package's ``config.py``); this module composes them into
the root ``Config``. Unknown keys and bad values fail with the field's dotted name and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mathlora.openai_client import FLAT_ENDPOINT_KEYS
from mathlora.data.config import (ConvertConfig, DataConfig, IngestConfig, NormalizeConfig, SampleConfig,
                                  TokenizeConfig)
from mathlora.errors import MathloraError
from mathlora.evaluate.config import EvalConfig
from mathlora.export.config import PublishConfig
from mathlora.label.config import LabelConfig
from mathlora.runtime import RuntimeConfig
from mathlora.synth.config import SynthConfig
from mathlora.train.config import LoraConfig, TrainConfig

CONFIG_DIR = Path(__file__).parent / "configs"
# Keys that moved: an old config names them, the error says where they live now.
MOVED = {("train", "precision"): "runtime.precision", ("train", "device"): "runtime.device",
         ("eval", "precision"): "runtime.precision", ("label", "device"): "runtime.device",
         **{(section, key): f"{section}.endpoint.{key}" for section in ("label", "eval") for key in FLAT_ENDPOINT_KEYS}}


class YamlLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's base-60 numbers: ``5:1`` is the text ``"5:1"``, not the integer 301."""


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
                       description="base model: HF folder, .gguf file, smollm2-135m-instruct, tiny-random-llama")
    template: str = Field("alpaca", description="named prompt template used for training AND inference")
    runtime: RuntimeConfig = RuntimeConfig()
    solution_style: Literal["answer", "steps", "calculator"] = Field(
        "answer", description="training solutions: the competition's answers, worked steps, or worked steps "
                              "with <<expr=value>> calculator annotations (used from synth/rewrite to grading)")
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
                msg += f" (allowed: {', '.join(section.model_fields)})"
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


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A config file path, or the name of a shipped config (``demo``, ``llama3_8b_lora``)."""
    p = Path(path)
    if p.exists():
        if p.is_dir():
            raise MathloraError(f"config {p} is a directory; expected a YAML file")
        return p
    shipped = CONFIG_DIR / f"{p.stem}.yaml"
    if p.suffix in ("", ".yaml") and p.parent == Path(".") and shipped.exists():
        return shipped
    raise MathloraError(f"config file not found: {p} (shipped configs: "
                        f"{', '.join(sorted(x.stem for x in CONFIG_DIR.glob('*.yaml')))})")


def load_config(path: str | os.PathLike | None = None,
                overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load a YAML config (default: the embedded demo config), apply overrides, validate."""
    if path is None:
        path = CONFIG_DIR / "demo.yaml"
    p = resolve_config_path(path)
    source = str(p)
    try:
        loaded = yaml_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise MathloraError(f"config {p} is not valid YAML: {e}") from None
    except UnicodeDecodeError:
        raise MathloraError(f"config {p} is not UTF-8 text") from None
    if not isinstance(loaded, dict):
        raise MathloraError(f"config {p} must be a mapping of sections, got {type(loaded).__name__}")
    data: dict = loaded
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + overrides"
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise MathloraError(_format_validation_error(e, source)) from None


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
