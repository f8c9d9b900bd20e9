"""Label Studio export builders for the normalize tests, in the shapes
``../shared/reference/labelstudio.md`` documents.

Tasks are built with ``annotation.tasks`` exactly as ``annotation.push`` builds them (media under a
project folder of the media root, served as ``/data/local-files/?d=...``); results, annotations and
tasks carry the fields a real Label Studio 1.23 export has.
"""
from __future__ import annotations

from annotation.normalize import NormalizedExport, Origin, normalize_export
from annotation.tasks import (
    clip_video_task,
    multi_image_point_task,
    multi_image_qa_task,
    video_point_task,
    video_track_task,
)
from schemas.sampling import sample_times

FPS = 5.0  # the clip's constant-frame-rate mp4: 4 s -> 20 frames, frame f shown from (f - 1) / 5


def clip(key: str = "clip-1") -> dict:
    """A Clip record dict: 4 s of vid-1 from 10 s, sampled at 2 fps, with a 5 fps mp4."""
    times = sample_times(4.0)
    return {
        "key": key, "video_id": "vid-1", "start": 10.0, "end": 14.0, "timestamps": times,
        "frame_indices": [round(t * 30) for t in times], "frame_width": 640, "frame_height": 360,
        "max_frames": 128, "max_fps": 2.0, "split": "train", "mp4": f"mp4/{key}.mp4", "mp4_fps": FPS,
        "mp4_frame_indices": [i * 6 for i in range(20)],
    }


CLIPS = {"clip-1": clip("clip-1"), "clip-2": clip("clip-2")}
VIDEO = {"key": "vid-1", "source": "procedural", "duration": 60.0}
"""The fields of vid-1's ``videos.parquet`` row that tasks and records carry."""
ORIGIN = Origin("proj", 3)
"""The project and snapshot version the test exports stand for."""


def normalize(export, known_clips=None, config=None, **kwargs) -> NormalizedExport:
    """``normalize_export`` of a test export (``ORIGIN`` unless ``origin=`` is given)."""
    return normalize_export(export, known_clips, config, **{"origin": ORIGIN, **kwargs})


def media_url(rel: str) -> str:
    """How push refers to a file of the project's media folder (``proj``) under the media root."""
    return f"/data/local-files/?d=proj/{rel}"


def point_data(c: str = "clip-1", label: str = "red circle") -> dict:
    return video_point_task(CLIPS[c], "red circles", label, lambda i: media_url(f"frames/{c}/{i:03d}.jpg"),
                            video_duration=VIDEO["duration"], source=VIDEO["source"])


def track_data(c: str = "clip-1") -> dict:
    return video_track_task(CLIPS[c], "the running dog", "dog", media_url(f"video/{c}.mp4"), source=VIDEO["source"])


def video_data(kind: str, c: str = "clip-1") -> dict:
    """An ask_model_anything or caption task on the clip's mp4."""
    return clip_video_task(kind, CLIPS[c], media_url(f"video/{c}.mp4"))


def image_set_data() -> dict:
    images = [{"image_id": f"img-{i}", "width": 100, "height": 80} for i in range(3)]
    return multi_image_point_task({"key": "set-1", "images": images}, "cups", "cup",
                                  lambda i: media_url(f"images/set-1/{i}.jpg"))


def image_qa_data() -> dict:
    images = [{"image_id": f"img-{i}", "width": 100, "height": 80} for i in range(3)]
    return multi_image_qa_task({"key": "set-1", "images": images}, lambda i: media_url(f"images/set-1/{i}.png"))


def keypoint(rid: str, item_index: int, x: float, y: float, label: str = "object", to: str = "frames") -> dict:
    return {"id": rid, "type": "keypointlabels", "from_name": "points", "to_name": to, "origin": "manual",
            "original_width": 640, "original_height": 360, "image_rotation": 0, "item_index": item_index,
            "value": {"x": x, "y": y, "width": 0.6, "keypointlabels": [label]}}


def unsure(to: str = "frames") -> dict:
    return {"id": "u1", "type": "choices", "from_name": "unsure", "to_name": to, "value": {"choices": ["unsure"]}}


def kf(frame: int, x: float, y: float, w: float = 10.0, h: float = 20.0, enabled: bool = True) -> dict:
    """A keyframe as exported: note ``time`` is frame / fps, one frame late."""
    return {"frame": frame, "enabled": enabled, "rotation": 0, "x": x, "y": y, "width": w, "height": h,
            "time": frame / FPS}


def track(rid: str, sequence: list[dict]) -> dict:
    return {"id": rid, "type": "videorectangle", "from_name": "box", "to_name": "video", "origin": "manual",
            "value": {"framesCount": 20, "duration": 4.0, "labels": ["object"], "sequence": sequence}}


SEQ_A = [kf(1, 10.0, 20.0), kf(5, 30.0, 40.0, w=20.0), kf(9, 50.0, 40.0, enabled=False), kf(13, 10.0, 10.0)]
"""Keyframes of a track that is switched off at frame 9 and comes back at frame 13."""
SEQ_B = [kf(3, 70.0, 60.0), kf(20, 80.0, 60.0)]


def text(name: str, value: str, to: str = "video") -> dict:
    return {"id": f"t-{name}", "type": "textarea", "from_name": name, "to_name": to, "value": {"text": [value]}}


def span(rid: str, *ranges: tuple[int, int], label: str = "occluded") -> dict:
    """An ``occluded`` timeline region over 1-based frame ranges (inclusive)."""
    return {"id": rid, "type": "timelinelabels", "from_name": "occluded", "to_name": "video", "origin": "manual",
            "value": {"ranges": [{"start": a, "end": b} for a, b in ranges], "timelinelabels": [label]}}


def relation(a: str, b: str) -> dict:
    """A relation between two regions, as Label Studio exports it (no control, no id)."""
    return {"type": "relation", "from_id": a, "to_id": b, "direction": "right"}


def annotation(aid: int, result: list[dict], cancelled: bool = False, user: int = 1) -> dict:
    return {"id": aid, "completed_by": user, "result": result, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": "2025-01-01T12:00:00.000000Z", "updated_at": "2025-01-01T12:00:05.000000Z",
            "lead_time": 12.5, "prediction": {}, "result_count": len(result), "task": 0, "project": 1,
            "parent_prediction": None, "parent_annotation": None, "last_action": None}


def task(tid: int, data: dict, annotations: list[dict]) -> dict:
    return {"id": tid, "data": data, "annotations": annotations, "predictions": [], "drafts": [], "meta": {},
            "created_at": "2025-01-01T11:00:00.000000Z", "updated_at": "2025-01-01T12:00:05.000000Z",
            "inner_id": tid, "total_annotations": len(annotations), "cancelled_annotations": 0,
            "total_predictions": 0, "comment_count": 0, "unresolved_comment_count": 0, "project": 1,
            "updated_by": 1, "file_upload": None, "comment_authors": []}


def good_point_task(tid: int = 1, aid: int = 11) -> dict:
    return task(tid, point_data("clip-2", f"good {tid}"), [annotation(aid, [keypoint("k1", 0, 50.0, 50.0)])])
