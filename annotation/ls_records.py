"""Build one record dict from one Label Studio annotation of one task, per project kind.

One job: given a task's ``data`` (the contract of ``annotation.tasks``) and one annotation's
``result`` list, produce the dataset record as a plain dict (validated later by
``annotation.normalize`` against ``schemas.records``, which also adds its ``provenance``), or
raise ``ExportProblem``.

| kind               | dataset          | from the annotation                                           |
|--------------------|------------------|---------------------------------------------------------------|
| video_point        | VideoPoint       | keypoints -> ``data.timestamps[item_index]``, x, y; unsure    |
| video_track        | VideoTrack       | box tracks -> centers at every mp4 frame (``data.frame_times``) |
|                    |                  | with occluded spans and relations (``annotation.ls_tracks``)  |
| multi_image_point  | MultiImagePoint  | keypoints -> image index, x, y; unsure                        |
| multi_image_qa     | MultiImageQA     | question_n / answer_n texts -> ``qa_pairs`` in n order        |
| ask_model_anything | AskModelAnything | question, answer texts                                        |
| caption            | Cap              | caption text; quality rating -> ``annotation_score``          |

Fields the task data does not carry come from the known clip (``clip_start``/``clip_end``/size)
and the known source video (``source``, VideoPoint ``duration``: ``annotation.normalize`` puts
the video record's values into the data), else from ``TaskInfo`` (``source`` when configured,
VideoPoint ``category``). A VideoPoint or VideoTrack whose source (or VideoPoint whose source
video duration) is known from nowhere is a ``missing_field`` problem: no placeholder is written.
Track objects get ids 1..N by first visible frame, then (x, y) there, then result id; one
``videorectangle`` result is one object (a track with no keyframe is an ``empty_track`` problem,
never left out silently).

Before any label is read the task data is checked (:func:`annotation.ls_task_data.check_task_data`).
A result of a control the project's config does not have, writing a result type the config never
writes (a ``timelinelabels`` region in a point project, a ``relation`` outside ``video_track``),
carries nothing a record holds: it is returned in ``Built.skipped`` for its own failure record
and the other results still make the record. An unknown control writing a type the config uses
(a misspelled ``points``) may hold labels the record needs, so it fails the annotation. A
VideoPoint whose points lie off Molmo 2's 0.5 s grid (a clip pushed before push checked the
grid) gets a review note: held for a person, never dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from annotation.ls_results import (
    ExportProblem,
    allowed_labels,
    control_target,
    control_types,
    number,
    read_keypoint,
    read_labels,
    read_rating,
    read_text,
    require,
)
from annotation.ls_task_data import check_task_data
from annotation.ls_tracks import RELATION, track_objects
from schemas.records import point_time_on_grid

__all__ = ["KIND_DATASET", "VIDEO_KINDS", "TaskInfo", "Built", "Skipped", "build_record"]

KIND_DATASET: dict[str, str] = {
    "video_point": "VideoPoint", "video_track": "VideoTrack", "multi_image_point": "MultiImagePoint",
    "multi_image_qa": "MultiImageQA", "ask_model_anything": "AskModelAnything", "caption": "Cap",
}
VIDEO_KINDS = frozenset({"video_point", "video_track", "ask_model_anything", "caption"})
UNSURE = "unsure"
QA_SLOTS = 3
"""Question/answer pairs a ``multi_image_qa`` task holds (``question_1``/``answer_1`` ... ``_3``)."""
RELATION_KINDS = frozenset({"video_track"})
"""Kinds whose ``relation`` results mean something (an occluded span linked to its box track)."""


@dataclass(frozen=True)
class TaskInfo:
    """What a builder needs to know about the task (``data`` already completed from the clip)."""

    id: int
    kind: str
    data: dict[str, Any]
    source: Optional[str]
    """``source`` of VideoPoint/VideoTrack records when neither ``data`` nor the video record has
    one; None: such a record is a ``missing_field`` problem."""
    category: str
    """VideoPoint ``category`` when ``data`` has none."""
    clip: Optional[dict] = None
    """The clip record (a ``Clip`` dict) when the caller knows it: the task data is checked against it."""

    @property
    def where(self) -> str:
        return f"task {self.id} data"


@dataclass(frozen=True)
class Skipped:
    """A result left out of the record: where it is, why, and the result itself."""

    where: str
    problem: ExportProblem
    result: Any


@dataclass
class Built:
    """What one annotation gave: the record dict, review notes (a note sends the record to review
    instead of the dataset) and results left out (each becomes its own failure record)."""

    record: dict
    notes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


Results = list[tuple[str, dict, str]]
"""``(from_name, result, where)`` of the annotation's results, checked against the config."""


