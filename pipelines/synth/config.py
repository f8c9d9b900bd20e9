"""Typed settings of the synthetic generators: the text backend and the generation rules.

One job: ``SynthConfig`` (sections ``backend`` and ``generation``), built from keyword arguments,
nested dicts or a YAML file shaped like ``pipelines/synth/configs/synth.yaml``; unknown keys are
errors and every value is type-checked (``pipelines.common.settings``), so a typo
never falls back to a default. No environment variable overrides a setting; the endpoint's API
key is read from the environment variable *named* by ``backend.api_key_env`` when the backend
starts, and is never stored here, printed or written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pipelines.common.settings import ConfigError, Section, read_yaml_mapping, sections_from_dict

__all__ = ["BackendConfig", "GenerationConfig", "SynthConfig", "ConfigError", "InputsError", "BACKENDS"]

BACKENDS = ("template", "openai", "transformers")


class InputsError(ValueError):
    """An input of a run is missing or is not what it was given as (the message names it)."""


class _Section(Section):
    def _fail(self, name: str, why: str) -> ConfigError:
        return ConfigError(f"{self.SECTION}.{name}: {why}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class BackendConfig(_Section):
    """Where the text comes from (``pipelines.synth.backends``)."""

    SECTION: ClassVar[str] = "backend"
    kind: Literal["template", "openai", "transformers"] = "template"
    """``template``: question programs over the structured data, no model (the default);
    ``openai``: an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, TGI, hosted);
    ``transformers``: a local causal LM loaded from ``model`` (a folder)."""
    model: str = ""
    """Endpoint: the model name to ask for; transformers: the model folder. Unused by template."""
    base_url: Optional[str] = None
    """Endpoint URL up to ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``); None: the client's default."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the endpoint's API key (the key is never in a file)."""
    concurrency: int = 4
    """Requests in flight at once per worker (endpoint), one generation at a time (transformers)."""
    timeout_s: float = 60.0
    """Seconds one endpoint request may take before it is retried."""
    max_retries: int = 3
    """Endpoint retries of a 429, a 5xx, a timeout or a dropped connection (exponential backoff,
    honouring Retry-After); after the last one the input becomes a failure record."""
    parse_retries: int = 1
    """Extra requests when an answer is not a JSON object (a reply that stays malformed is a failure)."""
    temperature: float = 0.0
    max_tokens: int = 1024
    seed: int = 0
    """Sent with every request (endpoint), set before every generation (transformers)."""
    json_mode: Literal["schema", "object", "none"] = "schema"
    """Endpoint structured output: ``response_format`` json_schema (strict), json_object, or none."""
    device: str = "cpu"
    """transformers: torch device."""
    cache: Optional[str] = None
    """fsspec folder of the response cache (``gs://``, ``s3://``, a local path); None: no cache."""

    def _check(self) -> None:
        if self.kind != "template" and not self.model:
            raise self._fail("model", f"is required for the {self.kind} backend (a model name or folder)")
        if self.concurrency < 1:
            raise self._fail("concurrency", "must be >= 1")
        if self.timeout_s <= 0:
            raise self._fail("timeout_s", "must be > 0")
        if self.max_retries < 0 or self.parse_retries < 0:
            raise ConfigError(f"backend.max_retries and parse_retries must be >= 0, got {self.max_retries}, "
                              f"{self.parse_retries}")
        if not 0.0 <= self.temperature <= 2.0:
            raise self._fail("temperature", "must be in [0, 2]")
        if self.max_tokens < 16:
            raise self._fail("max_tokens", "must be >= 16")
        if not self.api_key_env.replace("_", "").isalnum():
            raise self._fail("api_key_env", "must be the NAME of an environment variable (letters, digits, _)")

    @property
    def model_name(self) -> str:
        """The model as provenance and the cache name it."""
        return self.model if self.kind != "template" else "programs"


@dataclass(frozen=True)
class GenerationConfig(_Section):
    """What a generated question must satisfy, and how many to keep (``pipelines.synth.filters``)."""

    SECTION: ClassVar[str] = "generation"
    min_negatives: int = 3
    """Wrong answers a multiple-choice question needs (Molmo 2: at least three)."""
    max_questions: int = 8
    """Questions kept per clip or image set (the first ones, in the order generated)."""
    support_threshold: float = 1.0
    """SubtitleQA: share of the answer's content words that must occur in the transcript."""
    seed: int = 0
    """Seed of the template programs' choices (distractors, which facts to ask about)."""
    prompt_version: int = 1
    """Version of the prompt files (``pipelines/synth/prompts/{task}.v{N}.txt``)."""
    images_per_set: tuple[int, ...] = (2, 5)
    """SynMultiImageQA: fewest and most images of a set."""

    def _check(self) -> None:
        if self.min_negatives < 3:
            raise self._fail("min_negatives", "must be >= 3 (the CapQA/SubtitleQA schema rule)")
        if self.max_questions < 1:
            raise self._fail("max_questions", "must be >= 1")
        if not 0.0 < self.support_threshold <= 1.0:
            raise self._fail("support_threshold", "must be in (0, 1]")
        if self.prompt_version < 1:
            raise self._fail("prompt_version", "must be >= 1")
        lo_hi = self.images_per_set
        if len(lo_hi) != 2 or not 2 <= lo_hi[0] <= lo_hi[1] <= 5:
            raise self._fail("images_per_set", "must be [fewest, most] with 2 <= fewest <= most <= 5")


_SECTIONS = {"backend": BackendConfig, "generation": GenerationConfig}


@dataclass(frozen=True)
class SynthConfig:
    """Every setting of a synth run."""

    backend: BackendConfig = field(default_factory=BackendConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]]) -> "SynthConfig":
        """Build from nested dicts (YAML).

        Raises:
            ConfigError: an unknown section or key, or a value of the wrong type or range.
        """
        return cls(**sections_from_dict(data, _SECTIONS))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SynthConfig":
        """Read a YAML file (see ``pipelines/synth/configs/synth.yaml``).

        Raises:
            ConfigError: the file cannot be read or parsed, or a setting is wrong.
        """
        return cls.from_dict(read_yaml_mapping(path))

    def with_overrides(self, **sections: dict[str, Any]) -> "SynthConfig":
        """A copy with some settings replaced: ``with_overrides(backend={"kind": "openai"})``."""
        data = self.to_dict()
        for name, values in sections.items():
            data.setdefault(name, {}).update({k: v for k, v in values.items() if v is not None})
        return SynthConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """16 hex digits naming every setting that shapes the outputs (the cache path excluded)."""
        data = self.to_dict()
        data["backend"].pop("cache", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
