"""Record type definitions: the shared bases and field types, and the asset and failure records.

One job: state the fields, units and cross-field rules of the records that are not datasets
(``VideoAsset``, ``Clip``, ``ImageSet``, ``FailureRecord``) and of the pieces every record is
built from (``Record``, points, cues, constrained field types). The nine datasets are in
``schemas.dataset_types``. Import everything through ``schemas.records``, which adds the name
registry, validation with readable errors, migrations and canonical JSON; ``schemas.arrow``
derives the pyarrow schemas from the same models.

Each top-level record has ``RECORD_NAME`` (its registry name) and ``SCHEMA_VERSION``; bump the
version and register a step in ``schemas.migrations`` whenever its stored shape changes. Field
docstrings become field descriptions (and Arrow field metadata).
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from schemas.sampling import sample_times

__all__ = [
    "KEY_PATTERN", "MAX_KEY_LEN", "SHA256_PATTERN", "TIME_TOLERANCE", "POINT_GRID_FPS", "make_key",
    "point_time_on_grid", "MIN_SET_IMAGES", "MAX_SET_IMAGES",
    "Key", "Sha256", "Text", "Unit", "Seconds", "Count", "Pixels", "Split",
    "Strict", "Record", "SubtitleCue", "Point", "TimedPoint", "ImagePoint", "QAPair", "TrackPoint", "TrackObject",
    "ImageInfo", "VideoAsset", "Clip", "ImageSet", "FailureRecord",
    "rule_error", "check_sorted", "check_within", "check_cues", "check_clip_times", "fmt_num",
]

KEY_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_KEY_LEN = 128
"""Longest text :func:`make_key` keeps as it is (record keys may be 256: room for suffixes)."""
_KEY_RE = re.compile(KEY_PATTERN)
_NOT_KEY = re.compile(r"[^A-Za-z0-9_-]+")


def make_key(text: str) -> str:
    """The one key rule: any id, label or task key made into a key-safe record key.

    Key-safe text (``KEY_PATTERN``: letters, digits, ``_``, ``-``; no dots, which WebDataset
    splits at) of at most :data:`MAX_KEY_LEN` characters is kept as it is. Any other text becomes
    ``{ascii slug}-{8 hex of the sha256 of the text}``: the slug is the text folded to ASCII
    (NFKD), each run of other characters made ``_``, cut to 64; the hash keeps two texts that
    differ only in such characters apart (``a.b`` and ``a_b``). Text with no letter or digit at
    all gives the 8 hex digits alone. The same text always gives the same key.

    Args:
        text: what to make a key of.

    Returns:
        A key matching ``KEY_PATTERN``, at most 73 characters when rewritten.
    """
    if _KEY_RE.fullmatch(text) and len(text) <= MAX_KEY_LEN:
        return text
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_KEY.sub("_", folded).strip("_")[:64]
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}" if slug else digest

SHA256_PATTERN = r"^[0-9a-f]{64}$"
TIME_TOLERANCE = 1e-6
"""Seconds of float slack allowed when comparing times (clip timestamps, grid, clip bounds)."""
POINT_GRID_FPS = 2.0
"""VideoPoint annotations sit on this grid (0.5 s), the Molmo 2 sampling rate."""
MIN_SET_IMAGES, MAX_SET_IMAGES = 2, 5
"""An image set (``ImageSet``, and the images of a multi-image record) holds 2 to 5 images, as in
Molmo 2's MultiImageQA (../shared/reference/molmo2-formats.md, "The nine datasets"); ingest
groups images into sets of this size."""


def point_time_on_grid(t: float, clip_duration: float) -> bool:
    """Whether a VideoPoint time may carry points: on the 0.5 s grid, or the clip's last instant.

    The one definition of the rule: the VideoPoint record checks its points with it, and
    ``annotation.push_plan`` checks a clip's sample times with it before any task is made.
    """
    on_grid = abs(t * POINT_GRID_FPS - round(t * POINT_GRID_FPS)) <= TIME_TOLERANCE
    return on_grid or abs(t - clip_duration) <= TIME_TOLERANCE  # sampling keeps the last frame

Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, min_length=1, max_length=256)]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0)]
Count = Annotated[int, Field(ge=0)]
Pixels = Annotated[int, Field(gt=0)]
Split = Literal["train", "validation", "test"]


def rule_error(path: str, rule: str, value: Any = None) -> PydanticCustomError:
    """A cross-field rule violation at ``path`` (relative to the model that raises it)."""
    return PydanticCustomError("record_rule", "{path}: {rule}", {"path": path, "rule": rule, "value": value})


class Strict(BaseModel):
    """Base of every model: strict types, no unknown fields, no NaN/inf, field docstrings kept."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


