"""The input-format vocabulary: the format names, the roles (column names) each reads, the column pairs ``auto``
also takes as problem/solution, and the conversation roles. Data only: the readers (``mathlora.data.readers``)
and the format choice (``mathlora.data.formats``) read it from here."""

from __future__ import annotations

FORMATS = ("problem_solution", "alpaca", "sharegpt", "messages")
# the names a format reads, by the role each plays; data.columns maps a role to the file's column
ROLES = {"problem_solution": ("problem", "solution"), "alpaca": ("instruction", "input", "output"),
         "sharegpt": ("conversations",), "messages": ("messages",)}
REQUIRED = {"problem_solution": ("problem", "solution"), "alpaca": ("instruction", "output"),
            "sharegpt": ("conversations",), "messages": ("messages",)}
# other column pairs ``auto`` reads as problem/solution (GSM8K, MetaMathQA, TRL's prompt-completion)
PAIRS = (("question", "answer"), ("query", "response"), ("prompt", "completion"), ("prompt", "response"))

USER_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant", "model", "bot", "chatgpt"}
SYSTEM_ROLES = {"system"}
