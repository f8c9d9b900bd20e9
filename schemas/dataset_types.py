"""Dataset record definitions: one strict pydantic model per Molmo 2 dataset.

One job: state the fields and cross-field rules of the nine datasets (Cap, AskModelAnything,
CapQA, SubtitleQA, VideoPoint, VideoTrack, MultiImageQA, MultiImagePoint, SynMultiImageQA);
reference: ``../shared/reference/molmo2-formats.md``, "The nine datasets".
Shared bases, field types and the asset records live in ``schemas.record_types``; import
everything through ``schemas.records``.

Every dataset record names its media and says how it was made (``DatasetRecord``): video datasets
refer to a ``Clip`` by ``clip_id`` (their times are seconds from the clip start); multi-image
datasets refer to an ``ImageSet`` and list its 2-5 images in prompt order; ``provenance``
(``schemas.provenance``) holds the Label Studio project, snapshot, task, annotations and
annotators of a human record, or the generator, backend, model, prompt version and seed of a
generated one. Source, license and split are not repeated here: they stay on the media records.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Optional

from pydantic import Field, model_validator

from schemas.provenance import Provenance
from schemas.record_types import (
    MAX_SET_IMAGES,
    MIN_SET_IMAGES,
    POINT_GRID_FPS,
    TIME_TOLERANCE,
    Count,
    ImagePoint,
    Key,
    Pixels,
    QAPair,
    Record,
    Seconds,
    SubtitleCue,
    Text,
    TimedPoint,
    TrackObject,
    check_cues,
    check_sorted,
    check_within,
    fmt_num,
    point_time_on_grid,
    rule_error,
)
from schemas.text import normalize_text

__all__ = [
    "MIN_NEGATIVE_ANSWERS", "DatasetRecord", "VideoAnnotation", "Cap", "AskModelAnything", "CapQA", "SubtitleQA",
    "VideoPoint", "VideoTrack",
    "MultiImageRecord", "MultiImageQA", "MultiImagePoint", "SynMultiImageQA",
]


MIN_NEGATIVE_ANSWERS = 3
"""CapQA and SubtitleQA need at least this many wrong answers (four options or more)."""


class DatasetRecord(Record):
    """Base of the nine datasets: how the record was made."""

    provenance: Provenance
    """Who or what made the record, and from what (``schemas.provenance``)."""


class VideoAnnotation(DatasetRecord):
    """Base of the video datasets: which clip of which video the annotation is about."""

    video_id: Key
    clip_id: Key
    clip_start: Seconds
    """Clip start in source-video seconds."""
    clip_end: Seconds
    """Clip end in source-video seconds."""

    @property
    def clip_duration(self) -> float:
        """Clip length in seconds."""
        return self.clip_end - self.clip_start

    @model_validator(mode="after")
    def _clip_bounds(self) -> VideoAnnotation:
        if self.clip_end < self.clip_start:
            raise rule_error("clip_end", f"must be >= clip_start ({fmt_num(self.clip_start)}), got "
                             f"{fmt_num(self.clip_end)}", self.clip_end)
        return self


class Cap(VideoAnnotation):
    """Dense video caption of a clip, at several lengths."""

    RECORD_NAME: ClassVar[str] = "Cap"
    SCHEMA_VERSION: ClassVar[int] = 2
    clip_caption: Text
    """The caption written for this clip."""
    merged_caption: Optional[str] = None
    """Caption merged from the clip captions of the whole video."""
    frame_merged_caption: Optional[str] = None
    """Caption merged with frame-level captions."""
    annotation_score: Optional[float] = None
    """Quality score given to the annotation, when rated."""


class AskModelAnything(VideoAnnotation):
    """Human-written free-form question and answer about a clip."""

    RECORD_NAME: ClassVar[str] = "AskModelAnything"
    SCHEMA_VERSION: ClassVar[int] = 2
    question: Text
    answer: Text


class CapQA(VideoAnnotation):
    """Caption-derived multiple-choice QA: one right answer and at least three wrong ones.

    The wrong answers differ from each other and from the answer after ``normalize_text``
    (case, spaces and punctuation), so no two options read the same.
    """

    RECORD_NAME: ClassVar[str] = "CapQA"
    SCHEMA_VERSION: ClassVar[int] = 2
    question: Text
    answer: Text
    negative_answers: Annotated[list[Text], Field(min_length=MIN_NEGATIVE_ANSWERS)]
    """The wrong answers (at least ``MIN_NEGATIVE_ANSWERS``), distinct from each other and the answer."""
    category: Text

    @model_validator(mode="after")
    def _distinct_options(self) -> CapQA:
        seen = {normalize_text(self.answer): "answer"}
        for i, wrong in enumerate(self.negative_answers):
            norm = normalize_text(wrong)
            if norm in seen:
                raise rule_error(f"negative_answers[{i}]", f"must differ from {seen[norm]} after normalizing case, "
                                 f"spaces and punctuation, got {wrong!r}", wrong)
            seen[norm] = f"negative_answers[{i}]"
        return self


class SubtitleQA(CapQA):
    """Multiple-choice QA that needs the subtitles; cues relative to the clip start."""

    RECORD_NAME: ClassVar[str] = "SubtitleQA"
    SCHEMA_VERSION: ClassVar[int] = 2
    subtitles: Annotated[list[SubtitleCue], Field(min_length=1)]

    @model_validator(mode="after")
    def _cues_in_clip(self) -> SubtitleQA:
        check_cues(self.subtitles, self.clip_duration, "subtitles")
        return self


class VideoPoint(VideoAnnotation):
    """Video pointing / counting query; v3 (v1 stored x, y on a 0-100 scale; v2 had no provenance).

    ``points`` is flat, sorted by ``time``; the points of one timestamp are consecutive.
    """

    RECORD_NAME: ClassVar[str] = "VideoPoint"
    SCHEMA_VERSION: ClassVar[int] = 3
    source: Text
    """The source video's ``source`` (``VideoAsset.source``, e.g. ``youtube``)."""
    duration: Seconds
    """Duration of the whole source video (``VideoAsset.duration``), seconds."""
    label: Text
    question: Text
    count: Count
    """Number of points (equals ``len(points)``)."""
    points: list[TimedPoint]
    category: Text
    annotator_unsure: bool

    @model_validator(mode="after")
    def _point_rules(self) -> VideoPoint:
        if self.clip_end > self.duration + TIME_TOLERANCE:
            raise rule_error("clip_end", f"must be <= duration ({fmt_num(self.duration)}), got "
                             f"{fmt_num(self.clip_end)}", self.clip_end)
        if self.count != len(self.points):
            raise rule_error("count", f"must equal the number of points ({len(self.points)}), got "
                             f"{self.count}", self.count)
        times = [p.time for p in self.points]
        check_sorted(times, "points", field=".time")
        for i, t in enumerate(times):
            if not point_time_on_grid(t, self.clip_duration):
                grid = 1 / POINT_GRID_FPS
                raise rule_error(f"points[{i}].time", f"must be on the {grid} s grid or the clip's last "
                                 f"frame ({fmt_num(self.clip_duration)}), got {t!r}", t)
        check_within(times, self.clip_duration, "points", "the clip duration", field=".time")
        return self

    @property
    def timestamps(self) -> list[float]:
        """Distinct point times, ascending."""
        return sorted({p.time for p in self.points})


