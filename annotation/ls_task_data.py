"""Check one exported task's ``data`` before any label is read from it: the push contract, read back.

One job: raise ``ExportProblem`` when a task's data (the contract of :mod:`annotation.tasks`, returned
unchanged by Label Studio) cannot be trusted to map labels back to the clip, so that no record is
built on it. ``annotation.ls_records`` calls :func:`check_task_data` for every annotation.

* ``missing_field`` / ``bad_value``: a field of the contract missing or of the wrong type; sample
  times not finite, negative or not increasing; frame indices not non-negative integers in order.
* ``inconsistent_task``: lists that must agree do not: ``frames``, ``timestamps`` and
  ``frame_indices`` (one per sampled frame); a track's ``frame_times``, ``frame_indices`` and
  ``frame_count``, and ``frame_times[i] == i / fps``; an image set's ``images``, ``image_ids``,
  ``widths`` and ``heights``.
* ``bad_media``: a media URL that does not name a file inside Label Studio's media root:
  ``/data/local-files/?d=<path>`` with an absolute path, ``..`` or no ``d``; anything that is not
  such a URL, Label Studio's own ``/data/upload/``, or an ``http(s)``/``s3``/``gs``/``azure-blob``
  URL (see the media notes in :mod:`annotation.push`).
* ``clip_mismatch``: the task is not about its clip: its media are another clip's (push names them
  ``video/{clip}.mp4``, ``frames/{clip}/{i:03d}.jpg``, ``images/{set}/{i}.{ext}``, so the file name
  says which clip and which frame it is), or, when the clip record is known, its video id, bounds,
  sample times, frame map or mp4 fps are not the clip's.
"""
from __future__ import annotations

import math
from pathlib import PurePosixPath
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from annotation.ls_results import ExportProblem, number, require
from schemas.sampling import TIME_EPS

__all__ = ["check_task_data", "media_path"]

LOCAL_FILES = "/data/local-files/"
UPLOADS = "/data/upload/"
URL_SCHEMES = frozenset({"http", "https", "s3", "gs", "azure-blob"})


def media_path(url: Any, where: str) -> str:
    """The file a media URL of a task names, relative to where it is served from.

    Args:
        url: a task's media URL.
        where: the field, for messages (``task 3 data.video``).

    Returns:
        ``<path>`` of ``/data/local-files/?d=<path>``, or the path part of a served URL.

    Raises:
        ExportProblem: ``bad_value`` for a non-string, ``bad_media`` for a URL outside the media root.
    """
    if not isinstance(url, str) or not url:
        raise ExportProblem("bad_value", f"{where} must be a media URL, got {url!r}")
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc and parts.path == LOCAL_FILES:
        found = parse_qs(parts.query).get("d", [])
        if len(found) != 1 or not found[0]:
            raise ExportProblem("bad_media", f"{where} {url!r} names no file (one d=<path> is needed)")
        path = found[0]
        if path.startswith("/"):
            raise ExportProblem("bad_media", f"{where} {url!r} points outside the media root (absolute path)")
    elif not parts.scheme and not parts.netloc and parts.path.startswith(UPLOADS):
        path = unquote(parts.path[len(UPLOADS):])
    elif parts.scheme in URL_SCHEMES and parts.netloc:
        path = unquote(parts.path).lstrip("/")
    else:
        raise ExportProblem("bad_media", f"{where} {url!r} is not a file Label Studio serves from its media root "
                            f"({LOCAL_FILES}?d=..., {UPLOADS}..., or an http(s)/s3/gs/azure-blob URL)")
    segments = path.split("/")
    if "\\" in path or "\x00" in path or any(s in ("", ".", "..") for s in segments):
        raise ExportProblem("bad_media", f"{where} {url!r} points outside the media root (path {path!r})")
    return path


def _list(data: dict, name: str, where: str) -> list:
    value = require(data, name, where)
    if not isinstance(value, list) or not value:
        raise ExportProblem("bad_value", f"{where}.{name} must be a non-empty list, got {value!r}")
    return value


def _times(data: dict, name: str, where: str) -> list[float]:
    times = [number(t, f"{where}.{name}[{i}]", 0.0) for i, t in enumerate(_list(data, name, where))]
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise ExportProblem("bad_value", f"{where}.{name} must increase strictly, but [{i}] {times[i]!r} "
                                f"follows {times[i - 1]!r}")
    return times


def _indices(data: dict, name: str, where: str) -> list[int]:
    values = _list(data, name, where)
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ExportProblem("bad_value", f"{where}.{name}[{i}] must be a frame index (an integer >= 0), got {v!r}")
        if i and v < values[i - 1]:
            raise ExportProblem("bad_value", f"{where}.{name} must not decrease, but [{i}] {v} follows {values[i - 1]}")
    return values


def _same_length(where: str, what: str, **lists: list) -> None:
    sizes = {name: len(v) for name, v in lists.items()}
    if len(set(sizes.values())) > 1:
        said = ", ".join(f"{name} has {n}" for name, n in sizes.items())
        raise ExportProblem("inconsistent_task", f"{where}: {said} entries; they must agree ({what})")


def _positive_fps(data: dict, where: str) -> float:
    fps = number(require(data, "fps", where), f"{where}.fps", 0.0)
    if fps <= 0.0:
        raise ExportProblem("bad_value", f"{where}.fps must be > 0, got {fps!r}")
    return fps


def _mismatch(where: str, message: str) -> ExportProblem:
    return ExportProblem("clip_mismatch", f"{where}: {message}; the labels would be mapped onto the wrong frames")


