"""The task data this project sends to Label Studio, per project kind: one contract, both ways.

``push`` builds tasks with these functions and ``normalize`` reads the same keys back out of
exports (Label Studio returns a task's ``data`` unchanged). Every task carries what is needed to
map a label back to clip time without asking anything else: the clip id, the frame timestamps
and source frame indices, and for video tracks the constant-frame-rate mp4's fps and frame map.
VideoPoint and VideoTrack tasks also carry the source video's ``source`` (and VideoPoint its
``video_duration``), read by push from the ingest output's ``videos.parquet``: the values the
records hold.

Kinds, their label configs (``annotation/configs/``) and control names:

| kind               | config                  | controls (from_name -> to_name)                     |
|--------------------|-------------------------|-----------------------------------------------------|
| video_point        | video_point.xml         | points -> frames (keypointlabels, item_index); unsure |
| video_track        | video_track.xml         | box -> video (videorectangle); label; occluded      |
|                    |                         | (timelinelabels) linked to a box by a relation      |
| multi_image_point  | multi_image_point.xml   | points -> images (keypointlabels, item_index); unsure |
| multi_image_qa     | multi_image_qa.xml      | question_n, answer_n -> images (textarea), n = 1..3 |
| ask_model_anything | ask_model_anything.xml  | question, answer -> video (textarea)                |
| caption            | caption.xml             | caption -> video (textarea); quality (rating)       |
| review             | review.xml              | decision, edit_question, edit_answer, edit_explanation, note -> question |

The ``review`` kind's tasks and their normalization into review decisions are
:mod:`annotation.review`.
"""
from __future__ import annotations

from importlib import resources
from typing import Any, Callable, Sequence

__all__ = ["KINDS", "IMAGE_SET_KINDS", "SOURCE_KINDS", "label_config", "video_point_task", "video_track_task",
           "multi_image_point_task", "multi_image_qa_task", "clip_video_task", "task_key"]

KINDS: dict[str, str] = {
    "video_point": "video_point.xml",
    "video_track": "video_track.xml",
    "multi_image_point": "multi_image_point.xml",
    "multi_image_qa": "multi_image_qa.xml",
    "ask_model_anything": "ask_model_anything.xml",
    "caption": "caption.xml",
    "review": "review.xml",
}
IMAGE_SET_KINDS = frozenset({"multi_image_point", "multi_image_qa"})
"""Kinds whose tasks show an image set (the others show a clip)."""
SOURCE_KINDS = frozenset({"video_point", "video_track"})
"""Kinds whose records hold the source video's ``source`` (and, VideoPoint, its ``duration``)."""