def _results(task: TaskInfo, annotation: dict, where: str) -> tuple[Results, list[Skipped]]:
    """``(from_name, result, where)`` for each result, checked against the kind's config, and the
    results of controls the config does not know that hold nothing a record needs."""
    results = require(annotation, "result", where)
    if not isinstance(results, list):
        raise ExportProblem("bad_value", f"{where}.result must be a list, got {type(results).__name__}")
    types = control_types(task.kind)
    seen: set[tuple[str, str]] = set()
    out, skipped = [], []
    for i, r in enumerate(results):
        rid = r.get("id") if isinstance(r, dict) else None
        at = f"{where} result {rid!r}" if rid is not None else f"{where} result #{i}"
        name = r.get("from_name") if isinstance(r, dict) else None
        rtype = r.get("type") if isinstance(r, dict) else None
        if rtype == "relation" and task.kind in RELATION_KINDS:
            out.append((RELATION, r, at))
            continue
        if not (isinstance(name, str) and name in types) and isinstance(rtype, str) and rtype not in types.values():
            skipped.append(Skipped(at, ExportProblem(
                "unknown_control", f"{at}: a {rtype!r} result of control {name!r}, which the {task.kind} config "
                f"does not have (known: {sorted(types)}); left out, the other results are kept"), r))
            continue
        name = require(r, "from_name", at)
        if not isinstance(name, str) or name not in types:
            raise ExportProblem("unknown_control", f"{at}: from_name {name!r} is not a control of the "
                                f"{task.kind} config (known: {sorted(types)}), and its {rtype!r} result may "
                                f"hold labels the record needs")
        to_name = require(r, "to_name", at)
        if to_name != control_target(task.kind, name):
            raise ExportProblem("bad_value", f"{at}: to_name {to_name!r} is not the object control {name!r} labels "
                                f"({control_target(task.kind, name)!r})")
        kind = require(r, "type", at)
        if kind != types[name]:
            raise ExportProblem("bad_value", f"{at}: type {kind!r} does not match control {name!r} "
                                f"({types[name]!r})")
        if rid is not None:
            if (kind, str(rid)) in seen:
                raise ExportProblem("duplicate_id", f"{at}: result id {rid!r} appears twice in the annotation")
            seen.add((kind, str(rid)))
        out.append((name, r, at))
    return out, skipped


def _clip(task: TaskInfo) -> dict[str, Any]:
    d = task.data
    return {name: require(d, name, task.where) for name in ("video_id", "clip_id", "clip_start", "clip_end")}


def _source(task: TaskInfo) -> str:
    found = task.data.get("source") or task.source
    if not found:
        raise ExportProblem("missing_field", f"{task.where}.source is missing and the source of video "
                            f"{task.data.get('video_id')!r} is not known: normalize with the ingest output "
                            f"(annotate normalize --ingest), whose videos.parquet has it")
    return found


def _unsure(name: str, r: dict, at: str, task: TaskInfo) -> bool:
    return UNSURE in read_labels(r, at, "choices", allowed_labels(task.kind, name))


def _off_grid_note(times: list[float], points: list[dict], clip: dict) -> list[str]:
    duration = clip["clip_end"] - clip["clip_start"]
    off = sorted({p["time"] for p in points if not point_time_on_grid(p["time"], duration)})
    if not off:
        return []
    step = times[1] - times[0] if len(times) > 1 else 0.0
    return [f"points at {[round(t, 4) for t in off]} s are off Molmo 2's 0.5 s grid, which VideoPoint needs: clip "
            f"{clip['clip_id']!r} ({duration:g} s) was sampled every {step:.4g} s. Re-ingest it at 2 fps (clips up "
            f"to 63.5 s: --window 63; sampling.max_fps 2, max_frames 128) and push it again; 'annotate push' "
            f"refuses such clips before anyone labels them"]


def _video_point(task: TaskInfo, results: Results, key: str, where: str) -> Built:
    d = task.data
    times = [float(t) for t in d["timestamps"]]  # checked by check_task_data
    points, unsure = [], False
    for name, r, at in results:
        if name == "points":
            kp = read_keypoint(r, at, len(times), allowed_labels(task.kind, name))
            points.append({"time": times[kp.item_index], "x": kp.x, "y": kp.y})
        elif name == "unsure":
            unsure = unsure or _unsure(name, r, at, task)
    points.sort(key=lambda p: (p["time"], p["x"], p["y"]))
    clip = _clip(task)
    record = {
        "key": key, **clip, "source": _source(task),
        "duration": require(d, "video_duration", task.where), "label": require(d, "label", task.where),
        "question": require(d, "query", task.where), "count": len(points), "points": points,
        "category": d.get("category") or task.category, "annotator_unsure": unsure,
    }
    return Built(record, _off_grid_note(times, points, clip))


