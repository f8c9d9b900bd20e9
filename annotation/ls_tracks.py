"""VideoTrack objects from one annotation's box tracks, ``occluded`` timeline spans and relations.

One job: decide, per object and per mp4 frame, whether the object is visible (a point: the box
centre), occluded (there but hidden) or absent (out of view), from the results of the
``video_track`` config (``annotation/configs/video_track.xml``):

* a ``videorectangle`` result (control ``box``) is one object; where its box is on the object is
  visible at the box centre, where it is off the object is absent (``annotation.ls_results``
  reads the keyframes the way Label Studio draws them);
* a ``timelinelabels`` result of control ``occluded`` with the label ``occluded`` marks frames
  (1-based, inclusive, the box tracks' numbering) where an object is hidden. It is about the
  box track(s) it is linked to by ``relation`` results (either direction); with a single box
  track in the annotation an unlinked span is about that one. Within a span the object is
  occluded: with the box centre as its estimated position where the box is on, with no
  position where the box is off;
* an unlinked span in an annotation with two or more tracks, or a span linked only to other
  spans, says nothing a record can use: it is left out and the record goes to review with a
  note naming the span (never dropped silently). A relation that links a span to a region that
  is not a box track of the annotation is an error (``bad_value``); a relation that links no
  occluded span (two boxes, say) holds nothing a record uses and is returned in ``unused`` for
  its own failure record (``unused_relation``), the record is still made.

Snapshots made before the config had the timeline have no spans: every off frame is absent,
as VideoTrack v1 records read ("off = absent", see ``schemas.migrations``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from annotation.ls_results import (
    ExportProblem,
    allowed_labels,
    read_keyframes,
    read_labels,
    read_relation,
    read_spans,
    require,
    track_centers,
)

__all__ = ["RELATION", "OCCLUDED", "TrackObjects", "track_objects"]

RELATION = "<relation>"
"""The name ``annotation.ls_records`` gives ``relation`` results (they have no control)."""
OCCLUDED = "occluded"
"""The timeline control and its label."""


@dataclass
class TrackObjects:
    """The objects of one annotation (``TrackObject`` dicts, ids 1..N), review notes, and the
    relations that link no occluded span: ``(where, problem, result)``."""

    objects: list[dict]
    notes: list[str]
    unused: list[tuple[str, ExportProblem, dict]]


def _span_targets(spans: dict[str, tuple[list[tuple[int, int]], str]], boxes: list[str],
                  relations: list[tuple[str, str, str]]) -> tuple[dict[str, set[str]], list[str]]:
    """Which box tracks each span is about; notes for spans about none."""
    linked: dict[str, set[str]] = {sid: set() for sid in spans}
    for a, b, at in relations:
        for span, other in ((a, b), (b, a)):
            if span not in spans or other in spans:
                continue
            if other not in boxes:
                raise ExportProblem("bad_value", f"{at} links occluded span {span!r} to region {other!r}, which is "
                                    f"not a box track of this annotation (tracks: {sorted(boxes)})")
            linked[span].add(other)
    notes = []
    for sid, (ranges, at) in spans.items():
        if not linked[sid] and len(boxes) == 1:
            linked[sid] = {boxes[0]}
        elif not linked[sid]:
            frames = ", ".join(f"{s}-{e}" for s, e in ranges)
            notes.append(f"{at}: the occluded span at frames {frames} is linked to none of the {len(boxes)} box "
                         f"tracks, so the object it hides is unknown; link the span to its box (relation) in "
                         f"Label Studio. The record leaves it out")
    return linked, notes


def track_objects(results: list[tuple[str, dict, str]], kind: str, n_frames: int, fps: float, width: float,
                  height: float) -> TrackObjects:
    """Objects of one ``video_track`` annotation, each with a point, an occluded entry or None per frame.

    Args:
        results: ``(from_name, result, where)`` of the annotation, checked against the config;
            relations under the name :data:`RELATION`.
        kind: the project kind (for the config's labels).
        n_frames: frames of the task's mp4.
        fps: the mp4's frame rate.
        width, height: frame size in pixels.

    Returns:
        :class:`TrackObjects`: objects with ids 1..N by first visible frame, then (x, y) there,
        then result id; per frame ``{"x", "y", "occluded": False}``, ``{"x", "y" (None when the
        box is off), "occluded": True}`` or None.

    Raises:
        ExportProblem: a malformed track, span or relation (see ``annotation.ls_results``).
    """
    found: list[tuple[tuple, str, list]] = []
    spans: dict[str, tuple[list[tuple[int, int]], str]] = {}
    relations: list[tuple] = []
    unused: list[tuple[str, ExportProblem, dict]] = []
    for name, r, at in results:
        if name == "box":
            rid = str(require(r, "id", at))
            keyframes = read_keyframes(r, at, n_frames, fps, allowed_labels(kind, name))
            centers = track_centers(keyframes, n_frames, width, height, at)
            first = next(i for i, c in enumerate(centers) if c is not None)  # a keyframe shows its own frame
            found.append(((first, *centers[first], rid), rid, centers))
        elif name == OCCLUDED:
            labels, ranges = read_spans(r, at, n_frames, allowed_labels(kind, name))
            if OCCLUDED in labels:
                spans[str(require(r, "id", at))] = (ranges, at)
        elif name == RELATION:
            relations.append((*read_relation(r, at), at, r))
        else:
            read_labels(r, at, "labels", allowed_labels(kind, name))
    for a, b, at, r in relations:
        if a not in spans and b not in spans:
            unused.append((at, ExportProblem("unused_relation", f"{at}: a relation of {a!r} and {b!r}, which links no "
                                             f"occluded span to a box track; left out, the record is kept"), r))
    linked, notes = _span_targets(spans, [rid for _, rid, _ in found], [rel[:3] for rel in relations])
    hidden: dict[str, set[int]] = {}
    for sid, boxes in linked.items():
        frames = {f for s, e in spans[sid][0] for f in range(s, e + 1)}
        for rid in boxes:
            hidden.setdefault(rid, set()).update(frames)
    found.sort(key=lambda item: item[0])
    objects = []
    for n, (_, rid, centers) in enumerate(found):
        points: list[Optional[dict]] = []
        for f, c in enumerate(centers, start=1):
            if f in hidden.get(rid, ()):
                points.append({"x": c[0] if c else None, "y": c[1] if c else None, "occluded": True})
            else:
                points.append(None if c is None else {"x": c[0], "y": c[1], "occluded": False})
        objects.append({"object_id": n + 1, "points": points})
    return TrackObjects(objects, notes, unused)
