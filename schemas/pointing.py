"""Molmo 2 point, track and count answer text ("html-v2"): render it and read it back.

One job: turn normalized point and track annotations into the exact answer strings Molmo 2 trains
on (the allenai/molmo2 ``UnifiedPointFormatter`` built for ``html-v2``), and read such strings,
plus the Molmo v1 (PixMo) ``<point x=".." y="..">`` form, back into numbers for metrics.
Reference: ``../shared/reference/molmo2-formats.md``, "Point, track and count text".

Rendering (byte for byte as the official formatter):
    ``round(1000.0 * v)`` (half to even on the binary value), printed ``%03d``; points of a group
    sorted by the integer pair (X, Y), numbered 1..N across groups; groups in the order given;
    times ``%0.1f``; ``alt="..."`` only when alt text is given; a count of 0 is ``There are none.``

Differences from the official code, on purpose (all are input checks, the text is the same):
    * inputs are already normalized to [0, 1] (the official code divides pixels by a ``scale``;
      pass ``x / width`` and the integers come out identical); values outside [0, 1], NaN and
      bools raise ``ValueError`` where the official code clamps (and, through an operator
      precedence slip, only when y is in range);
    * modes are only the four names in ``MODES`` (the official aliases ``point_count``,
      ``count_point``, ``pointing`` and ``None`` are refused); image indices must be ints;
    * a label containing ``<`` or alt text containing ``"`` is refused: it could not be read back.

Parsing is lenient, since model output is often malformed: parsers accept any ``str``, never
raise on one, skip malformed groups and points, and return an empty list when nothing is found.
A non-``str`` argument raises ``ValueError``.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "MODES", "NO_COUNT_TEXT", "NO_TRACKS_TEXT", "PointMark", "TrackMark",
    "format_video_points", "format_image_points", "format_multi_image_points",
    "format_video_tracks", "parse_points", "parse_tracks", "parse_count",
]

MODES = ("point", "point_then_count", "count_then_point", "count")
NO_COUNT_TEXT = "There are none."
NO_TRACKS_TEXT = "No tracks available."
GROUP_SEP = ";"  # html-v2; pretraining's html-v1 used a tab (the parsers accept both)


class PointMark(NamedTuple):
    """One point read from a ``<points>`` / ``<point>`` element."""

    group: float  # time in seconds (video), or 1-based image index as a float (1.0 = one image)
    point_id: int  # the id written in the text (1..N); v1 ``<point>`` gives 1, ``x2=`` gives 2
    x: float  # normalized to [0, 1]
    y: float  # normalized to [0, 1]
    label: str  # element text ("" when the closing tag is missing)
    alt: str | None  # the alt attribute, None when absent


class TrackMark(NamedTuple):
    """One visible object position read from a ``<tracks>`` element."""

    time: float  # seconds
    object_id: int  # persistent id as written (1..N)
    x: float  # normalized to [0, 1]
    y: float  # normalized to [0, 1]
    label: str
    alt: str | None


# ---------------------------------------------------------------- input checks


def _as_list(value: Any, what: str) -> list:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{what} must be a list, got {type(value).__name__}")
    return list(value)


def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def _scaled_point(point: Any, what: str) -> tuple[int, int]:
    """Check a normalized (x, y) and return the official integer pair (0..1000)."""
    pair = _as_list(point, what)
    if len(pair) != 2:
        raise ValueError(f"{what} must be an (x, y) pair, got {point!r}")
    out = []
    for axis, v in zip("xy", pair):
        v = _real(v, f"{what}.{axis}")
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{what}.{axis} = {v!r} is outside [0, 1] (normalized coordinates)")
        out.append(round(1000.0 * v))  # Python round: half to even on the binary value
    return out[0], out[1]


def _time(value: Any, what: str) -> float:
    t = _real(value, what)
    if t < 0:
        raise ValueError(f"{what} must be >= 0 seconds, got {t!r}")
    return t


def _check_common(label: Any, alt_text: Any, mode: str | None = "point") -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if not isinstance(label, str):
        raise ValueError(f"label must be a str, got {type(label).__name__}")
    if "<" in label:
        raise ValueError(f"label must not contain '<' (it could not be parsed back): {label!r}")
    if alt_text is not None:
        if not isinstance(alt_text, str):
            raise ValueError(f"alt_text must be a str or None, got {type(alt_text).__name__}")
        if '"' in alt_text:
            raise ValueError(f"alt_text must not contain '\"': {alt_text!r}")


# ---------------------------------------------------------------- rendering


def _fmt_time(t: float) -> str:
    return "%0.1f" % t


def _group_body(scaled: list[tuple[int, int]], first_id: int) -> str:
    # Sorted on the rounded integers, so the order always matches the printed values; equal
    # keys are equal tuples, so the stable sort of the official code is this plain sort.
    return " ".join(f"{i} {x:03d} {y:03d}" for i, (x, y) in enumerate(sorted(scaled), first_id))


def _element(tag: str, coords: str, label: str, alt_text: str | None) -> str:
    alt = "" if alt_text is None else f' alt="{alt_text}"'
    return f'<{tag}{alt} coords="{coords}">{label}</{tag}>'


def _answer(element: str, count: int, mode: str) -> str:
    if count == 0:
        return NO_COUNT_TEXT  # in every mode, never "0"
    if mode == "point_then_count":
        return f"Counting the {element} shows a total of {count}."
    if mode == "count_then_point":
        return f"There are {count} {element}."
    if mode == "count":
        return str(count)
    return element


def _grouped(prefixes: list[str], groups: list, label: str, alt_text: str | None, mode: str) -> str:
    parts, next_id = [], 1
    for i, (prefix, pts) in enumerate(zip(prefixes, groups)):
        pts = _as_list(pts, f"points[{i}]")
        scaled = [_scaled_point(p, f"points[{i}][{j}]") for j, p in enumerate(pts)]
        # An empty group still prints as "<prefix> " (official behaviour; the spec is silent).
        parts.append(f"{prefix} {_group_body(scaled, next_id)}")
        next_id += len(scaled)
    return _answer(_element("points", GROUP_SEP.join(parts), label, alt_text), next_id - 1, mode)


def format_video_points(
    timestamps: Sequence[float],
    points: Sequence[Sequence[tuple[float, float]]],
    label: str,
    mode: str,
    alt_text: str | None = None,
) -> str:
    """Render video pointing: one group per timestamp, ``"{t:.1f} id x y ..."``.

    Args:
        timestamps: seconds from clip start, one per group, emitted in this order (not sorted).
        points: ``points[i]`` is the list of normalized ``(x, y)`` seen at ``timestamps[i]``.
        label: element text, e.g. ``"penguin"``.
        mode: one of ``MODES``.
        alt_text: written as ``alt="..."`` when not None.

    Returns:
        The answer string, e.g. ``<points coords="0.5 1 100 200;2.0 2 550 600">penguin</points>``.

    Raises:
        ValueError: unknown mode, mismatched lengths, a coordinate outside [0, 1] or not finite,
            a negative or non-finite time, or a bad label / alt text.
    """
    _check_common(label, alt_text, mode)
    timestamps = _as_list(timestamps, "timestamps")
    points = _as_list(points, "points")
    if len(timestamps) != len(points):
        raise ValueError(f"timestamps has {len(timestamps)} entries but points has {len(points)}")
    prefixes = [_fmt_time(_time(t, f"timestamps[{i}]")) for i, t in enumerate(timestamps)]
    return _grouped(prefixes, points, label, alt_text, mode)


def format_image_points(
    points: Sequence[tuple[float, float]], label: str, mode: str, alt_text: str | None = None
) -> str:
    """Render single-image pointing; the group index is ``1``.

    Args:
        points: normalized ``(x, y)`` pairs.
        label, mode, alt_text: as in ``format_video_points``.

    Returns:
        The answer string, e.g. ``<points coords="1 1 156 104 2 469 417">dog</points>``.

    Raises:
        ValueError: as in ``format_video_points``.
    """
    _check_common(label, alt_text, mode)
    return _grouped(["1"], [_as_list(points, "points")], label, alt_text, mode)


def format_multi_image_points(
    image_indices: Sequence[int],
    points: Sequence[Sequence[tuple[float, float]]],
    label: str,
    mode: str,
    alt_text: str | None = None,
) -> str:
    """Render multi-image pointing; each group starts with its 1-based image number.

    Args:
        image_indices: 1-based image numbers (ints), one per group, emitted in this order.
        points: ``points[i]`` is the list of normalized ``(x, y)`` in image ``image_indices[i]``.
        label, mode, alt_text: as in ``format_video_points``.

    Returns:
        The answer string, e.g. ``<points coords="1 1 100 200;3 2 300 400">cup</points>``.

    Raises:
        ValueError: as in ``format_video_points``, or an image index that is not an int >= 1.
    """
    _check_common(label, alt_text, mode)
    image_indices = _as_list(image_indices, "image_indices")
    points = _as_list(points, "points")
    if len(image_indices) != len(points):
        raise ValueError(
            f"image_indices has {len(image_indices)} entries but points has {len(points)}")
    for i, index in enumerate(image_indices):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < 1:
            raise ValueError(f"image_indices[{i}] must be an int >= 1 (1-based), got {index!r}")
    return _grouped([str(int(i)) for i in image_indices], points, label, alt_text, mode)


def _track_frames(tracks: Any) -> list[tuple[float, dict[Hashable, tuple[int, int] | None]]]:
    """Check track entries; return ``(time, {object_id: (X, Y) or None when occluded})``."""
    frames = []
    for i, entry in enumerate(_as_list(tracks, "tracks")):
        if not isinstance(entry, Mapping) or "time" not in entry or "points" not in entry:
            raise ValueError(f"tracks[{i}] must be a mapping with 'time' and 'points': {entry!r}")
        if not isinstance(entry["points"], Mapping):
            raise ValueError(f"tracks[{i}]['points'] must map object id -> {{'point', 'occluded'}}")
        objs: dict[Hashable, tuple[int, int] | None] = {}
        for obj, info in entry["points"].items():
            what = f"tracks[{i}]['points'][{obj!r}]"
            if not isinstance(info, Mapping):
                raise ValueError(f"{what} must be a mapping with 'point' and optional 'occluded'")
            # Occluded positions are never printed, so they are not checked (they may be junk).
            if info.get("occluded", False):
                objs[obj] = None
            elif "point" not in info:
                raise ValueError(f"{what} is visible but has no 'point'")
            else:
                objs[obj] = _scaled_point(info["point"], f"{what}['point']")
        frames.append((_time(entry["time"], f"tracks[{i}]['time']"), objs))
    return frames


def _start_end_only(frames: list) -> list:
    """Keep each object's first and last entry by list position; merge entries at equal times."""
    first: dict[Hashable, int] = {}
    last: dict[Hashable, int] = {}
    for i, (_, objs) in enumerate(frames):
        for obj in objs:
            first.setdefault(obj, i)
            last[obj] = i
    merged: dict[float, dict] = {}
    for i, (t, objs) in enumerate(frames):
        kept = {obj: xy for obj, xy in objs.items() if i in (first[obj], last[obj])}
        if kept:
            merged.setdefault(t, {}).update(kept)
    # An occluded end (or start) entry stays None here and is dropped below: no fallback.
    return list(merged.items())