class VideoTrack(VideoAnnotation):
    """Referring-expression tracking: every object's point in every annotated frame.

    Per frame an object is visible (a point), occluded (a point marked ``occluded``: there but
    hidden) or absent (None: out of view); v1 could not tell occluded from absent.
    """

    RECORD_NAME: ClassVar[str] = "VideoTrack"
    SCHEMA_VERSION: ClassVar[int] = 2
    source: Text
    """The source video's ``source`` (``VideoAsset.source``)."""
    expression: Text
    """The referring expression naming the tracked objects."""
    fps: Annotated[float, Field(gt=0.0)]
    """Annotation frame rate."""
    width: Pixels
    height: Pixels
    start_frame: Count
    end_frame: Count
    timestamps: list[Seconds]
    """Times of the annotated frames, relative to the clip start, strictly increasing."""
    objects: list[TrackObject]

    @model_validator(mode="after")
    def _track_rules(self) -> VideoTrack:
        if self.end_frame < self.start_frame:
            raise rule_error("end_frame", f"must be >= start_frame ({self.start_frame}), got "
                             f"{self.end_frame}", self.end_frame)
        check_sorted(self.timestamps, "timestamps", strict=True)
        check_within(self.timestamps, self.clip_duration, "timestamps", "the clip duration")
        seen: set[int] = set()
        for i, obj in enumerate(self.objects):
            if obj.object_id in seen:
                raise rule_error(f"objects[{i}].object_id", f"must be unique, got {obj.object_id} twice",
                                 obj.object_id)
            seen.add(obj.object_id)
            if len(obj.points) != len(self.timestamps):
                raise rule_error(f"objects[{i}].points", f"must have one entry per timestamp "
                                 f"({len(self.timestamps)}), got {len(obj.points)}", len(obj.points))
        return self