class Record(Strict):
    """Base of every top-level record: a key and the schema version it was written under."""

    RECORD_NAME: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    key: Key
    """The record's id; becomes its WebDataset key (no dots)."""
    schema_version: int
    """Version of this record type the record follows; defaults to the current one."""

    @model_validator(mode="before")
    @classmethod
    def _default_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" not in data:
            data = {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @field_validator("schema_version")
    @classmethod
    def _current_version(cls, value: int) -> int:
        if value != cls.SCHEMA_VERSION:
            raise rule_error("", f"must be {cls.SCHEMA_VERSION} (the current version; older records "
                             f"go through schemas.records.migrate), got {value}", value)
        return value


def check_sorted(values: list[float], path: str, strict: bool = False, field: str = "") -> None:
    """Raise a rule error at ``path[i]field`` for the first value out of order."""
    for i in range(1, len(values)):
        if values[i] < values[i - 1] or (strict and values[i] == values[i - 1]):
            order = "strictly increasing" if strict else "sorted (non-decreasing)"
            raise rule_error(f"{path}[{i}]{field}", f"must be {order}, got {fmt_num(values[i])} after "
                             f"{fmt_num(values[i - 1])}", values[i])


def check_within(values: list[float], limit: float, path: str, what: str, field: str = "") -> None:
    """Raise a rule error at ``path[i]field`` for the first value above ``limit`` (+ tolerance)."""
    for i, value in enumerate(values):
        if value > limit + TIME_TOLERANCE:
            raise rule_error(f"{path}[{i}]{field}", f"must be <= {what} ({fmt_num(limit)}), got "
                             f"{fmt_num(value)}", value)


def fmt_num(value: float) -> str:
    """Format a number for a message: ``1.0`` as ``1``, others as ``repr``."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def check_clip_times(times: list[float], duration: float, max_frames: int, max_fps: float) -> None:
    """Check ``times`` are ``sample_times(duration, ...)`` within ``TIME_TOLERANCE``.

    ``end - start`` carries float noise (``20.1 - 10.1`` is ``10.000000000000002``, which puts
    one more grid point below the duration than ``10.0`` does), so the times are also accepted
    when they match the duration rounded to 1e-6 s.
    """
    expected = sample_times(duration, max_frames, max_fps)
    rounded = sample_times(round(duration, 6), max_frames, max_fps)
    if len(times) != len(expected) and len(times) == len(rounded):
        expected = rounded
    how = f"must equal sample_times(end - start = {duration!r}, {max_frames}, {fmt_num(max_fps)})"
    if len(times) != len(expected):
        raise rule_error("timestamps", f"{how}: {len(expected)} times, got {len(times)}", len(times))
    for i, (got, want) in enumerate(zip(times, expected)):
        if abs(got - want) > TIME_TOLERANCE:
            raise rule_error(f"timestamps[{i}]", f"{how}: expected {want!r}, got {got!r}", got)


class SubtitleCue(Strict):
    """One subtitle cue, in seconds: the project's one cue type.

    Relative to the clip start in a ``Clip`` record; ``pipelines.ingest.subtitles`` also uses it
    for cues in file time before cutting them to a clip, and the procedural scenes for their
    ground-truth subtitles. Immutable (and so hashable).
    """

    model_config = ConfigDict(frozen=True)

    start: Seconds
    end: Seconds
    text: str

    @model_validator(mode="after")
    def _cue_order(self) -> SubtitleCue:
        if self.end < self.start:
            raise rule_error("end", f"must be >= start ({fmt_num(self.start)}), got {fmt_num(self.end)}",
                             self.end)
        return self


def check_cues(cues: list[SubtitleCue], duration: float, path: str) -> None:
    """Check cues are sorted by start and end within the clip duration."""
    check_sorted([c.start for c in cues], path, field=".start")
    check_within([c.end for c in cues], duration, path, "the clip duration", field=".end")


class Point(Strict):
    """A point in an image or frame, normalized to [0, 1] (x from the left, y from the top)."""

    x: Unit
    y: Unit


class TimedPoint(Point):
    """A point in a video frame at ``time`` seconds from the clip start."""

    time: Seconds


class ImagePoint(Point):
    """A point in one image of an image set; ``image_index`` is 0-based into ``image_ids``."""

    image_index: Count


class QAPair(Strict):
    """One question and its answer."""

    question: Text
    answer: Text


class TrackPoint(Strict):
    """One object at one track timestamp: visible at (x, y), or occluded (there, but hidden).

    An object that is not in view at all (not yet entered, left the frame) has no point: its
    entry in ``TrackObject.points`` is None. An occluded object may keep its estimated position
    (the annotator's box went on behind the occluder) or have none (the box was switched off);
    the Molmo 2 track text never prints it, but the start/end variant counts it as an appearance
    (../shared/reference/molmo2-formats.md, "Tracks").
    """

    x: Optional[Unit] = None
    """Normalized x; required when visible."""
    y: Optional[Unit] = None
    """Normalized y; required when visible."""
    occluded: bool = False
    """True when the object is there but hidden (behind something) at this time."""

    @model_validator(mode="after")
    def _position(self) -> TrackPoint:
        for axis in ("x", "y"):
            if getattr(self, axis) is None and not self.occluded:
                raise rule_error(axis, "is required for a visible point (only an occluded point may have no "
                                 "position)")
        if (self.x is None) != (self.y is None):
            raise rule_error("y" if self.y is None else "x", "must be given together with "
                             f"{'x' if self.y is None else 'y'} or not at all")
        return self


class TrackObject(Strict):
    """One tracked object: per track timestamp a ``TrackPoint`` (visible or occluded), or None
    where the object is absent (out of view)."""

    object_id: Count
    points: list[Optional[TrackPoint]]
    """Aligned with the track's ``timestamps``."""


class ImageInfo(Strict):
    """One image of an image set."""

    image_id: Key
    given_id: Optional[str] = None
    """The image row's id as written in the manifest, when one was given (``image_id`` is its
    key-safe form); None otherwise."""
    uri: Text
    """URL or path of the image."""
    sha256: Sha256
    width: Pixels
    height: Pixels


class VideoAsset(Record):
    """A source video. ``key`` is the video id."""

    RECORD_NAME: ClassVar[str] = "video"
    SCHEMA_VERSION: ClassVar[int] = 2
    given_id: Optional[str] = None
    """The id as written in the manifest, when one was given; ``key`` is its key-safe form
    (``clip.01`` -> ``clip_01-<8 hex>``), equal to it when it already was a key."""
    uri: Text
    """Source URL or path."""
    sha256: Sha256
    """SHA-256 of the file bytes."""
    duration: Seconds
    fps: Annotated[float, Field(gt=0.0)]
    """Average frame rate (decode by presentation time, not by stepping at this rate)."""
    num_frames: Count
    width: Pixels
    """Display width in pixels, after rotation."""
    height: Pixels
    rotation: Literal[0, 90, 180, 270]
    """Display rotation in degrees counter-clockwise (the display-matrix convention PyAV reports)."""
    license: Text
    source: Text
    """Source name, e.g. ``youtube``."""
    split: Split


class Clip(Record):
    """A clip of a source video and the frames sampled from it. ``key`` is the clip id."""

    RECORD_NAME: ClassVar[str] = "clip"
    video_id: Key
    start: Seconds
    """Clip start in source-video seconds."""
    end: Seconds
    """Clip end in source-video seconds."""
    timestamps: list[Seconds]
    """Sample times relative to ``start``: ``sample_times(end - start, max_frames, max_fps)``."""
    frame_indices: list[Count]
    """Source frame index decoded for each timestamp."""
    frame_width: Pixels
    frame_height: Pixels
    max_frames: Annotated[int, Field(ge=2)]
    max_fps: Annotated[float, Field(gt=0.0)]
    subtitles: Optional[list[SubtitleCue]] = None
    """Cues inside the clip, relative to ``start``; None when the video has no subtitles."""
    split: Split
    mp4: Optional[str] = None
    """Constant-frame-rate H.264 copy of the clip starting at time 0 (for track annotation),
    relative to the ingest output folder; None when not written."""
    mp4_fps: Optional[Annotated[float, Field(gt=0.0)]] = None
    """Frame rate of ``mp4``: its frame f (1-based) is shown from ``(f - 1) / mp4_fps``."""
    mp4_frame_indices: Optional[list[Count]] = None
    """Source frame index shown at each frame of ``mp4`` (the frame map back to source time)."""

    @model_validator(mode="after")
    def _clip_rules(self) -> Clip:
        if self.end < self.start:
            raise rule_error("end", f"must be >= start ({fmt_num(self.start)}), got {fmt_num(self.end)}",
                             self.end)
        duration = self.end - self.start
        check_clip_times(self.timestamps, duration, self.max_frames, self.max_fps)
        if len(self.frame_indices) != len(self.timestamps):
            raise rule_error("frame_indices", f"must have one index per timestamp ({len(self.timestamps)}),"
                             f" got {len(self.frame_indices)}", len(self.frame_indices))
        check_sorted([float(i) for i in self.frame_indices], "frame_indices")
        if self.subtitles is not None:
            check_cues(self.subtitles, duration, "subtitles")
        return self


class ImageSet(Record):
    """A set of images used by the multi-image datasets. ``key`` is the set id."""

    RECORD_NAME: ClassVar[str] = "image_set"
    SCHEMA_VERSION: ClassVar[int] = 3
    given_id: Optional[str] = None
    """The ``image_set`` row's id (or ``set_id``) as written in the manifest, when one was given;
    ``key`` is its key-safe form. None for sets made of grouped images."""
    images: Annotated[list[ImageInfo], Field(min_length=MIN_SET_IMAGES, max_length=MAX_SET_IMAGES)]
    """The set's 2 to 5 images (``MIN_SET_IMAGES`` to ``MAX_SET_IMAGES``), ids unique."""
    license: Text
    source: Text
    split: Split

    @model_validator(mode="after")
    def _unique_images(self) -> ImageSet:
        ids = [image.image_id for image in self.images]
        if len(set(ids)) != len(ids):
            raise rule_error("images", f"image ids must be unique, got {ids}", ids)
        return self


class FailureRecord(Record):
    """A sample that failed a stage (or was a duplicate), kept instead of dropped.

    ``key`` must be unique within a failure shard, e.g. ``{input key}-{stage}``.
    """

    RECORD_NAME: ClassVar[str] = "failure"
    input_id: Text
    """Id of the failed input as the stage knew it (any text, e.g. a URL)."""
    stage: Text
    error_type: Text
    """Exception class name or error code."""
    message: str
    input: str
    """The stage's input, as JSON text, so the sample can be retried."""
    outcome: Literal["failed", "duplicate"]
    duplicate_of: Optional[Key] = None
    """Key of the record this one duplicates; set exactly when ``outcome`` is ``duplicate``."""

    @model_validator(mode="after")
    def _failure_rules(self) -> FailureRecord:
        try:
            json.loads(self.input)
        except ValueError as exc:
            raise rule_error("input", f"must be JSON text ({exc})", self.input) from None
        if (self.outcome == "duplicate") != (self.duplicate_of is not None):
            raise rule_error("duplicate_of", "must be set exactly when outcome is 'duplicate' (outcome "
                             f"{self.outcome!r})", self.duplicate_of)
        return self