def format_video_tracks(
    tracks: Sequence[Mapping[str, Any]],
    label: str,
    start_end_only: bool = False,
    alt_text: str | None = None,
) -> str:
    """Render tracks: ``"{t:.1f} id x y ..."`` per frame, ids persistent across frames.

    Frames are sorted by time (stable). In each frame the visible points are sorted by (X, Y);
    an object gets the next id the first time it is visible; the frame's points are then printed
    in id order. Occluded points are left out, and so are frames with nothing visible.

    Args:
        tracks: entries ``{"time": t, "points": {object_id: {"point": (x, y), "occluded": bool}}}``
            with normalized coordinates; ``occluded`` defaults to False.
        label: element text, e.g. ``"person"``.
        start_end_only: keep only each object's first and last entry by position in ``tracks``
            (occluded entries count; an occluded end is then dropped, with no fallback), and
            merge entries that share a time.
        alt_text: written as ``alt="..."`` when not None.

    Returns:
        ``<tracks coords="0.0 1 078 417 2 156 208;0.5 1 094 396">person</tracks>``;
        ``"No tracks available."`` when no object is visible in any frame (including an empty
        ``tracks``). The official formatter returns ``""`` when entries exist but none is visible;
        an empty training target teaches nothing, so this follows the reference
        (``../shared/reference/molmo2-formats.md``) instead.

    Raises:
        ValueError: a malformed entry, a negative or non-finite time, a visible coordinate outside
            [0, 1] or not finite, or a bad label / alt text.
    """
    _check_common(label, alt_text)
    frames = _track_frames(tracks)
    if not frames:
        return NO_TRACKS_TEXT
    if start_end_only:
        frames = _start_end_only(frames)
    ids: dict[Hashable, int] = {}
    parts = []
    for t, objs in sorted(frames, key=lambda f: f[0]):
        visible = [(xy, obj) for obj, xy in objs.items() if xy is not None]
        visible.sort(key=lambda v: v[0])  # stable: ties keep the entry's order
        if not visible:
            continue
        numbered = []
        for xy, obj in visible:
            ids.setdefault(obj, len(ids) + 1)
            numbered.append((ids[obj], xy))
        numbered.sort(key=lambda n: n[0])
        body = " ".join(f"{i} {x:03d} {y:03d}" for i, (x, y) in numbered)
        parts.append(f"{_fmt_time(t)} {body}")
    if not parts:
        return NO_TRACKS_TEXT  # deliberate: the official code returns "" here (see docstring)
    return _element("tracks", GROUP_SEP.join(parts), label, alt_text)