class MultiImageRecord(DatasetRecord):
    """Base of the multi-image datasets: the image set and its images, in prompt order."""

    image_set_id: Key
    image_ids: Annotated[list[Key], Field(min_length=MIN_SET_IMAGES, max_length=MAX_SET_IMAGES)]
    """The set's images (2 to 5) in the order shown (``Image 1`` is ``image_ids[0]``)."""

    @model_validator(mode="after")
    def _unique_image_ids(self) -> MultiImageRecord:
        if len(set(self.image_ids)) != len(self.image_ids):
            raise rule_error("image_ids", f"must be unique, got {self.image_ids}", self.image_ids)
        return self


class MultiImageQA(MultiImageRecord):
    """Question/answer pairs about a set of images."""

    RECORD_NAME: ClassVar[str] = "MultiImageQA"
    SCHEMA_VERSION: ClassVar[int] = 2
    qa_pairs: Annotated[list[QAPair], Field(min_length=1)]


class MultiImagePoint(MultiImageRecord):
    """Pointing / counting over a set of images; points sorted by ``image_index``."""

    RECORD_NAME: ClassVar[str] = "MultiImagePoint"
    SCHEMA_VERSION: ClassVar[int] = 2
    label: Text
    question: Text
    count: Count
    """Number of points (equals ``len(points)``)."""
    points: list[ImagePoint]
    annotator_unsure: bool = False
    """The annotator marked the query as ambiguous."""

    @model_validator(mode="after")
    def _image_point_rules(self) -> MultiImagePoint:
        if self.count != len(self.points):
            raise rule_error("count", f"must equal the number of points ({len(self.points)}), got "
                             f"{self.count}", self.count)
        check_sorted([float(p.image_index) for p in self.points], "points", field=".image_index")
        for i, p in enumerate(self.points):
            if p.image_index >= len(self.image_ids):
                raise rule_error(f"points[{i}].image_index", f"must be < the number of images "
                                 f"({len(self.image_ids)}), got {p.image_index}", p.image_index)
        return self


class SynMultiImageQA(MultiImageRecord):
    """Synthetic multi-image QA (charts, tables, documents...) with an explanation."""

    RECORD_NAME: ClassVar[str] = "SynMultiImageQA"
    SCHEMA_VERSION: ClassVar[int] = 2
    question: Text
    explanation: Text
    answer: Text
    category: Optional[str] = None
    """Kind of images, e.g. ``chart``, ``table``, ``document``."""
