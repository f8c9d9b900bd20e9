"""Text-generation backends behind one interface: requests in, reply texts (JSON) out.

One job: define ``Request`` (one clip or image set and its structured data) and ``Reply`` (the
text a backend gave, or why it gave none), the ``Backend`` base, the embedded ``template``
backend, and ``make_backend(config)`` that picks one by ``backend.kind``:

* ``template`` (the default, no model): the question programs of :mod:`pipelines.synth.programs`
  (video) and :mod:`pipelines.synth.cosyn` (image sets) run over the facts and their questions
  are written as the same JSON a model would reply with, so everything after the backend
  (parsing, filters, records) is one path for all backends;
* ``openai``: an OpenAI-compatible chat-completions endpoint (:mod:`pipelines.synth.endpoint`);
* ``transformers``: a local causal LM loaded from a folder (:mod:`pipelines.synth.local_lm`).

A backend never raises for one bad input: a request it cannot answer gets a ``Reply`` with an
``error_type`` (``timeout``, ``rate_limited``, ``http_500``...), which becomes a failure record.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from pipelines.synth.config import BackendConfig, GenerationConfig
from pipelines.synth.prompts import load_prompt, prompt_version

__all__ = ["Request", "Reply", "Backend", "TemplateBackend", "PromptedBackend", "make_backend", "PROGRAMS_VERSION"]

PROGRAMS_VERSION = 1
"""Version of the template question programs (``programs``/``cosyn``); bump it when they change."""


@dataclass(frozen=True)
class Request:
    """One generation input: a clip's or an image set's structured data, for one task."""

    task: str
    """``capqa``, ``subtitleqa`` or ``synmultiimageqa``."""
    input_id: str
    """The clip id or image-set id."""
    facts: dict
    """JSON-able structured data (``pipelines.synth.facts`` / ``pipelines.synth.cosyn``)."""

    @property
    def input_hash(self) -> str:
        """sha256 of the canonical JSON of (task, facts): the input part of the cache key."""
        text = json.dumps({"task": self.task, "facts": self.facts}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Reply:
    """A backend's answer to one request."""

    text: Optional[str] = None
    """The reply text (expected: a JSON object); None when the backend gave none."""
    error_type: Optional[str] = None
    """Why there is no text: ``timeout``, ``rate_limited``, ``http_<status>``, ``connection``,
    ``prompt_too_long``...; None when there is text."""
    message: str = ""
    """The reason in a sentence (never a header, a key or a whole prompt)."""
    calls: int = 0
    """Requests sent to the model for this reply (retries included; 0 from the cache)."""
    cached: bool = False


class Backend:
    """Base of the backends: the settings every one has, and ``generate``."""

    name = "base"

    def __init__(self, config: BackendConfig, generation: GenerationConfig):
        self.config, self.generation = config, generation
        self.model = config.model_name
        self.temperature, self.max_tokens, self.seed = config.temperature, config.max_tokens, config.seed

    def prompt_version(self, task: str) -> str:
        """The version string of what turns a task's facts into text (provenance, cache key)."""
        return prompt_version(task, self.generation.prompt_version)

    def generate(self, requests: Sequence[Request]) -> list[Reply]:
        """One reply per request, in order; never raises for one bad input."""
        raise NotImplementedError(f"{type(self).__name__}.generate")

    def close(self) -> None:
        """Release clients and models (called from a DoFn's teardown)."""


class TemplateBackend(Backend):
    """Question programs over the structured data; no model, no network."""

    name = "template"

    def __init__(self, config: BackendConfig, generation: GenerationConfig):
        super().__init__(config, generation)
        # the programs' version names what makes the text, and a program never reads temperature
        self.temperature, self.max_tokens = 0.0, 0

    def prompt_version(self, task: str) -> str:
        return f"{task}.programs.v{PROGRAMS_VERSION}"

    def generate(self, requests: Sequence[Request]) -> list[Reply]:
        from pipelines.synth import programs

        out = []
        for r in requests:
            items = programs.run(r.task, r.facts, seed=self.generation.seed)[: self.generation.max_questions]
            out.append(Reply(text=json.dumps({"questions": items}, ensure_ascii=False, sort_keys=True), calls=1))
        return out


class PromptedBackend(Backend):
    """Base of the model backends: the prompt file of each task turned into messages."""

    def messages(self, request: Request) -> list[dict[str, str]]:
        """The chat messages of one request (``pipelines.synth.prompts``)."""
        prompt = load_prompt(request.task, self.generation.prompt_version)
        return prompt.messages(request.facts, self.generation.max_questions)


def make_backend(config: BackendConfig, generation: GenerationConfig) -> Backend:
    """The backend ``config.kind`` names, ready to use.

    Raises:
        pipelines.synth.config.ConfigError: the backend cannot start (no key in the environment,
            no model folder); the message names the setting.
    """
    if config.kind == "template":
        return TemplateBackend(config, generation)
    if config.kind == "openai":
        from pipelines.synth.endpoint import EndpointBackend

        return EndpointBackend(config, generation)
    from pipelines.synth.local_lm import LocalLMBackend

    return LocalLMBackend(config, generation)