# ---------------------------------------------------------------- parsing

_ELEMENT_RE = re.compile(
    r'<(points|point|tracks)((?:\s+[A-Za-z_][\w-]*\s*=\s*"[^"]*")*)\s*/?>(?:([^<]*)</\1\s*>)?'
)
_ATTR_RE = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*"([^"]*)"')
_GROUP_SPLIT_RE = re.compile(r"[;\t:,]")  # ";" html-v2, tab html-v1; ":" and "," as official
_GROUP_HEAD_RE = re.compile(r"\s*(\d{1,15}(?:\.\d{0,15})?)(?=\s|$)")
_TRIPLE_RE = re.compile(r"(?<!\S)(\d{1,9})\s+(\d{3,4})\s+(\d{3,4})(?!\S)")
_V1_KEY_RE = re.compile(r"([xy])(\d{0,9})")
_V1_NUM_RE = re.compile(r"\s*(\d{1,6}(?:\.\d{1,12})?)\s*")


def _elements(text: Any, tags: tuple[str, ...]):
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    for m in _ELEMENT_RE.finditer(text):
        if m.group(1) in tags:
            yield m.group(1), dict(_ATTR_RE.findall(m.group(2))), m.group(3) or ""


def _coord_groups(coords: str):
    """Yield ``(group_value, [(id, x, y), ...])`` from a coords attribute, skipping junk."""
    for segment in _GROUP_SPLIT_RE.split(coords):
        head = _GROUP_HEAD_RE.match(segment)
        if head is None:
            continue
        triples = []
        for m in _TRIPLE_RE.finditer(segment, head.end()):
            x, y = int(m.group(2)), int(m.group(3))
            if x <= 1000 and y <= 1000:
                triples.append((int(m.group(1)), x / 1000.0, y / 1000.0))
        yield float(head.group(1)), triples


