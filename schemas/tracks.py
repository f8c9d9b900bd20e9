"""VideoTrack records at given times, and as the entries the track formatter reads.

One job: put a track on the frames a model sees. A VideoTrack record from annotation holds every
frame of the clip's constant-rate mp4; Molmo 2 trains on the clip's stored sample times
(``Clip.timestamps``), so the record is resampled to them (``resample_track``: at each time, the
frame displayed then), and then turned into the ``{"time", "points"}`` entries of
``schemas.pointing.format_video_tracks`` (``track_entries``).

Occluded versus absent (``schemas.record_types.TrackPoint``): an entry of ``TrackObject.points`` is
a visible point, a point with ``occluded: true`` (there but hidden; its position may be None), or
None (absent, out of view). An occluded entry is left out of the per-frame text but counted as an
appearance by the start/end variant, where an occluded end is then dropped
(../shared/reference/molmo2-formats.md, "Tracks"); an absent one is neither. VideoTrack v1
records had only a point or None and read as "off = absent" (``schemas.migrations``).
"""
from __future__ import annotations

import copy
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from schemas.sampling import DEFAULT_MAX_FPS, DEFAULT_MAX_FRAMES, TIME_EPS, sample_times

__all__ = ["resample_track", "track_entries", "is_occluded"]


def _as_dict(record: Any) -> dict:
    return record.model_dump() if hasattr(record, "model_dump") else dict(record)


def resample_track(record: Any, times: Optional[Sequence[float]] = None, max_frames: int = DEFAULT_MAX_FRAMES,
                   max_fps: float = DEFAULT_MAX_FPS) -> dict:
    """A VideoTrack record at other times: at each time, the frame displayed then.

    The frame displayed at time t is the last frame whose time is <= t (within
    ``schemas.sampling.TIME_EPS``); its points (None = not visible) are copied with every key,
    an ``occluded`` flag included.

    Args:
        record: a VideoTrack record (model or dict).
        times: target times, strictly increasing, in clip seconds: pass the clip's stored
            ``Clip.timestamps``. None computes ``sample_times(clip_end - clip_start, max_frames,
            max_fps)``, for callers that have no clip record at hand.
        max_frames, max_fps: sampling limits used only when ``times`` is None.

    Returns:
        A new record dict (same key) with ``timestamps = times`` and each object's points
        picked; objects not visible at any of the times are kept, all None.

    Raises:
        ValueError: a time before the first frame, a record without frames, or times not
            strictly increasing.
    """
    record = _as_dict(record)
    frames = list(record["timestamps"])
    if times is None:
        times = sample_times(record["clip_end"] - record["clip_start"], max_frames, max_fps)
    times = [float(t) for t in times]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("resample times must be strictly increasing")
    if times and not frames:
        raise ValueError(f"track {record.get('key')!r} has no frames to resample")
    picks = []
    for t in times:
        i = bisect_right(frames, t + TIME_EPS) - 1
        if i < 0:
            raise ValueError(f"no frame is displayed at {t!r} s (first frame at {frames[0]!r} s)")
        picks.append(i)
    out = copy.deepcopy(record)
    out["timestamps"] = times
    for obj in out["objects"]:
        obj["points"] = [copy.deepcopy(obj["points"][i]) for i in picks]
    return out


def is_occluded(point: Any) -> bool:
    """Whether a track point is marked occluded (a mapping or object with a true ``occluded``)."""
    if point is None:
        return False
    flag = point.get("occluded", False) if isinstance(point, Mapping) else getattr(point, "occluded", False)
    return bool(flag)


def track_entries(record: Any) -> list[dict]:
    """The entries ``schemas.pointing.format_video_tracks`` reads, one per record timestamp.

    Args:
        record: a VideoTrack record (model or dict), already at the times to print.

    Returns:
        ``[{"time": t, "points": {object_id: {"point": (x, y), "occluded": bool}}}]``; a None
        point (not visible, absent) has no entry; an occluded one has ``occluded: True``.
    """
    record = _as_dict(record)
    entries = []
    for i, t in enumerate(record["timestamps"]):
        points = {}
        for obj in record["objects"]:
            p = obj["points"][i]
            if p is None:
                continue
            if is_occluded(p):  # its position is never printed and may be missing
                points[obj["object_id"]] = {"point": (p.get("x"), p.get("y")), "occluded": True}
            else:
                points[obj["object_id"]] = {"point": (p["x"], p["y"]), "occluded": False}
        entries.append({"time": t, "points": points})
    return entries
