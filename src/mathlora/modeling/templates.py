"""Named prompt templates. The prompt used for training is the prompt used for inference.

``alpaca`` is the competition's inference prompt (mission item 8), the default. ``vicuna_v1.1`` is the
MindFormers/fastchat conversation wrapping, for parity with Ascend runs. ``plain`` is the bare problem.

Every tokenizer mathlora exports (``train/adapter/``, ``merged/``, a checkpoint's ``merged/``) carries the run's
template as its Jinja ``chat_template`` (``chat_template``, ``exported_tokenizer``), so
``tokenizer.apply_chat_template([{"role": "user", "content": problem}], add_generation_prompt=True)`` (what
vLLM's ``/v1/chat/completions`` does) gives the training prompt: the same text, and tokenized the same ids the
tokenize stage trained on. The tokenize stage encodes a prompt with ``add_special_tokens=True`` while
``apply_chat_template`` (and vLLM's chat endpoint) encode the rendered text with ``add_special_tokens=False``,
so the special tokens the tokenizer adds around a text (a BOS for Llama-style tokenizers, nothing for
SmolLM2's) are written into the template itself.
"""

from __future__ import annotations

from dataclasses import dataclass
import copy
import json
from pathlib import Path

from mathlora.errors import MathloraError
from mathlora.modeling.models import load_tokenizer, pad_token_for


@dataclass(frozen=True)
class Template:
    name: str
    prompt: str  # with a {problem} placeholder
    description: str
    # where a response ends when the model writes on: the template's next section (generation stops there and
    # the completion is cut before it; ``eval.stop`` overrides)
    stop: tuple[str, ...] = ()

    def render(self, problem: str) -> str:
        return self.prompt.replace("{problem}", problem)


DEFAULT_TEMPLATE = "alpaca"  # the competition's prompt: the one default of every `template` setting

TEMPLATES: dict[str, Template] = {t.name: t for t in [
    Template("alpaca",
             "Below is an instruction that describes a task. Write a response that appropriately completes "
             "the request.\n\n### Instruction:\n{problem}\n\n### Response: ",
             "the competition's instruction prompt (training and inference)", stop=("\n### ",)),
    Template("vicuna_v1.1",
             "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
             "helpful, detailed, and polite answers to the user's questions. USER: {problem} ASSISTANT:",
             "fastchat/MindFormers conversation wrapping", stop=("USER:",)),
    Template("plain", "{problem}\n", "the problem alone"),
]}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise MathloraError(f"unknown template {name!r} (allowed: {', '.join(TEMPLATES)})") from None


def render_prompt(name: str, problem: str) -> str:
    return get_template(name).render(problem)


# -- the template as a tokenizer's chat template ----------------------------------------------------------------

def _literal(text: str) -> str:
    """``text`` as a Jinja string literal (Jinja unescapes literals like Python's unicode-escape)."""
    return "'" + text.encode("unicode_escape").decode("ascii").replace("'", "\\'") + "'"


def added_special_tokens(tokenizer) -> tuple[list[str], list[str]]:
    """The special tokens ``tokenizer(text)`` puts before and after a text (its ``add_special_tokens=True``):
    ``(["<s>"], [])`` for a Llama-style tokenizer, ``([], [])`` for SmolLM2's."""
    probe = "x"
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            before, after = full[:start], full[start + len(plain):]
            return tokenizer.convert_ids_to_tokens(before), tokenizer.convert_ids_to_tokens(after)
    raise MathloraError("the tokenizer's special tokens change the text's own tokens; "
                        "its chat template cannot reproduce the training prompt")


def chat_template(name: str, tokenizer=None) -> str:
    """The Jinja chat template that renders the training prompt of template ``name``.

    A user turn renders the whole prompt with the turn's text as the problem (the prompt ends with its own
    response cue, so ``add_generation_prompt`` adds nothing); an assistant turn renders its text and the EOS
    token, as training saw the response; the turns must alternate, starting with the user. A system message
    is refused (``raise_exception``): the model was never trained with one. A turn's content may be a string or
    OpenAI-style parts (the text parts, joined by newlines). ``tokenizer``: whose added special tokens
    (``added_special_tokens``) open and close the first user turn, as in the tokenized training prompt.
    """
    tpl = get_template(name)
    prefix, _, suffix = tpl.prompt.partition("{problem}")
    before, after = added_special_tokens(tokenizer) if tokenizer is not None else ([], [])
    bos = getattr(tokenizer, "bos_token", None) if tokenizer is not None else None
    opening = "{{ bos_token }}" if before and before == [bos] else "".join(
        "{{ " + _literal(t) + " }}" for t in before)
    closing = "".join("{{ " + _literal(t) + " }}" for t in after)
    content = ("{%- if message['content'] is string -%}{{ message['content'] }}"
               "{%- else -%}{{ message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text')"
               " | join('\\n') }}{%- endif -%}")
    refuse = "{{ raise_exception(" + _literal(
        f"this model was fine-tuned on the {name!r} prompt: the messages must alternate user/assistant, "
        "starting with the user, with no system message") + ") }}"
    return (
        f"{{#- mathlora: the {name!r} training prompt -#}}"
        "{%- for message in messages -%}"
        "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) or message['role'] not in ['user', 'assistant'] -%}"
        f"{refuse}"
        "{%- endif -%}"
        "{%- if message['role'] == 'user' -%}"
        f"{{%- if loop.first -%}}{opening}{{%- endif -%}}"
        f"{{{{ {_literal(prefix)} }}}}{content}{{{{ {_literal(suffix)} }}}}"
        f"{{%- if loop.first -%}}{closing}{{%- endif -%}}"
        "{%- else -%}"
        f"{content}{{{{ eos_token }}}}"
        "{%- endif -%}"
        "{%- endfor -%}"
    )


def exported_tokenizer(model: str, template: str):
    """``model``'s tokenizer as mathlora exports it: the template ``template`` as its chat template and a pad
    token that is not EOS where the vocabulary has one (``pad_token_for``)."""


    get_template(template)
    tok = copy.deepcopy(load_tokenizer(model))  # the tiny model's tokenizer is shared (cached): never change it
    pad = pad_token_for(tok)
    if pad is not None:
        tok.pad_token = pad
    tok.chat_template = chat_template(template, tok)
    # a causal LM takes no token_type_ids (transformers 4's generate refuses them): saved in tokenizer_config.json
    tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    tok.init_kwargs["model_input_names"] = list(tok.model_input_names)
    return tok


# transformers 5 saves a fast tokenizer as ``TokenizersBackend``, a class transformers 4 does not know; both
# load ``PreTrainedTokenizerFast`` from the same tokenizer.json
_PORTABLE_CLASSES = {"TokenizersBackend": "PreTrainedTokenizerFast"}


def save_tokenizer(tokenizer, folder) -> None:
    """``tokenizer.save_pretrained(folder)``, loadable by transformers 4 and 5 alike (vLLM pins either): the
    tokenizer class is written as one both know."""

    tokenizer.save_pretrained(str(folder))
    path = Path(folder) / "tokenizer_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    portable = _PORTABLE_CLASSES.get(config.get("tokenizer_class"))
    if portable:
        config["tokenizer_class"] = portable
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