def _v1_points(attrs: dict[str, str]) -> list[tuple[int, float, float]]:
    """Points of a v1 element: ``x=/y=`` (id 1) or ``x1=/y1=, x2=/y2=, ...``, 0-100 scale."""
    values: dict[str, dict[str, float]] = {"x": {}, "y": {}}
    for key, raw in attrs.items():
        k = _V1_KEY_RE.fullmatch(key)
        if k is None:
            continue
        num = _V1_NUM_RE.fullmatch(raw)
        if num is not None:
            values[k.group(1)][k.group(2)] = float(num.group(1))
    out = []
    for suffix in sorted(values["x"].keys() & values["y"].keys(), key=lambda s: int(s or "1")):
        x, y = values["x"][suffix], values["y"][suffix]
        if x <= 100.0 and y <= 100.0:
            out.append((int(suffix or "1"), x / 100.0, y / 100.0))
    return out


def parse_points(text: str) -> list[PointMark]:
    """Read every point of every ``<points>`` / ``<point>`` element, in text order.

    Reads html-v2 (``<points coords="t id x y ...;...">``, 0-1000, groups split by ``;`` or a
    tab) and Molmo v1 (``<point x="10.5" y="20.3" alt="dog">dog</point>`` and
    ``<points x1=".." y1=".." x2=".." ...>``, 0-100; these get group ``1.0``). ``<tracks>``
    elements are not read here (see ``parse_tracks``). Malformed groups and points, and
    coordinates above 1000 (v1: above 100), are skipped.

    Args:
        text: a model answer or training target.

    Returns:
        ``PointMark(group, point_id, x, y, label, alt)`` per point, x and y in [0, 1];
        ``[]`` when nothing is found.

    Raises:
        ValueError: only when ``text`` is not a str.
    """
    out: list[PointMark] = []
    for _, attrs, label in _elements(text, ("points", "point")):
        alt = attrs.get("alt")
        if "coords" in attrs:
            for group, triples in _coord_groups(attrs["coords"]):
                out.extend(PointMark(group, i, x, y, label, alt) for i, x, y in triples)
        else:
            out.extend(PointMark(1.0, i, x, y, label, alt) for i, x, y in _v1_points(attrs))
    return out