def _multi_image_point(task: TaskInfo, results: Results, key: str, where: str) -> Built:
    d = task.data
    image_ids = d["image_ids"]  # checked by check_task_data
    points, unsure = [], False
    for name, r, at in results:
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
    return Built(record)


def _video_track(task: TaskInfo, results: Results, key: str, where: str) -> Built:
    d = task.data
    frame_times, indices, fps = d["frame_times"], d["frame_indices"], d["fps"]  # checked by check_task_data
    width = number(require(d, "width", task.where), f"{task.where}.width", 1.0)
    height = number(require(d, "height", task.where), f"{task.where}.height", 1.0)
    tracks = track_objects(results, task.kind, len(frame_times), fps, width, height)
    record = {
        "key": key, **_clip(task), "source": _source(task),
        "expression": require(d, "expression", task.where), "fps": fps,
        "width": d["width"], "height": d["height"], "start_frame": indices[0], "end_frame": indices[-1],
        "timestamps": [float(t) for t in frame_times], "objects": tracks.objects,
    }
    return Built(record, tracks.notes, [Skipped(at, problem, r) for at, problem, r in tracks.unused])


def _texts(task: TaskInfo, results: Results, where: str, wanted: tuple[str, ...]) -> tuple[dict[str, str], list]:
    texts: dict[str, str] = {}
    ratings = []
    for name, r, at in results:
        if name in wanted:
            if name in texts:
                raise ExportProblem("bad_value", f"{at}: a second {name!r} text; the config allows one")
            texts[name] = read_text(r, at)
        elif control_types(task.kind)[name] == "rating":
            ratings.append(read_rating(r, at, task.kind, name))
    for name in wanted:
        if name not in texts:
            raise ExportProblem("missing_field", f"{where} has no {name!r} text")
    return texts, ratings


def _multi_image_qa(task: TaskInfo, results: Results, key: str, where: str) -> Built:
    names = tuple(f"{side}_{n}" for n in range(1, QA_SLOTS + 1) for side in ("question", "answer"))
    texts: dict[str, str] = {}
    for name, r, at in results:
        if name in names:
            if name in texts:
                raise ExportProblem("bad_value", f"{at}: a second {name!r} text; the config allows one")
            texts[name] = read_text(r, at)
    pairs = []
    for n in range(1, QA_SLOTS + 1):
        q, a = texts.get(f"question_{n}"), texts.get(f"answer_{n}")
        if (q is None) != (a is None):
            raise ExportProblem("missing_field", f"{where}: pair {n} has a{'n answer' if q is None else ' question'} "
                                f"but no {'question' if q is None else 'answer'} (question_{n} / answer_{n})")
        if q is not None:
            pairs.append({"question": q, "answer": a})
    if not pairs:
        raise ExportProblem("missing_field", f"{where} has no question/answer pair")
    d = task.data
    return Built({"key": key, "image_set_id": require(d, "set_id", task.where), "image_ids": d["image_ids"],
                  "qa_pairs": pairs})


def _ask_model_anything(task: TaskInfo, results: Results, key: str, where: str) -> Built:
    texts, _ = _texts(task, results, where, ("question", "answer"))
    return Built({"key": key, **_clip(task), "question": texts["question"], "answer": texts["answer"]})


def _caption(task: TaskInfo, results: Results, key: str, where: str) -> Built:
    texts, ratings = _texts(task, results, where, ("caption",))
    score = ratings[-1] if ratings else None
    return Built({"key": key, **_clip(task), "clip_caption": texts["caption"], "annotation_score": score})


_BUILDERS: dict[str, Callable[[TaskInfo, Results, str, str], Built]] = {
    "video_point": _video_point, "video_track": _video_track, "multi_image_point": _multi_image_point,
    "multi_image_qa": _multi_image_qa, "ask_model_anything": _ask_model_anything, "caption": _caption,
}


def build_record(task: TaskInfo, annotation: dict, key: str, where: str) -> Built:
    """One annotation of one task as a record dict of ``KIND_DATASET[task.kind]``.

    Args:
        task: the task (``data`` completed with the clip's fields where it lacked them).
        annotation: one item of the task's ``annotations`` (not cancelled).
        key: the record key to write.
        where: message prefix, e.g. ``task 3 annotation 7``.

    Returns:
        A :class:`Built`: the record dict, review notes, and results left out of it.

    Raises:
        ExportProblem: anything in the data or results that cannot become the record.
    """
    check_task_data(task.kind, task.data, task.clip, task.where)
    results, skipped = _results(task, annotation, where)
    built = _BUILDERS[task.kind](task, results, key, where)
    built.skipped.extend(skipped)
    return built
