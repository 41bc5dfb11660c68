"""Named prompt templates. The prompt used for training is the prompt used for inference.

``alpaca`` is the competition's inference prompt (mission item 8), the default. ``vicuna_v1.1`` is the
MindFormers/fastchat conversation wrapping, for parity with Ascend runs. ``plain`` is the bare problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from mathlora.errors import MathloraError


@dataclass(frozen=True)
class Template:
    name: str
    prompt: str  # with a {problem} placeholder
    description: str

    def render(self, problem: str) -> str:
        return self.prompt.replace("{problem}", problem)


TEMPLATES: dict[str, Template] = {t.name: t for t in [
    Template("alpaca",
             "Below is an instruction that describes a task. Write a response that appropriately completes "
             "the request.\n\n### Instruction:\n{problem}\n\n### Response: ",
             "the competition's instruction prompt (training and inference)"),
    Template("vicuna_v1.1",
             "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
             "helpful, detailed, and polite answers to the user's questions. USER: {problem} ASSISTANT:",
             "fastchat/MindFormers conversation wrapping"),
    Template("plain", "{problem}\n", "the problem alone"),
]}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise MathloraError(f"unknown template {name!r} (allowed: {', '.join(TEMPLATES)})") from None


def render_prompt(name: str, problem: str) -> str:
    return get_template(name).render(problem)