def parse_tracks(text: str) -> list[TrackMark]:
    """Read every entry of every ``<tracks coords="...">`` element, in text order.

    Molmo v1 had no ``<tracks>`` element, so only html-v2 (and the tab-separated html-v1) coords
    are read. Every entry is kept, also when a group repeats a time or an ``(time, object_id)``
    pair (``"0.2 1 612 964;0.2 2 403 253;0.2 1 634 1000 3 824 107"`` gives four entries, as the
    official ``extract_multi_image_points`` does; its ``extract_tracks`` then drops the repeated
    id): what to make of a duplicate is the metric's call (``schemas.metrics.score_track_text``
    counts it as a prediction). Malformed groups and points are skipped.

    Args:
        text: a model answer or training target.

    Returns:
        ``TrackMark(time, object_id, x, y, label, alt)`` per visible position, x and y in [0, 1];
        ``[]`` when nothing is found (including ``"No tracks available."``).

    Raises:
        ValueError: only when ``text`` is not a str.
    """
    out: list[TrackMark] = []
    for _, attrs, label in _elements(text, ("tracks",)):
        for t, triples in _coord_groups(attrs.get("coords", "")):
            out.extend(TrackMark(t, i, x, y, label, attrs.get("alt")) for i, x, y in triples)
    return out


_COUNT_RES = (
    re.compile(r"\btotal of\s+(\d+)", re.IGNORECASE),  # "... shows a total of 3."
    re.compile(r"\btotal number of\b[^\n]*?\bis:?\s*(\d+)", re.IGNORECASE),  # legacy v1 wording
    re.compile(r"\bthere (?:are|is)\s+(\d+)", re.IGNORECASE),  # "There are 3 <points ...>."
    re.compile(r"^\s*(\d+)\s*\.?\s*$"),  # count mode: a bare integer
)
_NONE_RE = re.compile(r"\bnone\b", re.IGNORECASE)  # "There are none." and a bare "none"


def parse_count(text: str) -> int | None:
    """Read the count from a counting answer, as the counting metric does.

    Tried in order: ``"a total of N"``, ``"total number of ... is: N"``, ``"There are N"``,
    a bare integer (the whole answer), then ``"There are none."`` / ``"none"`` = 0. Point and
    track elements are cut out first, so their labels and coordinates are never read as a count.

    Args:
        text: a model answer or training target.

    Returns:
        The count, or None when no count can be read.

    Raises:
        ValueError: only when ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    text = _ELEMENT_RE.sub(" ", text)  # a label or coords may hold digits or "none"
    for pattern in _COUNT_RES:
        m = pattern.search(text)
        if m is not None:
            try:
                return int(m.group(1))
            except ValueError:  # more digits than int() accepts: not a count
                return None
    return 0 if _NONE_RE.search(text) else None
