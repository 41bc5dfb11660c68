"""Model cards (``README.md``) of the folders a run hands out: ``train/adapter/``, ``merged/`` and each
checkpoint's adapter, written with ``huggingface_hub.ModelCard`` / ``ModelCardData``.

Front matter (Hub metadata): ``base_model`` (a Hub id, only when the base model stands for one: the packaged
SmolLM2 or a folder of a Hugging Face cache; a local path is not Hub metadata and is left out),
``library_name`` (``peft`` for an adapter, ``transformers`` for a merged model), ``tags``, ``datasets``
(where the training file is a Hub dataset), ``pipeline_tag``, ``license`` (the base model's, where known),
``model-index`` (the run's scores, through ``EvalResult``) and ``mathlora`` (the recipe, so a later writer, the
merge, rebuilds the card from the adapter's). Body: the recipe, the prompt (the tokenizer's chat template),
the scores per family when evaluated, and how to load it (peft, transformers, vLLM).

Where they are written (once each, so ``publish`` reruns find them unchanged):

* the trainer writes each checkpoint's card and the final adapter's (no scores yet), replacing peft's empty
  one; ``merge_adapter`` writes ``merged/README.md`` from the adapter's card;
* the ``cards`` stage of ``mathlora run`` (``write_cards``, after the tuned evaluation) rewrites the cards of
  ``train/adapter/`` and ``merged/`` with the scores, only when their text changed. A folder's top-level
  ``README.md`` is not part of its verified content or its hash (``mathlora.run_dir.hashing.CARD``), so this
  never makes the train or merge stage look stale; a checkpoint's card is covered by its checksum and never
  rewritten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathlora import __version__
from mathlora.modeling.adapters import ADAPTER_CONFIG, HUB_LICENSES, base_model_name, hub_id
from mathlora.errors import MathloraError
from mathlora.run_dir.records import read_json_document
from mathlora.export.card_scores import cell, eval_results, score_lines
from mathlora.report.render import snippet_new_tokens
from mathlora.report.scores import RunScores
from mathlora.run_dir.hashing import CARD
from mathlora.run_dir.layout import RunLayout
from mathlora.modeling.templates import TEMPLATES
from mathlora.data.sources import is_hub_dataset
from mathlora.run_dir.atomic import write_text_atomic
from mathlora.export.recipe import RunRecipe

TAGS = ["mathlora", "lora", "math", "text-generation"]
KINDS = ("adapter", "merged", "checkpoint")


def _read_json(path: Path) -> dict | None:
    try:
        data = read_json_document(path, path.name)
    except (OSError, MathloraError):
        return None
    return data if isinstance(data, dict) else None


def _g(value: float) -> str:
    return f"{value:g}"


def recipe_rows(lora, train, *, seq_length: int, precision: str, template: str, seed: int,
                solution_style: str | None = None, steps: int | None = None,
                ratio_line: str | None = None) -> dict[str, str]:
    """The recipe's settings as the card's table shows them (``lora``/``train``: the config sections)."""
    rows = {
        "LoRA r / alpha / dropout": f"{lora.r} / {_g(lora.alpha)} / {_g(lora.dropout)}",
        "target modules": ", ".join(lora.target_modules),
        "epochs": _g(train.epochs) + (f" (max_steps {train.max_steps})" if train.max_steps else ""),
        "global batch size": str(train.global_batch_size),
        "optimizer": f"AdamW betas ({_g(train.betas[0])}, {_g(train.betas[1])}), eps {_g(train.eps)}, "
                     f"weight decay {_g(train.weight_decay)}",
        "learning rate": f"cosine {_g(train.lr)} -> {_g(train.lr_end)}, warmup ratio {_g(train.warmup_ratio)}",
        "gradient clipping": str(train.max_grad_norm) if train.max_grad_norm is not None else "none",
        "precision": str(precision),
        "sequence length": str(seq_length),
        "prompt template": template,
        "seed": str(seed),
    }
    if solution_style:
        rows["solution style"] = solution_style
    if steps:
        rows["steps trained"] = str(steps)
    if ratio_line:
        rows["trainable / total parameters"] = ratio_line
    return rows


@dataclass(frozen=True)
class CardFacts:
    """What a card says about the training: the base model spec, the template, the recipe rows, datasets."""

    model: str
    template: str
    recipe: dict[str, str]
    solution_style: str | None = None  # None: not known to the writer (the trainer)
    datasets: tuple[str, ...] = field(default_factory=tuple)
    max_new_tokens: int = field(default_factory=lambda: snippet_new_tokens(None))  # the usage snippet's

    @classmethod
    def from_run(cls, root: str | os.PathLike) -> "CardFacts":
        """The facts of a run folder (its ``config.yaml`` and ``train/summary.json``)."""

        root = Path(root)
        cfg = RunRecipe.read(root)
        summary = _read_json(RunLayout(root).train_summary) or {}
        precision = str(summary.get("dtype") or cfg.runtime.precision)  # what it trained in (auto -> bf16/fp32)
        rows = recipe_rows(cfg.lora, cfg.train, seq_length=cfg.tokenize.seq_length, precision=precision,
                           template=cfg.template, seed=cfg.seed, solution_style=cfg.solution_style,
                           steps=summary.get("steps"), ratio_line=summary.get("ratio_line"))
        data = _hub_dataset(cfg.data_train) if cfg.data_train else None
        return cls(cfg.model, cfg.template, rows, cfg.solution_style, (data,) if data else (),
                   snippet_new_tokens(cfg.eval))

    def metadata(self) -> dict[str, Any]:
        return {"model": self.model, "template": self.template, "solution_style": self.solution_style,
                "recipe": dict(self.recipe), "version": __version__}

    @classmethod
    def from_card(cls, path: str | os.PathLike) -> "CardFacts | None":
        """The facts a mathlora card recorded in its front matter (None: no card, or not mathlora's)."""
        from huggingface_hub import ModelCard

        path = Path(path)
        if not path.is_file():
            return None
        try:
            card = ModelCard.load(path)
        except Exception:  # not a card with YAML front matter
            return None
        meta = card.data.to_dict().get("mathlora")
        if not isinstance(meta, dict) or not isinstance(meta.get("recipe"), dict):
            return None
        try:
            style = meta.get("solution_style")
            return cls(str(meta["model"]), str(meta["template"]), {str(k): str(v) for k, v in meta["recipe"].items()},
                       str(style) if style else None, tuple(card.data.datasets or ()))
        except KeyError:
            return None


def _hub_dataset(spec: str) -> str | None:
    """The Hub dataset a ``data.train`` names: ``org/name`` itself (read from the Hub by ingest), or the repo of
    a file in a Hugging Face cache; None for a local file."""

    return hub_id(spec, "datasets") or (spec if is_hub_dataset(spec) else None)


def training_facts(job, *, template: str, steps: int | None = None, ratio_line: str | None = None) -> CardFacts:
    """The facts the trainer knows (a ``TrainJob``: model, sections, seed, sequence length, runtime)."""
    precision = str(job.runtime.dtype).removeprefix("torch.")
    return CardFacts(job.model, template, recipe_rows(job.lora, job.train, seq_length=job.seq_length,
                                                      precision=precision, template=template, seed=job.seed,
                                                      steps=steps, ratio_line=ratio_line))


def is_mathlora_card(path: str | os.PathLike) -> bool:
    return CardFacts.from_card(path) is not None


def base_license(spec: str) -> str | None:
    """The base model's license: known for the packaged model, else its folder's own card's ``license``."""
    known = HUB_LICENSES.get(hub_id(spec) or "")
    if known:
        return known
    readme = Path(spec).expanduser() / CARD
    if readme.is_file():
        try:
            from huggingface_hub import metadata_load

            value = (metadata_load(readme) or {}).get("license")
        except Exception:  # a card without valid front matter
            return None
        return value if isinstance(value, str) else None
    return None


# -- how to load it ------------------------------------------------------------------------------------------------

def _use_lines(facts: CardFacts, kind: str) -> list[str]:
    base = base_model_name(facts.model)
    here = "path/to/this/folder"
    problem = "计算 4204.22 + -2369.17 等于多少？"
    generate = (f"out = model.generate(**inputs, max_new_tokens={facts.max_new_tokens}, do_sample=False)",
                "print(tok.decode(out[0, inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))")
    if kind == "checkpoint":  # no tokenizer of its own: the base's, whose chat template is not the training prompt
        template = TEMPLATES.get(facts.template)
        prefix, _, suffix = (template.prompt if template else "{problem}").partition("{problem}")
        chat = (f"problem = {problem!r}", f"prompt = {prefix!r} + problem + {suffix!r}  # the training prompt",
                'inputs = tok(prompt, return_tensors="pt")', *generate)
        intro = (f"A checkpoint has no tokenizer of its own: use the base model's with the training prompt "
                 f"(`{facts.template}`) written out, as below, not the base's chat template (the final adapter's "
                 "and the merged model's tokenizers carry the training prompt as their chat template).")
    else:
        chat = (f'messages = [{{"role": "user", "content": "{problem}"}}]',
                "inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", "
                "return_dict=True)", *generate)
        intro = (f"The tokenizer's chat template is the training prompt (`{facts.template}`): "
                 "`apply_chat_template(messages, add_generation_prompt=True)` renders exactly the prompt the model "
                 "was trained on, so a chat client gets the format it learned. Give one user message, the problem; "
                 "no system message." if facts.template in TEMPLATES else
                 "The training prompt is not known (the adapter had no mathlora card and no template was given to "
                 "the merge): the tokenizer is the base model's, with the base's own chat template if it has one.")
    lines = ["## Use", "", intro, ""]
    if kind == "merged":
        lines += ["transformers:", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f"model = AutoModelForCausalLM.from_pretrained({here!r})  # or the Hub repo it was published to",
                  f"tok = AutoTokenizer.from_pretrained({here!r})", *chat, "```", "",
                  "vLLM (its chat endpoint applies the same template):", "", "```bash",
                  f"vllm serve {here} --served-model-name math",
                  "curl http://localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\",
                  "  -d '{\"model\": \"math\", \"messages\": [{\"role\": \"user\", \"content\": "
                  "\"计算 4204.22 + -2369.17 等于多少？\"}], \"temperature\": 0}'", "```"]
    else:
        lines += ["peft:", "", "```python", "from peft import PeftModel",
                  "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f"base = AutoModelForCausalLM.from_pretrained({base!r})",
                  f"model = PeftModel.from_pretrained(base, {here!r})  # or the Hub repo it was published to",
                  f"tok = AutoTokenizer.from_pretrained({here!r})" if kind == "adapter" else
                  f"tok = AutoTokenizer.from_pretrained({base!r})",
                  *chat, "```"]
        if kind == "adapter":
            lines += ["", "vLLM (the adapter on its base, the training prompt as the chat template):", "", "```bash",
                      f"vllm serve {base} --enable-lora --lora-modules math={here} \\",
                      f"  --chat-template {here}/chat_template.jinja", "```"]
    if facts.solution_style == "calculator":
        lines += ["", "The model writes its arithmetic as `<<expression=` and expects a calculator to append the "
                      "value and `>>`: `mathlora serve` (an OpenAI-compatible server, or a proxy in front of vLLM) "
                      "and `mathlora.evaluate.calculator_hf.CalculatorLogitsProcessor` (plain `generate`) do that."]
    return lines


# -- the card -----------------------------------------------------------------------------------------------------

def build_card(facts: CardFacts, kind: str, *, scores: RunScores | None = None, step: int | None = None):
    """The ``huggingface_hub.ModelCard`` of an ``adapter``, ``merged`` or ``checkpoint`` folder."""
    from huggingface_hub import ModelCard, ModelCardData

    if kind not in KINDS:
        raise ValueError(f"unknown card kind {kind!r}")
    base = hub_id(facts.model)
    what = {"adapter": "LoRA adapter", "merged": "merged model (LoRA merged into the base)",
            "checkpoint": f"LoRA adapter, checkpoint at step {step}"}[kind]
    title = f"{base_model_name(facts.model).rsplit('/', 1)[-1]} math LoRA"
    results = eval_results(scores) if scores is not None and kind != "checkpoint" else []
    data = ModelCardData(
        base_model=base, library_name="transformers" if kind == "merged" else "peft",
        license=base_license(facts.model), tags=[*TAGS, *(["peft"] if kind != "merged" else [])],
        datasets=list(facts.datasets) or None, pipeline_tag="text-generation",
        model_name=title if results else None, eval_results=results or None,
        mathlora=facts.metadata())
    if kind == "merged" and base:
        data.base_model_relation = "finetune"
    body = [f"# {title} ({what})", "",
            f"{'A LoRA adapter for' if kind != 'merged' else 'A merge of a LoRA adapter into'} "
            f"`{base_model_name(facts.model)}`, fine-tuned for math word problems by "
            f"[mathlora](https://pypi.org/project/mathlora/) {__version__}: difficulty-stratified training data, "
            "the prompt masked out of the loss.", "", "## Recipe", "", "| setting | value |", "|---|---|"]
    body += [f"| {cell(k)} | {cell(v)} |" for k, v in facts.recipe.items()]
    body += ["", "## Scores", "", *score_lines(scores, kind), "", *_use_lines(facts, kind), ""]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))
    return card


