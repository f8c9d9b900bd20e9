"""Build one record dict from one Label Studio annotation of one task, per project kind.

One job: given a task's ``data`` (the contract of ``annotation.tasks``) and one annotation's
``result`` list, produce the dataset record as a plain dict (validated later by
``annotation.normalize`` against ``schemas.records``), or raise ``ExportProblem``.

| kind               | dataset          | from the annotation                                           |
|--------------------|------------------|---------------------------------------------------------------|
| video_point        | VideoPoint       | keypoints -> ``data.timestamps[item_index]``, x, y; unsure    |
| video_track        | VideoTrack       | box tracks -> centers at every mp4 frame (``data.frame_times``) |
| multi_image_point  | MultiImagePoint  | keypoints -> image index, x, y; unsure                        |
| ask_model_anything | AskModelAnything | question, answer texts                                        |
| caption            | Cap              | caption text; quality rating -> ``annotation_score``          |

Fields the task data does not carry come from the known clip (``clip_start``/``clip_end``/size)
or from defaults named in ``TaskInfo``: ``source`` and VideoPoint ``category``; VideoPoint
``duration`` (of the whole source video) is ``data.video_duration``, else ``clip_end`` (the
smallest value the record allows). Track objects get ids 1..N by first visible frame, then (x, y)
there, then result id; one ``videorectangle`` result is one object; a track never visible in the
clip is left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from annotation.ls_results import (
    ExportProblem,
    allowed_labels,
    control_types,
    number,
    read_keyframes,
    read_keypoint,
    read_labels,
    read_rating,
    read_text,
    require,
    track_centers,
)

__all__ = ["KIND_DATASET", "VIDEO_KINDS", "TaskInfo", "build_record"]

KIND_DATASET: dict[str, str] = {
    "video_point": "VideoPoint", "video_track": "VideoTrack", "multi_image_point": "MultiImagePoint",
    "ask_model_anything": "AskModelAnything", "caption": "Cap",
}
VIDEO_KINDS = frozenset({"video_point", "video_track", "ask_model_anything", "caption"})
UNSURE = "unsure"


@dataclass(frozen=True)
class TaskInfo:
    """What a builder needs to know about the task (``data`` already completed from the clip)."""

    id: int
    kind: str
    data: dict[str, Any]
    source: str
    """``source`` of VideoPoint/VideoTrack records when ``data`` has none."""
    category: str
    """VideoPoint ``category`` when ``data`` has none."""

    @property
    def where(self) -> str:
        return f"task {self.id} data"


def _results(task: TaskInfo, annotation: dict, where: str) -> list[tuple[str, dict, str]]:
    """``(from_name, result, where)`` for each result, checked against the kind's config."""
    results = require(annotation, "result", where)
    if not isinstance(results, list):
        raise ExportProblem("bad_value", f"{where}.result must be a list, got {type(results).__name__}")
    types = control_types(task.kind)
    seen: set[tuple[str, str]] = set()
    out = []
    for i, r in enumerate(results):
        rid = r.get("id") if isinstance(r, dict) else None
        at = f"{where} result {rid!r}" if rid is not None else f"{where} result #{i}"
        name = require(r, "from_name", at)
        if not isinstance(name, str) or name not in types:
            raise ExportProblem("unknown_control", f"{at}: from_name {name!r} is not a control of the "
                                f"{task.kind} config (known: {sorted(types)})")
        kind = require(r, "type", at)
        if kind != types[name]:
            raise ExportProblem("bad_value", f"{at}: type {kind!r} does not match control {name!r} "
                                f"({types[name]!r})")
        if rid is not None:
            if (kind, str(rid)) in seen:
                raise ExportProblem("duplicate_id", f"{at}: result id {rid!r} appears twice in the annotation")
            seen.add((kind, str(rid)))
        out.append((name, r, at))
    return out


