"""Record types of procedural image sets: the spec, the exact ground truth, and its JSON.

One job: define what an image set's ground truth *is* (dataclasses, the JSON form saved next to
the images and :func:`load_ground_truth` to read it back), with no generation logic;
:mod:`pipelines.procedural.image_sets` computes it. The images themselves are the
:mod:`pipelines.render` items in ``ImageSetTruth.images``: drawing them again gives the same
PNG bytes, so the ground truth is complete.

Indices: ``SetPoint.image_index`` is 0-based (as ``schemas`` ``ImagePoint``); the html-v2 text
and every question and answer say "image N" with N 1-based (the image's number in the prompt,
../shared/reference/molmo2-formats.md).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from pipelines.render import from_dict, to_dict
from schemas.record_types import MAX_SET_IMAGES, MIN_SET_IMAGES

__all__ = [
    "GT_SCHEMA", "GT_VERSION", "SET_KINDS", "MIN_IMAGES", "MAX_IMAGES", "ImageSetSpec", "SetPoint",
    "PointQuery", "SetQA", "ImageSetTruth", "load_ground_truth",
]

GT_SCHEMA = "molmo2-data/image-set-ground-truth"
GT_VERSION = 1
SET_KINDS = ("shapes", "charts", "diagrams")
"""``shapes``: coloured shapes (MultiImagePoint and MultiImageQA); ``charts``: one data topic
drawn as bar / line / pie charts, tables and documents; ``diagrams``: flow diagrams."""
MIN_IMAGES, MAX_IMAGES = MIN_SET_IMAGES, MAX_SET_IMAGES
"""Images per set: the schemas' one definition (``ImageSet`` holds 2 to 5)."""


@dataclass(frozen=True)
class ImageSetSpec:
    """Everything that determines an image set; the same spec always gives the same set."""

    seed: int = 0
    """Seed of every random choice."""
    kind: str = "shapes"
    """One of ``SET_KINDS``."""
    n_images: int | None = None
    """2-5; None draws it from the seed."""
    width: int = 448
    """Width of every image, pixels."""
    height: int = 336
    """Height of every image, pixels."""

    def __post_init__(self) -> None:
        if self.kind not in SET_KINDS:
            raise ValueError(f"ImageSetSpec.kind must be one of {', '.join(SET_KINDS)}, got {self.kind!r}")
        if self.n_images is not None and not MIN_IMAGES <= self.n_images <= MAX_IMAGES:
            raise ValueError(f"ImageSetSpec.n_images must be {MIN_IMAGES} to {MAX_IMAGES} (or None), "
                             f"got {self.n_images!r}")
        for name in ("width", "height"):
            if not 128 <= getattr(self, name) <= 2048:
                raise ValueError(f"ImageSetSpec.{name} must be 128 to 2048 pixels, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class SetPoint:
    """One point: a shape's centre in image ``image_index`` (0-based), normalized to [0, 1]."""

    image_index: int
    x: float
    y: float


@dataclass(frozen=True)
class PointQuery:
    """A MultiImagePoint query and its exact answer."""

    label: str
    """The object class asked for: a shape kind (``"star"``) or colour and kind (``"red star"``)."""
    question: str
    count: int
    """Number of points over all images (0 when the class is in no image)."""
    counts: tuple[int, ...]
    """Points per image, in image order."""
    points: tuple[SetPoint, ...]
    """Sorted by image index, then x, then y."""
    text: str
    """The html-v2 ``point_then_count`` answer (``schemas.pointing``), 1-based image numbers."""


@dataclass(frozen=True)
class SetQA:
    """A question about the set whose answer is computed from the ground truth."""

    question: str
    answer: str
    category: str
    """The program that made it: ``count_total``, ``most``, ``color``, ``value``, ``compare``..."""
    explanation: str
    """The facts the answer follows from, in one or two sentences (SynMultiImageQA's explanation)."""


@dataclass(frozen=True)
class ImageSetTruth:
    """An image set's exact ground truth: what each image shows, point queries and QA pairs."""

    spec: ImageSetSpec
    topic: str
    """What the set is about, e.g. ``"shapes"``, ``"Fruit sales"``, ``"processes"``."""
    images: tuple[Any, ...]
    """One :mod:`pipelines.render` item per image, in image order."""
    point_queries: tuple[PointQuery, ...] = ()
    """MultiImagePoint queries (shape sets only)."""
    qa: tuple[SetQA, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``schema``, ``version``, the spec, images as ``pipelines.render.to_dict``."""
        return {
            "schema": GT_SCHEMA, "version": GT_VERSION, "spec": dataclasses.asdict(self.spec), "topic": self.topic,
            "images": [to_dict(item) for item in self.images],
            "point_queries": [dataclasses.asdict(q) for q in self.point_queries],
            "qa": [dataclasses.asdict(q) for q in self.qa],
        }

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, two-space indent): equal truths give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)

    def query(self, label: str) -> PointQuery:
        """The point query for ``label``.

        Raises:
            KeyError: no query has that label.
        """
        for q in self.point_queries:
            if q.label == label:
                return q
        raise KeyError(f"no point query for {label!r}; labels: {[q.label for q in self.point_queries]}")


def load_ground_truth(data: str | dict[str, Any]) -> ImageSetTruth:
    """Rebuild an :class:`ImageSetTruth` from ``ImageSetTruth.to_json()`` text or its parsed dict.

    Raises:
        ValueError: the data is not this schema and version, or an image entry is not drawable.
    """
    d = json.loads(data) if isinstance(data, str) else data
    if not isinstance(d, dict) or d.get("schema") != GT_SCHEMA or d.get("version") != GT_VERSION:
        got = (d.get("schema"), d.get("version")) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"not {GT_SCHEMA} v{GT_VERSION}: {got!r}")
    queries = tuple(PointQuery(**{**q, "counts": tuple(q["counts"]),
                                  "points": tuple(SetPoint(**p) for p in q["points"])})
                    for q in d["point_queries"])
    return ImageSetTruth(spec=ImageSetSpec(**d["spec"]), topic=d["topic"],
                         images=tuple(from_dict(item) for item in d["images"]), point_queries=queries,
                         qa=tuple(SetQA(**q) for q in d["qa"]))