def card_text(facts: CardFacts, kind: str, *, scores: RunScores | None = None, step: int | None = None) -> str:
    return str(build_card(facts, kind, scores=scores, step=step))


def write_card(folder: str | os.PathLike, text: str) -> bool:
    """Write ``folder/README.md`` when its text differs (atomically); True when written."""

    path = Path(folder) / CARD
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(path, text)
    return True


def write_cards(run_dir: str | os.PathLike) -> dict:
    """The ``cards`` stage: the cards of ``train/adapter/`` and ``merged/`` with the run's scores."""
    lay = RunLayout(run_dir)
    facts = CardFacts.from_run(lay.root)
    scores = RunScores.read(lay.root, strict=False)
    counts = {"written": 0, "unchanged": 0}
    for folder, kind, marker in ((lay.train_adapter, "adapter", ADAPTER_CONFIG), (lay.merged, "merged", "config.json")):
        if not (folder / marker).is_file():
            continue
        written = write_card(folder, card_text(facts, kind, scores=scores))
        counts["written" if written else "unchanged"] += 1
    return counts


def card_paths(run_dir: str | os.PathLike) -> list[Path]:
    """The cards ``write_cards`` writes (the ``cards`` stage's outputs)."""
    lay = RunLayout(run_dir)
    return [lay.train_adapter / CARD, lay.merged / CARD]


def run_card(root: str | os.PathLike, folder: Path, step: int | None) -> str:
    """The card of a run's adapter folder made from the run folder (publishing a run written before cards
    were kept in it): the final adapter's with the scores, a checkpoint's without."""
    facts = CardFacts.from_run(root)
    if step is not None:
        return card_text(facts, "checkpoint", step=step)
    return card_text(facts, "adapter", scores=RunScores.read(root, strict=False))