def label_config(kind: str) -> str:
    """The Label Studio labeling config (XML) of a project kind.

    Raises:
        ValueError: an unknown kind (the message lists the known ones).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown project kind {kind!r}; known: {sorted(KINDS)}")
    return resources.files("annotation").joinpath("configs", KINDS[kind]).read_text(encoding="utf-8")


def task_key(data: dict[str, Any]) -> str:
    """The id that makes pushing idempotent: one task per (kind, clip or set, query)."""
    return data["task_key"]


def video_point_task(clip: dict[str, Any], query: str, label: str, frame_url: Callable[[int], str], *,
                     video_duration: float | None = None, source: str | None = None,
                     category: str | None = None) -> dict[str, Any]:
    """A VideoPoint task: all sampled frames of one clip, one query.

    Args:
        clip: a ``Clip`` record (dict).
        query: the instruction shown to annotators ("red circles").
        label: the dataset label written with the points ("red circle").
        frame_url: maps a frame position (0-based, as stored in the shard) to a URL Label Studio
            can load (e.g. ``/data/local-files/?d=...``).
        video_duration: the source video's duration (``VideoAsset.duration``: VideoPoint's
            ``duration``); None leaves it out (normalize then needs the videos table).
        source: the source video's ``source`` (``VideoAsset.source``); None leaves it out.
        category: VideoPoint's ``category`` (default ``object``).
    """
    n = len(clip["timestamps"])
    data = {
        "task_key": f"video_point:{clip['key']}:{label}",
        "kind": "video_point", "clip_id": clip["key"], "video_id": clip["video_id"], "query": query,
        "label": label, "frames": [frame_url(i) for i in range(n)], "timestamps": list(clip["timestamps"]),
        "frame_indices": list(clip["frame_indices"]), "width": clip["frame_width"],
        "height": clip["frame_height"], "clip_start": clip["start"], "clip_end": clip["end"],
        "category": category or "object",
    }
    if video_duration is not None:
        data["video_duration"] = float(video_duration)
    if source is not None:
        data["source"] = source
    return data


def video_track_task(clip: dict[str, Any], expression: str, label: str, video_url: str, *,
                     source: str | None = None) -> dict[str, Any]:
    """A VideoTrack task on the clip's constant-frame-rate mp4 (``clip["mp4"]``); ``source`` is the
    source video's (``VideoAsset.source``), left out when None.

    ``frame_times[f - 1]`` is the clip time of mp4 frame ``f`` (1-based, as Label Studio counts):
    ``(f - 1) / fps``; ``frame_indices[f - 1]`` the source frame shown there.

    Raises:
        ValueError: the clip has no constant-frame-rate mp4 (ingest with ``--cfr-mp4``).
    """
    if not clip.get("mp4"):
        raise ValueError(f"clip {clip['key']} has no constant-frame-rate mp4; ingest with --cfr-mp4")
    fps = float(clip["mp4_fps"])
    n = len(clip["mp4_frame_indices"])
    data = {
        "task_key": f"video_track:{clip['key']}:{label}",
        "kind": "video_track", "clip_id": clip["key"], "video_id": clip["video_id"], "expression": expression,
        "label": label, "video": video_url, "fps": fps, "frame_count": n,
        "frame_times": [i / fps for i in range(n)], "frame_indices": list(clip["mp4_frame_indices"]),
        "width": clip["frame_width"], "height": clip["frame_height"], "duration": clip["end"] - clip["start"],
        "clip_start": clip["start"], "clip_end": clip["end"],
    }
    if source is not None:
        data["source"] = source
    return data


def multi_image_point_task(image_set: dict[str, Any], query: str, label: str,
                           image_url: Callable[[int], str]) -> dict[str, Any]:
    """A MultiImagePoint task: every image of one set, one query."""
    ids = [i["image_id"] for i in image_set["images"]]
    return {
        "task_key": f"multi_image_point:{image_set['key']}:{label}",
        "kind": "multi_image_point", "set_id": image_set["key"], "query": query, "label": label,
        "images": [image_url(i) for i in range(len(ids))], "image_ids": ids,
        "widths": [i["width"] for i in image_set["images"]], "heights": [i["height"] for i in image_set["images"]],
    }


def multi_image_qa_task(image_set: dict[str, Any], image_url: Callable[[int], str]) -> dict[str, Any]:
    """A MultiImageQA task: every image of one set; the annotator writes question/answer pairs."""
    ids = [i["image_id"] for i in image_set["images"]]
    return {
        "task_key": f"multi_image_qa:{image_set['key']}",
        "kind": "multi_image_qa", "set_id": image_set["key"],
        "images": [image_url(i) for i in range(len(ids))], "image_ids": ids,
        "widths": [i["width"] for i in image_set["images"]], "heights": [i["height"] for i in image_set["images"]],
    }


def clip_video_task(kind: str, clip: dict[str, Any], video_url: str) -> dict[str, Any]:
    """An AskModelAnything or Cap task on a clip's mp4."""
    if kind not in ("ask_model_anything", "caption"):
        raise ValueError(f"clip_video_task builds ask_model_anything or caption tasks, not {kind!r}")
    if not clip.get("mp4"):
        raise ValueError(f"clip {clip['key']} has no constant-frame-rate mp4; ingest with --cfr-mp4")
    return {
        "task_key": f"{kind}:{clip['key']}", "kind": kind, "clip_id": clip["key"], "video_id": clip["video_id"],
        "video": video_url, "fps": float(clip["mp4_fps"]), "duration": clip["end"] - clip["start"],
        "clip_start": clip["start"], "clip_end": clip["end"],
    }


def frame_time(frame: int, frame_times: Sequence[float]) -> float:
    """Clip time of a Label Studio video frame number (1-based). Never use the export's ``time``.

    Raises:
        ValueError: a frame number outside the clip.
    """
    if not 1 <= frame <= len(frame_times):
        raise ValueError(f"frame {frame} is outside the clip's {len(frame_times)} frames")
    return float(frame_times[frame - 1])
