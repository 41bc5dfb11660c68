"""What a finished run folder's ``config.yaml`` says about the model it trained: the sections the exporters
(the MindFormers YAML, the published model card) need, each validated by its own section model.

The exporters read the run's config as an artifact, like any other; they never load the root config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from mathlora.data.config import TokenizeConfig
from mathlora.errors import MathloraError
from mathlora.run_dir.layout import RunLayout
from mathlora.modeling.runtime import RuntimeConfig
from mathlora.train.config import LoraConfig, TrainConfig

SECTIONS: dict[str, type[BaseModel]] = {"lora": LoraConfig, "train": TrainConfig, "tokenize": TokenizeConfig,
                                        "runtime": RuntimeConfig}


@dataclass(frozen=True)
class RunRecipe:
    model: str
    template: str
    seed: int
    lora: LoraConfig
    train: TrainConfig
    tokenize: TokenizeConfig
    runtime: RuntimeConfig
    solution_style: str = "answer"
    data_train: str | None = None  # the user's training file (None: synth made the data)
    eval: dict | None = None  # the run's eval section as written (the usage snippets read max_new_tokens)

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> "RunRecipe":
        """The recipe of ``run_dir``; one-line errors for a missing folder, no config.yaml, or a bad one."""
        root = Path(run_dir)
        if not root.is_dir():
            raise MathloraError(f"run folder not found: {root}")
        path = RunLayout(root).config
        if not path.is_file():
            raise MathloraError(f"{root} is not a mathlora run folder (no config.yaml)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise MathloraError(f"{path} is not readable YAML ({type(e).__name__})") from None
        if not isinstance(data, dict):
            raise MathloraError(f"{path} is not a mathlora config (expected a mapping)")
        try:
            sections = {name: model.model_validate(data.get(name) or {}) for name, model in SECTIONS.items()}
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise MathloraError(f"{path}: {where}: {first['msg']}") from None
        missing = [k for k in ("model", "template", "seed") if k not in data]
        if missing:
            raise MathloraError(f"{path} lacks {', '.join(missing)} (not written by mathlora run?)")
        given = data.get("data") if isinstance(data.get("data"), dict) else {}
        return cls(str(data["model"]), str(data["template"]), int(data["seed"]), **sections,
                   solution_style=str(data.get("solution_style") or "answer"),
                   data_train=str(given["train"]) if given.get("train") else None,
                   eval=data.get("eval") if isinstance(data.get("eval"), dict) else None)