def _times(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ExportProblem("bad_value", f"{where} must be a non-empty list of seconds, got {value!r}")
    return [number(t, f"{where}[{i}]", 0.0) for i, t in enumerate(value)]


def _clip(task: TaskInfo) -> dict[str, Any]:
    d = task.data
    return {name: require(d, name, task.where) for name in ("video_id", "clip_id", "clip_start", "clip_end")}


def _unsure(name: str, r: dict, at: str, task: TaskInfo) -> bool:
    return UNSURE in read_labels(r, at, "choices", allowed_labels(task.kind, name))


def _video_point(task: TaskInfo, annotation: dict, key: str, where: str) -> tuple[dict, list[str]]:
    d = task.data
    times = _times(require(d, "timestamps", task.where), f"{task.where}.timestamps")
    points, unsure = [], False
    for name, r, at in _results(task, annotation, where):
        if name == "points":
            kp = read_keypoint(r, at, len(times), allowed_labels(task.kind, name))
            points.append({"time": times[kp.item_index], "x": kp.x, "y": kp.y})
        elif name == "unsure":
            unsure = unsure or _unsure(name, r, at, task)
    points.sort(key=lambda p: (p["time"], p["x"], p["y"]))
    clip = _clip(task)
    record = {
        "key": key, **clip, "source": d.get("source") or task.source,
        "duration": d.get("video_duration", clip["clip_end"]), "label": require(d, "label", task.where),
        "question": require(d, "query", task.where), "count": len(points), "points": points,
        "category": d.get("category") or task.category, "annotator_unsure": unsure,
    }
    return record, []


def _multi_image_point(task: TaskInfo, annotation: dict, key: str, where: str) -> tuple[dict, list[str]]:
    d = task.data
    image_ids = require(d, "image_ids", task.where)
    if not isinstance(image_ids, list):
        raise ExportProblem("bad_value", f"{task.where}.image_ids must be a list, got {image_ids!r}")
    points, unsure = [], False
    for name, r, at in _results(task, annotation, where):
        if name == "points":
            kp = read_keypoint(r, at, len(image_ids), allowed_labels(task.kind, name))
            points.append({"image_index": kp.item_index, "x": kp.x, "y": kp.y})
        elif name == "unsure":
            unsure = unsure or _unsure(name, r, at, task)
    points.sort(key=lambda p: (p["image_index"], p["x"], p["y"]))
    record = {
        "key": key, "image_set_id": require(d, "set_id", task.where), "image_ids": image_ids,
        "label": require(d, "label", task.where), "question": require(d, "query", task.where),
        "count": len(points), "points": points, "annotator_unsure": unsure,
    }
    return record, []


def _video_track(task: TaskInfo, annotation: dict, key: str, where: str) -> tuple[dict, list[str]]:
    d = task.data
    frame_times = _times(require(d, "frame_times", task.where), f"{task.where}.frame_times")
    n = len(frame_times)
    if "frame_count" in d and d["frame_count"] != n:
        raise ExportProblem("bad_value", f"{task.where}.frame_count is {d['frame_count']!r} but frame_times "
                            f"has {n} entries")
    width = number(require(d, "width", task.where), f"{task.where}.width", 1.0)
    height = number(require(d, "height", task.where), f"{task.where}.height", 1.0)
    found = []
    for name, r, at in _results(task, annotation, where):
        if name == "box":
            rid = str(require(r, "id", at))
            centers = track_centers(read_keyframes(r, at, n, allowed_labels(task.kind, name)), n, width, height, at)
            first = next((i for i, c in enumerate(centers) if c is not None), None)
            if first is not None:
                found.append(((first, *centers[first], rid), centers))
        else:
            read_labels(r, at, "labels", allowed_labels(task.kind, name))
    found.sort(key=lambda item: item[0])
    objects = [{"object_id": i + 1, "points": [None if c is None else {"x": c[0], "y": c[1]} for c in centers]}
               for i, (_, centers) in enumerate(found)]
    indices = d.get("frame_indices") or [0, n - 1]
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise ExportProblem("bad_value", f"{task.where}.frame_indices must be a list of frame indices, got {indices!r}")
    record = {
        "key": key, **_clip(task), "source": d.get("source") or task.source,
        "expression": require(d, "expression", task.where), "fps": require(d, "fps", task.where),
        "width": d["width"], "height": d["height"], "start_frame": indices[0], "end_frame": indices[-1],
        "timestamps": frame_times, "objects": objects,
    }
    return record, []


def _texts(task: TaskInfo, annotation: dict, where: str, wanted: tuple[str, ...]) -> tuple[dict[str, str], list]:
    texts: dict[str, str] = {}
    ratings = []
    for name, r, at in _results(task, annotation, where):
        if name in wanted:
            if name in texts:
                raise ExportProblem("bad_value", f"{at}: a second {name!r} text; the config allows one")
            texts[name] = read_text(r, at)
        elif control_types(task.kind)[name] == "rating":
            ratings.append(read_rating(r, at))
    for name in wanted:
        if name not in texts:
            raise ExportProblem("missing_field", f"{where} has no {name!r} text")
    return texts, ratings


def _ask_model_anything(task: TaskInfo, annotation: dict, key: str, where: str) -> tuple[dict, list[str]]:
    texts, _ = _texts(task, annotation, where, ("question", "answer"))
    return {"key": key, **_clip(task), "question": texts["question"], "answer": texts["answer"]}, []


def _caption(task: TaskInfo, annotation: dict, key: str, where: str) -> tuple[dict, list[str]]:
    texts, ratings = _texts(task, annotation, where, ("caption",))
    score = ratings[-1] if ratings else None
    return {"key": key, **_clip(task), "clip_caption": texts["caption"], "annotation_score": score}, []


_BUILDERS: dict[str, Callable[[TaskInfo, dict, str, str], tuple[dict, list[str]]]] = {
    "video_point": _video_point, "video_track": _video_track, "multi_image_point": _multi_image_point,
    "ask_model_anything": _ask_model_anything, "caption": _caption,
}


def build_record(task: TaskInfo, annotation: dict, key: str, where: str) -> tuple[dict, list[str]]:
    """One annotation of one task as a record dict of ``KIND_DATASET[task.kind]``.

    Args:
        task: the task (``data`` completed with the clip's fields where it lacked them).
        annotation: one item of the task's ``annotations`` (not cancelled).
        key: the record key to write.
        where: message prefix, e.g. ``task 3 annotation 7``.

    Returns:
        ``(record dict, review notes)``; a note sends the
        record to review instead of the dataset.

    Raises:
        ExportProblem: anything in the data or results that cannot become the record.
    """
    return _BUILDERS[task.kind](task, annotation, key, where)