def _item_files(urls: list, owner: str, folder_kind: str, where: str) -> None:
    """Item ``i`` of ``urls`` must be file ``{owner}/{i}`` (any zero padding, any extension)."""
    for i, url in enumerate(urls):
        path = PurePosixPath(media_path(url, f"{where}[{i}]"))
        stem = path.stem
        if path.parent.name != owner or not stem.isdigit() or int(stem) != i:
            raise _mismatch(where, f"{where}[{i}] is {path.as_posix()!r}, not {folder_kind} {i} of {owner!r}")


def _video_file(data: dict, where: str, clip_id: str) -> None:
    path = PurePosixPath(media_path(require(data, "video", where), f"{where}.video"))
    if path.name != f"{clip_id}.mp4":
        raise _mismatch(where, f"{where}.video is {path.as_posix()!r}, not the mp4 of clip {clip_id!r} "
                        f"({clip_id}.mp4)")


def _same_values(where: str, name: str, got: list, clip_name: str, want: Any, exact: bool) -> None:
    if not isinstance(want, list):
        return
    same = len(got) == len(want) and all((a == b) if exact else abs(a - b) <= TIME_EPS for a, b in zip(got, want))
    if not same:
        raise _mismatch(where, f"{where}.{name} is not the clip's {clip_name}")


def _against_clip(kind: str, data: dict, clip: dict, where: str) -> None:
    for name, src in (("video_id", "video_id"), ("clip_start", "start"), ("clip_end", "end"),
                      ("width", "frame_width"), ("height", "frame_height")):
        got, want = data.get(name), clip.get(src)
        if got is None or want is None:
            continue
        if (got != want) if name == "video_id" else not (isinstance(got, (int, float)) and abs(got - want) <= TIME_EPS):
            raise _mismatch(where, f"{where}.{name} is {got!r} but clip {clip.get('key')!r} has {want!r}")
    if kind == "video_point":
        _same_values(where, "timestamps", data["timestamps"], "sample times", clip.get("timestamps"), False)
        _same_values(where, "frame_indices", data["frame_indices"], "frame_indices", clip.get("frame_indices"), True)
        return
    if kind in ("video_track", "ask_model_anything", "caption"):
        mp4_fps = clip.get("mp4_fps")
        if mp4_fps is not None and abs(data["fps"] - mp4_fps) > 1e-9 * max(1.0, mp4_fps):
            raise _mismatch(where, f"{where}.fps is {data['fps']:g} but the clip's mp4 runs at {mp4_fps:g} fps")
    if kind == "video_track":
        _same_values(where, "frame_indices", data["frame_indices"], "mp4 frame map (mp4_frame_indices)",
                     clip.get("mp4_frame_indices"), True)


def check_task_data(kind: str, data: dict, clip: Optional[dict], where: str) -> None:
    """Raise ``ExportProblem`` unless a task's data can be trusted (see the module docstring).

    Args:
        kind: the project kind (``data.kind``, already known to be one).
        data: the task's data, completed from the clip record where it lacked fields.
        clip: the clip record (a ``Clip`` dict) when known, else None.
        where: message prefix, ``task 3 data``.

    Raises:
        ExportProblem: ``missing_field``, ``bad_value``, ``inconsistent_task``, ``bad_media`` or
            ``clip_mismatch``.
    """
    if kind in ("multi_image_point", "multi_image_qa"):
        images, ids = _list(data, "images", where), _list(data, "image_ids", where)
        sizes = {n: _list(data, n, where) for n in ("widths", "heights") if n in data}
        _same_length(where, "one per image of the set", images=images, image_ids=ids, **sizes)
        _item_files(images, str(require(data, "set_id", where)), "image", f"{where}.images")
        return
    clip_id = require(data, "clip_id", where)
    if kind == "video_point":
        frames, times = _list(data, "frames", where), _times(data, "timestamps", where)
        _same_length(where, "one per sampled frame", frames=frames, timestamps=times,
                     frame_indices=_indices(data, "frame_indices", where))
        _item_files(frames, clip_id, "sampled frame", f"{where}.frames")
    else:
        fps = _positive_fps(data, where)
        _video_file(data, where, clip_id)
        if kind == "video_track":
            times = _times(data, "frame_times", where)
            indices = _indices(data, "frame_indices", where)
            _same_length(where, "one per frame of the mp4", frame_times=times, frame_indices=indices)
            count = data.get("frame_count", len(times))
            if isinstance(count, bool) or not isinstance(count, int):
                raise ExportProblem("bad_value", f"{where}.frame_count must be an integer, got {count!r}")
            if count != len(times):
                raise ExportProblem("inconsistent_task", f"{where}.frame_count is {count} but frame_times has "
                                    f"{len(times)} entries (one per frame of the mp4)")
            late = next((i for i, t in enumerate(times) if abs(t - i / fps) > TIME_EPS), None)
            if late is not None:
                raise ExportProblem("inconsistent_task", f"{where}.frame_times[{late}] is {times[late]!r}, but mp4 "
                                    f"frame {late + 1} at {fps:g} fps is shown from {late / fps!r} s")
    bad = next((k for k, v in data.items() if isinstance(v, float) and not math.isfinite(v)), None)
    if bad is not None:  # e.g. video_duration: a record would carry it
        raise ExportProblem("bad_value", f"{where}.{bad} must be a finite number, got {data[bad]!r}")
    if clip is not None:
        _against_clip(kind, data, clip, where)
