"""The structured data a clip's questions are made from: one JSON-able ``facts`` dict per clip.

One job: join a ``Clip`` record with the dataset records about it (``Cap`` captions,
``VideoPoint`` counts, ``VideoTrack`` tracks) and its subtitle cues into the facts every backend
gets (the template programs read them; the prompt files show them to a model as JSON). Only
what the records state is kept, and only where it is unambiguous:

* ``counts``: per VideoPoint label, the count and the point times; a label whose records
  disagree on the count, or that an annotator marked unsure, is left out;
* ``tracks``: per VideoTrack expression, resampled to the clip's stored sample times
  (``schemas.tracks.resample_track``), the times at which each object is visible (a point that
  is neither None nor marked occluded), and the first and last of them over all objects; an
  expression whose records disagree on those is left out;
* ``subtitles``: the clip's cues (seconds from the clip start), in order;
* ``captions``: the distinct ``clip_caption`` texts, sorted.

Times are the clip's stored ``Clip.timestamps`` (what a model sees), never recomputed.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

from schemas.tracks import is_occluded, resample_track

__all__ = ["clip_facts", "FACT_DATASETS"]

FACT_DATASETS = ("Cap", "VideoPoint", "VideoTrack")
"""The record datasets the video generators read."""


def _counts(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_label: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by_label[r["label"]].append(r)
    out = []
    for label, group in sorted(by_label.items()):
        if any(r.get("annotator_unsure") for r in group) or len({r["count"] for r in group}) != 1:
            continue
        best = min(group, key=lambda r: r["key"])
        out.append({"label": label, "count": int(best["count"]),
                    "point_times": sorted({round(float(p["time"]), 6) for p in best["points"]})})
    return out


def _visible_times(track: Mapping[str, Any]) -> dict[int, list[float]]:
    """object id -> the (resampled) times at which its point is there and not occluded."""
    out = {}
    for obj in track["objects"]:
        out[int(obj["object_id"])] = [round(float(t), 6) for t, p in zip(track["timestamps"], obj["points"])
                                      if p is not None and not is_occluded(p)]
    return out


def _tracks(records: Iterable[Mapping[str, Any]], times: list[float]) -> list[dict[str, Any]]:
    by_expr: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        try:
            resampled = resample_track(r, times)
        except ValueError:
            continue  # a track that cannot be put on the clip's times says nothing here
        visible = _visible_times(resampled)
        seen = sorted({t for ts in visible.values() for t in ts})
        by_expr[r["expression"]].append({
            "key": r["key"], "objects": [{"object_id": k, "visible_times": v} for k, v in sorted(visible.items())],
            "first": seen[0] if seen else None, "last": seen[-1] if seen else None})
    out = []
    for expression, group in sorted(by_expr.items()):
        if len({(g["first"], g["last"]) for g in group}) != 1:
            continue  # annotators disagree on when it is there
        best = min(group, key=lambda g: g["key"])
        out.append({"expression": expression, "objects": best["objects"], "first": best["first"],
                    "last": best["last"]})
    return out


def clip_facts(clip: Mapping[str, Any], records: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, Any]:
    """The facts of one clip.

    Args:
        clip: the ``Clip`` record (dict).
        records: dataset name -> that dataset's records about this clip (any of ``FACT_DATASETS``).

    Returns:
        ``{"clip_id", "video_id", "clip_start", "clip_end", "timestamps", "captions", "counts",
        "tracks", "subtitles"}`` (see the module docstring), JSON-able and deterministic.
    """
    times = [float(t) for t in clip["timestamps"]]
    captions = sorted({r["clip_caption"] for r in records.get("Cap", ()) if r.get("clip_caption")})
    cues = [{"start": float(c["start"]), "end": float(c["end"]), "text": c["text"]}
            for c in (clip.get("subtitles") or []) if c.get("text", "").strip()]
    return {
        "clip_id": clip["key"], "video_id": clip["video_id"], "clip_start": float(clip["start"]),
        "clip_end": float(clip["end"]), "timestamps": times, "captions": captions,
        "counts": _counts(records.get("VideoPoint", ())), "tracks": _tracks(records.get("VideoTrack", ()), times),
        "subtitles": cues,
    }
