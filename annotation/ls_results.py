"""Read the results of one Label Studio annotation into plain, checked values.

One job: turn the ``result`` items of an export (shapes in ``../shared/reference/labelstudio.md``)
into numbers this project trusts, or raise ``ExportProblem`` naming the field and what is wrong.
``annotation.normalize`` builds records from these values; nothing here knows about records.

* keypoints (``keypointlabels``): ``value.x``/``value.y`` percent of the image -> [0, 1], and the
  ``item_index`` of a multi-image (``valueList``) config;
* box tracks (``videorectangle``): keyframes -> the box CENTER at every mp4 frame, or None where
  the track is off. The rules are Label Studio's own (its frontend ``VideoRectangleRegion``
  ``getShape``/``isInLifespan`` and the SDK's ``interpolate_key_frames``):

  - before the first keyframe the object is absent;
  - at a keyframe the object is shown with that keyframe's box, even a keyframe with
    ``enabled: false`` (it is the last frame shown);
  - after an enabled keyframe the box moves linearly (x, y, width, height, rotation) towards the
    next keyframe, enabled or not, and after the last keyframe it stays where it is until the
    clip ends; after a disabled keyframe the object is absent until the next keyframe;
  - interpolated exports carry the in-between frames as ``"auto": true`` entries (copies of the
    enabled keyframe before them); they are read as keyframes, which gives the same frames.
    A keyframe without ``enabled`` counts as enabled. Auto entries past the clip's last frame
    (Label Studio's ``framesCount`` can exceed the mp4's frame count by one) are dropped; a real
    keyframe past the clip is an error, and so is a track left with no keyframe (``empty_track``).
  - ``value.framesCount`` and ``value.duration`` say which video the track was drawn on: they must
    match the task's mp4 (its frame count, one frame of slack, and ``frame count / fps``), else the
    keyframes belong to another video or to this one at another rate (``clip_mismatch``).

  The export's ``time`` field is never read: frame ``f`` is shown from ``(f - 1) / fps`` while
  ``time`` says ``f / fps``.
* timeline spans (``timelinelabels``): ``value.ranges`` of 1-based frame numbers, inclusive, the
  frame numbering of the box tracks on the same ``<Video>``; and relations (``type:
  "relation"``, ``from_id``/``to_id`` naming two regions of the annotation), which link an
  ``occluded`` span to the box track it is about.
* text (``textarea``: ``value.text`` is a list of strings), choices and ratings.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional, Sequence

from annotation.tasks import label_config

__all__ = ["ExportProblem", "Keypoint", "Keyframe", "control_types", "control_target", "allowed_labels", "number",
           "require", "read_keypoint", "read_labels", "read_text", "read_rating", "read_keyframes", "track_centers",
           "read_spans", "read_relation"]

CENTER_SLACK = 1e-9
"""Float slack (fraction of the image) allowed on a computed box center before it is out of range."""


class ExportProblem(ValueError):
    """Something in an export that cannot become a record.

    Attributes:
        error_type: a short code (``missing_field``, ``bad_value``, ``out_of_range``,
            ``unknown_label``, ``unknown_control``, ``frame_out_of_clip``, ``empty_track``,
            ``clip_mismatch``, ...).
    """

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


# ----------------------------------------------------------------------------- plain values


def require(mapping: Any, name: str, where: str) -> Any:
    """``mapping[name]``, or ``ExportProblem("missing_field")`` saying ``where.name`` is missing."""
    if not isinstance(mapping, dict):
        raise ExportProblem("bad_value", f"{where} must be an object, got {type(mapping).__name__}")
    if name not in mapping or mapping[name] is None:
        raise ExportProblem("missing_field", f"{where}.{name} is missing")
    return mapping[name]


def number(value: Any, where: str, lo: float | None = None, hi: float | None = None) -> float:
    """A finite number (not a bool), optionally within ``[lo, hi]``.

    Raises:
        ExportProblem: ``bad_value`` for a non-number, ``out_of_range`` outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ExportProblem("bad_value", f"{where} must be a finite number, got {value!r}")
    low = -math.inf if lo is None else lo
    high = math.inf if hi is None else hi
    if not low <= value <= high:
        raise ExportProblem("out_of_range", f"{where} must be within [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExportProblem("bad_value", f"{where} must be an integer, got {value!r}")
    return value


# ----------------------------------------------------------------------------- label configs


@dataclass(frozen=True)
class _Control:
    tag: str
    """The result ``type`` it writes: the tag, lower case."""
    labels: frozenset[str]
    to_name: str
    max_rating: Optional[float]


@lru_cache(maxsize=None)
def _controls(kind: str) -> dict[str, _Control]:
    root = ET.fromstring(label_config(kind))
    out: dict[str, _Control] = {}
    for elem in root.iter():
        if "name" in elem.attrib and "toName" in elem.attrib:
            labels = frozenset(c.get("value", "") for c in elem if c.tag in ("Label", "Choice"))
            top = float(elem.get("maxRating", "5")) if elem.tag == "Rating" else None
            out[elem.attrib["name"]] = _Control(elem.tag.lower(), labels, elem.attrib["toName"], top)
    return out


def control_types(kind: str) -> dict[str, str]:
    """Control name -> the result ``type`` it writes (``points`` -> ``keypointlabels``), from the config."""
    return {name: c.tag for name, c in _controls(kind).items()}


def control_target(kind: str, from_name: str) -> str:
    """The object tag (``to_name``) a control labels, from the config."""
    return _controls(kind)[from_name].to_name


def allowed_labels(kind: str, from_name: str) -> frozenset[str]:
    """Labels a result of control ``from_name`` may carry: its own ``<Label>``/``<Choice>`` values,
    or, for a tool without its own (``VideoRectangle``), those of the config's ``<Labels>``."""
    controls = _controls(kind)
    own = controls[from_name].labels
    if own:
        return own
    return frozenset().union(*(c.labels for c in controls.values() if c.tag == "labels"))


def _check_labels(value: Any, field: str, allowed: frozenset[str], where: str, required: bool) -> list[str]:
    if not isinstance(value, dict):
        raise ExportProblem("bad_value", f"{where}.value must be an object, got {type(value).__name__}")
    if field not in value and not required:
        return []
    labels = require(value, field, f"{where}.value")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ExportProblem("bad_value", f"{where}.value.{field} must be a list of strings, got {labels!r}")
    unknown = sorted(set(labels) - allowed)
    if unknown:
        raise ExportProblem("unknown_label", f"{where}.value.{field} has unknown label(s) {unknown}; "
                            f"the config allows {sorted(allowed)}")
    return labels


# ----------------------------------------------------------------------------- keypoints, text


@dataclass(frozen=True)
class Keypoint:
    """One keypoint: x, y in [0, 1]; ``item_index`` 0-based into the task's frames/images."""

    x: float
    y: float
    item_index: int


def read_keypoint(result: dict, where: str, n_items: int, allowed: frozenset[str]) -> Keypoint:
    """A ``keypointlabels`` result as a ``Keypoint``.

    Args:
        result: the result item.
        where: ``task 3 annotation 7 result abc`` (prefix of every message).
        n_items: number of frames/images in the task (``item_index`` must be below it). A result
            without ``item_index`` is accepted only when the task has exactly one item.
        allowed: labels the config allows.

    Raises:
        ExportProblem: missing fields, non-numbers, percent outside [0, 100], an unknown label or
            an ``item_index`` outside the task's items (``frame_out_of_clip``).
    """
    value = require(result, "value", where)
    x = number(require(value, "x", f"{where}.value"), f"{where}.value.x", 0.0, 100.0)
    y = number(require(value, "y", f"{where}.value"), f"{where}.value.y", 0.0, 100.0)
    _check_labels(value, "keypointlabels", allowed, where, required=True)
    if result.get("item_index") is None:
        if n_items != 1:
            raise ExportProblem("missing_field", f"{where}.item_index is missing (the task has {n_items} items)")
        index = 0
    else:
        index = _integer(result["item_index"], f"{where}.item_index")
    if not 0 <= index < n_items:
        raise ExportProblem("frame_out_of_clip", f"{where}.item_index {index} is outside the task's "
                            f"{n_items} frames/images")
    return Keypoint(x / 100.0, y / 100.0, index)


def read_labels(result: dict, where: str, field: str, allowed: frozenset[str]) -> list[str]:
    """``value[field]`` of a ``choices`` (``field="choices"``) or ``labels`` result, checked against
    the config.

    Raises:
        ExportProblem: a missing or malformed list, or a label the config does not have.
    """
    return _check_labels(require(result, "value", where), field, allowed, where, required=True)


def read_text(result: dict, where: str) -> str:
    """A ``textarea`` result's text: ``value.text`` (a list of strings) joined by newlines, stripped.

    Raises:
        ExportProblem: missing or non-string text; ``missing_field`` when it is empty.
    """
    text = require(require(result, "value", where), "text", f"{where}.value")
    if isinstance(text, str):
        text = [text]
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        raise ExportProblem("bad_value", f"{where}.value.text must be a list of strings, got {text!r}")
    joined = "\n".join(t.strip() for t in text if t.strip())
    if not joined:
        raise ExportProblem("missing_field", f"{where}.value.text is empty")
    return joined


def read_rating(result: dict, where: str, kind: str, from_name: str) -> float:
    """A ``rating`` result's ``value.rating``: a whole number from 0 to the control's ``maxRating``.

    Raises:
        ExportProblem: missing, not a number (``bad_value``) or beyond the config's scale (``out_of_range``).
    """
    value = require(result, "value", where)
    top = _controls(kind)[from_name].max_rating or math.inf
    rating = number(require(value, "rating", f"{where}.value"), f"{where}.value.rating", 0.0, top)
    if rating != int(rating):
        raise ExportProblem("bad_value", f"{where}.value.rating must be a whole number of stars, got {rating!r}")
    return rating


# ----------------------------------------------------------------------------- box tracks


@dataclass(frozen=True)
class Keyframe:
    """One entry of a ``videorectangle`` sequence: 1-based frame, box in percent, top-left corner."""

    frame: int
    enabled: bool
    x: float
    y: float
    width: float
    height: float
    rotation: float
    auto: bool


FRAMES_COUNT_SLACK = 1
"""Label Studio's ``framesCount`` may differ from the mp4's frame count by this many frames."""


def _check_video(value: dict, where: str, n_frames: int, fps: float) -> None:
    """``framesCount`` and ``duration`` of a track must describe the task's mp4 (see the module doc)."""
    count = number(require(value, "framesCount", f"{where}.value"), f"{where}.value.framesCount", 0.0)
    duration = number(require(value, "duration", f"{where}.value"), f"{where}.value.duration", 0.0)
    if abs(count - n_frames) > FRAMES_COUNT_SLACK:
        raise ExportProblem("clip_mismatch", f"{where}: value.framesCount is {count:g} but the task's mp4 has "
                            f"{n_frames} frames: the track was drawn on another video or at another frame rate")
    if abs(duration * fps - n_frames) > FRAMES_COUNT_SLACK + 1e-6:
        raise ExportProblem("clip_mismatch", f"{where}: value.duration is {duration:g} s, {duration * fps:.4g} frames "
                            f"at the task's {fps:g} fps, but the mp4 has {n_frames} frames "
                            f"({n_frames / fps:.4g} s): the track was drawn on another video or at another rate")


def read_keyframes(result: dict, where: str, n_frames: int, fps: float, allowed: frozenset[str]) -> list[Keyframe]:
    """The checked sequence of a ``videorectangle`` result, one entry per frame, sorted by frame.

    Where two entries share a frame a keyframe wins over an ``auto`` entry, else the later one.

    Args:
        result: the result item.
        where: message prefix naming task, annotation and result.
        n_frames: frames of the task's mp4 (``len(data["frame_times"])``).
        fps: the task's mp4 frame rate (checked against ``value.duration``).
        allowed: labels the config allows in ``value.labels``.

    Returns:
        At least one keyframe.

    Raises:
        ExportProblem: missing fields, non-numbers, percent outside [0, 100], unknown labels, a
            keyframe outside frames ``1..n_frames`` (``frame_out_of_clip``), ``framesCount`` or
            ``duration`` of another video (``clip_mismatch``), or no keyframe at all (``empty_track``).
    """
    value = require(result, "value", where)
    _check_labels(value, "labels", allowed, where, required=False)
    _check_video(value, where, n_frames, fps)
    sequence = require(value, "sequence", f"{where}.value")
    if not isinstance(sequence, list):
        raise ExportProblem("bad_value", f"{where}.value.sequence must be a list, got {type(sequence).__name__}")
    by_frame: dict[int, Keyframe] = {}
    for i, item in enumerate(sequence):
        at = f"{where}.value.sequence[{i}]"
        frame = _integer(require(item, "frame", at), f"{at}.frame")
        auto = item.get("auto") is True
        if not 1 <= frame <= n_frames:
            if auto and frame > n_frames:
                continue  # interpolated past the mp4's end: derived, not annotated
            raise ExportProblem("frame_out_of_clip", f"{at}.frame {frame} is outside the clip's frames "
                                f"1..{n_frames}")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ExportProblem("bad_value", f"{at}.enabled must be true or false, got {enabled!r}")
        box = {k: number(require(item, k, at), f"{at}.{k}", 0.0, 100.0) for k in ("x", "y", "width", "height")}
        rotation = number(item.get("rotation", 0.0), f"{at}.rotation")
        kf = Keyframe(frame, enabled, box["x"], box["y"], box["width"], box["height"], rotation, auto)
        old = by_frame.get(frame)
        if old is None or old.auto or not auto:
            by_frame[frame] = kf
    if not by_frame:
        what = "is empty" if not sequence else f"holds only interpolated frames past the clip's {n_frames}"
        raise ExportProblem("empty_track", f"{where}: value.sequence {what}: the track has no keyframe, so the "
                            f"object it stands for is nowhere; draw it again in Label Studio or delete it")
    return [by_frame[f] for f in sorted(by_frame)]


def _lerp(a: Keyframe, b: Keyframe, frame: int) -> Keyframe:
    r = (frame - a.frame) / (b.frame - a.frame)

    def mix(p: float, q: float) -> float:
        return p + (q - p) * r

    return Keyframe(frame, True, mix(a.x, b.x), mix(a.y, b.y), mix(a.width, b.width), mix(a.height, b.height),
                    mix(a.rotation, b.rotation), True)


def _center(box: Keyframe, width_px: float, height_px: float, where: str) -> tuple[float, float]:
    if box.rotation % 360.0 == 0.0:
        cx, cy = box.x + box.width / 2.0, box.y + box.height / 2.0
    else:  # rotated clockwise (y down) about the top-left corner, in pixels
        theta = math.radians(box.rotation)
        dx, dy = box.width / 2.0 * width_px / 100.0, box.height / 2.0 * height_px / 100.0
        cx = box.x + (dx * math.cos(theta) - dy * math.sin(theta)) * 100.0 / width_px
        cy = box.y + (dx * math.sin(theta) + dy * math.cos(theta)) * 100.0 / height_px
    cx, cy = cx / 100.0, cy / 100.0
    for name, v in (("x", cx), ("y", cy)):
        if not -CENTER_SLACK <= v <= 1.0 + CENTER_SLACK:
            raise ExportProblem("out_of_range", f"{where}: the box center {name} at frame {box.frame} is "
                                f"{v * 100:.4g}% of the frame, outside [0, 100]")
    return min(max(cx, 0.0), 1.0), min(max(cy, 0.0), 1.0)


def track_centers(keyframes: Sequence[Keyframe], n_frames: int, width_px: float, height_px: float,
                  where: str = "track") -> list[Optional[tuple[float, float]]]:
    """The box center (x, y in [0, 1]) at every frame ``1..n_frames``, None where the track is off.

    Args:
        keyframes: from ``read_keyframes`` (sorted, one per frame).
        n_frames: frames of the mp4.
        width_px, height_px: frame size, used only for rotated boxes.
        where: message prefix.

    Returns:
        A list of length ``n_frames``; entry ``f - 1`` is frame ``f``.

    Raises:
        ExportProblem: ``out_of_range`` when a box center falls outside the frame.
    """
    frames = [k.frame for k in keyframes]
    out: list[Optional[tuple[float, float]]] = []
    for f in range(1, n_frames + 1):
        i = bisect_right(frames, f) - 1
        if i < 0:
            out.append(None)
            continue
        prev = keyframes[i]
        if prev.frame == f:
            box = prev  # shown at its own frame, even when disabled
        elif not prev.enabled:
            out.append(None)
            continue
        elif i + 1 < len(keyframes):
            box = _lerp(prev, keyframes[i + 1], f)
        else:
            box = prev  # held after the last keyframe
        out.append(_center(box, width_px, height_px, where))
    return out


# ----------------------------------------------------------------------------- timeline spans, relations


def read_spans(result: dict, where: str, n_frames: int,
               allowed: frozenset[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """A ``timelinelabels`` result: its labels and its frame ranges.

    Args:
        result: the result item.
        where: message prefix naming task, annotation and result.
        n_frames: frames of the task's mp4; ranges must lie within ``1..n_frames``.
        allowed: labels the config allows.

    Returns:
        ``(labels, [(start, end), ...])``: 1-based frames, inclusive, ``start <= end``.

    Raises:
        ExportProblem: missing or malformed ranges, a non-integer frame, ``end < start``, an unknown
            label, or a frame outside the clip (``frame_out_of_clip``).
    """
    value = require(result, "value", where)
    labels = _check_labels(value, "timelinelabels", allowed, where, required=True)
    ranges = require(value, "ranges", f"{where}.value")
    if not isinstance(ranges, list) or not ranges:
        raise ExportProblem("bad_value", f"{where}.value.ranges must be a non-empty list, got {ranges!r}")
    out = []
    for i, r in enumerate(ranges):
        at = f"{where}.value.ranges[{i}]"
        start = _integer(require(r, "start", at), f"{at}.start")
        end = _integer(require(r, "end", at), f"{at}.end")
        if end < start:
            raise ExportProblem("bad_value", f"{at}: end {end} is before start {start}")
        if start < 1 or end > n_frames:
            raise ExportProblem("frame_out_of_clip", f"{at}: frames {start}-{end} are outside the clip's frames "
                                f"1..{n_frames}")
        out.append((start, end))
    return labels, out


def read_relation(result: dict, where: str) -> tuple[str, str]:
    """A ``relation`` result: the ids of the two regions it links (``from_id``, ``to_id``).

    Raises:
        ExportProblem: a missing or non-text id.
    """
    ids = []
    for name in ("from_id", "to_id"):
        value = require(result, name, where)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ExportProblem("bad_value", f"{where}.{name} must be a region id, got {value!r}")
        ids.append(str(value))
    return ids[0], ids[1]
