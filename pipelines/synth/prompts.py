"""The prompts of the synthetic generators: versioned package-data files, rendered into chat messages.

One job: read ``pipelines/synth/prompts/{task}.v{N}.txt`` (``#`` comment lines, then a
``[system]`` and a ``[user]`` section), fill ``$facts`` and ``$max_questions`` with
``string.Template`` (so JSON braces need no escaping), and say which JSON object a reply must be
(``reply_schema``, sent as the endpoint's ``response_format``). A prompt file is never edited
once used: a change is a new version, and the version (``capqa.v1``) goes into each record's
provenance and into the response cache key, so a changed prompt never reuses an old reply.

Tasks: ``capqa``, ``subtitleqa`` (multiple choice: question, answer, negatives, category) and
``synmultiimageqa`` (question, explanation, answer, category).
"""
from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["TASKS", "Prompt", "load_prompt", "reply_schema", "prompt_version"]

TASKS = ("capqa", "subtitleqa", "synmultiimageqa")


@dataclass(frozen=True)
class Prompt:
    """One prompt file, parsed."""

    task: str
    version: int
    system: str
    user: str
    sha256: str
    """Of the file's bytes (comments included): the manifest pins it."""

    @property
    def name(self) -> str:
        """``{task}.v{version}``, the version string provenance and the cache use."""
        return prompt_version(self.task, self.version)

    def messages(self, facts: Any, max_questions: int) -> list[dict[str, str]]:
        """Chat messages for one input: the system text, then the user text with the facts filled in.

        Args:
            facts: the input's structured data (JSON-able); written as indented, key-sorted JSON.
            max_questions: the most questions to ask for.
        """
        text = json.dumps(facts, indent=1, sort_keys=True, ensure_ascii=False)
        user = string.Template(self.user).substitute(facts=text, max_questions=max_questions)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def prompt_version(task: str, version: int) -> str:
    """``capqa.v1``: how a prompt version is written in provenance and cache keys."""
    return f"{task}.v{version}"


@lru_cache(maxsize=None)
def load_prompt(task: str, version: int = 1) -> Prompt:
    """Read and parse one prompt file.

    Raises:
        ValueError: an unknown task or version, or a file without both sections.
    """
    if task not in TASKS:
        raise ValueError(f"unknown synth task {task!r}; known: {', '.join(TASKS)}")
    name = f"{task}.v{version}.txt"
    path = resources.files("pipelines.synth").joinpath("prompts", name)
    if not path.is_file():
        known = sorted(p.name for p in resources.files("pipelines.synth").joinpath("prompts").iterdir()
                       if p.name.startswith(f"{task}."))
        raise ValueError(f"no prompt {name} in pipelines/synth/prompts (have: {', '.join(known)})")
    raw = path.read_bytes()
    sections: dict[str, list[str]] = {}
    current = None
    for line in raw.decode("utf-8").splitlines():
        if current is None and line.startswith("#"):
            continue
        if line.strip() in ("[system]", "[user]"):
            current = line.strip()[1:-1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    if set(sections) != {"system", "user"}:
        raise ValueError(f"prompt {name}: needs a [system] and a [user] section, found {sorted(sections)}")
    return Prompt(task, version, "\n".join(sections["system"]).strip(), "\n".join(sections["user"]).strip(),
                  hashlib.sha256(raw).hexdigest())


_STR = {"type": "string"}


def reply_schema(task: str) -> dict[str, Any]:
    """The JSON schema of a reply for ``task`` (``{"questions": [...]}``), strict-mode ready.

    Raises:
        ValueError: an unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"unknown synth task {task!r}; known: {', '.join(TASKS)}")
    if task == "synmultiimageqa":
        props = {"question": _STR, "explanation": _STR, "answer": _STR, "category": _STR}
    else:
        props = {"question": _STR, "answer": _STR, "negatives": {"type": "array", "items": _STR},
                 "category": _STR}
    item = {"type": "object", "properties": props, "required": sorted(props), "additionalProperties": False}
    return {"type": "object", "properties": {"questions": {"type": "array", "items": item}},
            "required": ["questions"], "additionalProperties": False}
