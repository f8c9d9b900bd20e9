"""Provenance: how a dataset record was made, carried by every record of the nine datasets.

One job: define ``Provenance`` and the two ways to fill it (``human_provenance``,
``generated_provenance``). A record already names its media (``clip_id`` / ``video_id``, or
``image_set_id`` and ``image_ids``); source, license and split stay on the media records
(``VideoAsset``, ``Clip``, ``ImageSet``) and publishing copies them into each sample, so nothing
here repeats them: there is one source of truth for each fact.

``method`` says which fields are set:

* ``human``: made in Label Studio. ``project`` (the project title), ``snapshot_version`` (the
  pulled snapshot the record was normalized from, ``annotation.pull``), ``task_id``,
  ``annotation_ids`` and ``annotators`` (one each for one annotator's record; every annotator of
  the task for a consensus merge), all required; the generator fields are None.
* ``generated``: made by a program. ``generator`` (what made it, e.g. ``synth.capqa``),
  ``backend`` (where the model ran, e.g. ``vllm``, ``openai``, ``procedural``), ``model``,
  ``prompt_version`` and ``seed``, all required; the annotation fields are None.
* ``unrecorded``: written before records carried provenance (only ``schemas.migrations`` writes
  it when it upgrades such a record); every other field is None. Publishing can tell these apart
  and decide what to do with them.

Import it through ``schemas.records``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from schemas.record_types import Count, Strict, Text, rule_error

__all__ = ["Provenance", "HUMAN_FIELDS", "GENERATED_FIELDS", "human_provenance", "generated_provenance",
           "UNRECORDED"]

HUMAN_FIELDS = ("project", "snapshot_version", "task_id", "annotation_ids", "annotators")
"""Fields a ``human`` provenance must set (and the others must leave None)."""
GENERATED_FIELDS = ("generator", "backend", "model", "prompt_version", "seed")
"""Fields a ``generated`` provenance must set (and the others must leave None)."""


class Provenance(Strict):
    """How one dataset record was made (see the module docstring for which fields each method sets)."""

    method: Literal["human", "generated", "unrecorded"]
    """``human`` (Label Studio), ``generated`` (a program) or ``unrecorded`` (written before provenance)."""
    project: Optional[Text] = None
    """Label Studio project title (human)."""
    snapshot_version: Optional[Annotated[int, Field(ge=1)]] = None
    """Version of the pulled project snapshot the record was normalized from (human)."""
    task_id: Optional[Count] = None
    """Label Studio task id (human)."""
    annotation_ids: Optional[Annotated[list[Count], Field(min_length=1)]] = None
    """Label Studio annotation ids the record was made from, ascending (human)."""
    annotators: Optional[Annotated[list[Text], Field(min_length=1)]] = None
    """Who annotated (Label Studio user e-mail or id), in ``annotation_ids`` order (human)."""
    generator: Optional[Text] = None
    """The program that made the record, e.g. ``synth.capqa`` (generated)."""
    backend: Optional[Text] = None
    """Where the model ran, e.g. ``vllm``, ``openai``, ``procedural`` (generated)."""
    model: Optional[Text] = None
    """Model name and revision, e.g. ``Qwen/Qwen3-8B@a1b2c3`` (generated)."""
    prompt_version: Optional[Text] = None
    """Version of the prompt templates used (generated)."""
    seed: Optional[int] = None
    """Random seed of the generation (generated)."""

    @model_validator(mode="after")
    def _fields_of_method(self) -> Provenance:
        required = {"human": HUMAN_FIELDS, "generated": GENERATED_FIELDS, "unrecorded": ()}[self.method]
        for name in HUMAN_FIELDS + GENERATED_FIELDS:
            value = getattr(self, name)
            if name in required and value is None:
                raise rule_error(name, f"is required when method is {self.method!r}")
            if name not in required and value is not None:
                raise rule_error(name, f"must be None when method is {self.method!r}, got {value!r}", value)
        if self.method == "human":
            if len(self.annotators) != len(self.annotation_ids):
                raise rule_error("annotators", f"must name one annotator per annotation id "
                                 f"({len(self.annotation_ids)}), got {len(self.annotators)}", self.annotators)
            if any(b <= a for a, b in zip(self.annotation_ids, self.annotation_ids[1:])):
                raise rule_error("annotation_ids", f"must be strictly increasing, got {self.annotation_ids}",
                                 self.annotation_ids)
        return self


UNRECORDED = {"method": "unrecorded"}
"""The provenance of a record written before records carried one (what migrations fill in)."""


def human_provenance(project: str, snapshot_version: int, task_id: int,
                     annotations: Sequence[tuple[int, str]]) -> dict:
    """Provenance of a record made in Label Studio, as a dict for a record.

    Args:
        project: the project title.
        snapshot_version: version of the pulled snapshot the record comes from.
        task_id: the task id.
        annotations: ``(annotation id, annotator)`` of each annotation the record was made
            from (several for a consensus merge); sorted by id here.

    Returns:
        A ``Provenance`` dict (``method`` ``human``); validated with the record.
    """
    pairs = sorted(annotations)
    return {"method": "human", "project": project, "snapshot_version": snapshot_version, "task_id": task_id,
            "annotation_ids": [a for a, _ in pairs], "annotators": [who for _, who in pairs]}


def generated_provenance(generator: str, backend: str, model: str, prompt_version: str | int, seed: int) -> dict:
    """Provenance of a record made by a program, as a dict for a record.

    Args:
        generator: what made it (``synth.capqa``).
        backend: where the model ran (``vllm``, ``openai``, ``procedural``).
        model: model name and revision.
        prompt_version: version of its prompts (an int is written as text).
        seed: the generation seed.

    Returns:
        A ``Provenance`` dict (``method`` ``generated``); validated with the record.
    """
    return {"method": "generated", "generator": generator, "backend": backend, "model": model,
            "prompt_version": str(prompt_version), "seed": seed}
