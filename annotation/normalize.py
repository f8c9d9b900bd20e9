"""Normalize a Label Studio snapshot export into this project's records, failures and reviews.

One job: read an export (a list of tasks ``{id, data, annotations: [...], ...}``, the shapes in
``../shared/reference/labelstudio.md``) and return validated dataset records, one failure record
per thing that could not be used, and for tasks with several annotators the agreement and the
decision (merge or review). Pure: no server, no files written.

Every record says how it was made (``provenance``, ``schemas.provenance``): the project title and
snapshot version the caller names (``Origin``), the task id, and the annotation ids and
annotators (``completed_by``: the user's e-mail when the export gives an object, else the user
id as text) it was made from: one for an annotator's record, all of them for a consensus.
VideoPoint and VideoTrack records hold the source video's real ``source`` (and VideoPoint its
``duration``): from ``known_videos`` (the ingest's ``videos.parquet``) when given, which wins
over the task data, else from the task data push wrote.

    export (list | bytes | str JSON text | Path)
      -> load_export                      -> [task dict]          | one failure for the file
      -> per task: _task                  -> TaskInfo             | failure (task-level)
      -> per annotation: build_record     -> record dict          | failure (annotation-level)
           (annotation.ls_records), then schemas.records.validate
      -> one annotation: the record (or review when it carries a note)
         several: annotation.agreement.assess -> merged record | review
      -> NormalizedExport(records, failures, agreements, review, unannotated)

Failure records (``schemas`` ``failure``, stage ``annotation``, outcome ``failed``) have an
``error_type`` among: ``not_json`` / ``bad_export`` (the whole file), ``bad_task``,
``missing_field``, ``bad_value``, ``out_of_range``, ``unknown_label``, ``unknown_control``,
``unknown_kind``, ``unknown_video``, ``frame_out_of_clip``, ``duplicate_id`` (task ids, task keys, annotation ids
or result ids seen twice: every copy fails, none is trusted), ``unknown_clip``, ``cancelled``
(``was_cancelled: true``), ``inconsistent_task``, ``bad_media`` and ``clip_mismatch`` (task data
that cannot be trusted, see ``annotation.ls_task_data``), ``empty_track`` (a track with no
keyframe), ``invalid_record`` (the record broke its schema), or the exception class name for a
shape nobody foresaw. Each names the task and the annotation (``input_id`` ``task 3 annotation
7``). One bad task or annotation never stops the others. A result of a control the config does
not have (a ``timelinelabels`` region) is its own failure (``input_id`` ``task 3 annotation 7
result 'x'``) and the annotation's other results still make its record. ``predictions`` and
drafts are ignored.

Record keys: ``{task key}-a{annotation id}`` for one annotator's record, ``{task key}-merged``
for a consensus, where the task key is ``data.task_key`` made key-safe (characters outside
``[A-Za-z0-9_-]`` become ``_``, and then a short hash of the original is appended).
VideoTrack records hold every mp4 frame; ``resample_track`` (``schemas.tracks``) picks the Molmo 2
sample times.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

from annotation.agreement import Agreement, AgreementConfig, assess
from annotation.ls_records import KIND_DATASET, VIDEO_KINDS, Skipped, TaskInfo, build_record
from annotation.tasks import SOURCE_KINDS
from annotation.ls_results import ExportProblem, require
from schemas.record_types import make_key
from schemas.records import RecordValidationError, human_provenance, validate
from schemas.tracks import resample_track

__all__ = ["NormalizeConfig", "NormalizedExport", "Origin", "ReviewItem", "ExportProblem", "normalize_export",
           "load_export", "record_key", "resample_track", "annotator", "STAGE"]

STAGE = "annotation"
Export = Union[list, bytes, bytearray, str, Path]


@dataclass(frozen=True)
class NormalizeConfig:
    """Settings of ``normalize_export``."""

    source: Optional[str] = None
    """``source`` of VideoPoint/VideoTrack records when neither the known video nor the task data
    has one; None (the default): such a record fails with ``missing_field``."""
    category: str = "object"
    """VideoPoint ``category`` when the task data has no ``category``."""
    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    """Thresholds for tasks with several annotators."""

    def __post_init__(self) -> None:
        if self.source == "" or not self.category:
            raise ValueError("source (when given) and category must be non-empty")


@dataclass(frozen=True)
class Origin:
    """Where an export comes from: the Label Studio project title and the pulled snapshot version."""

    project: str
    snapshot_version: int

    def __post_init__(self) -> None:
        if not self.project or isinstance(self.snapshot_version, bool) or not isinstance(self.snapshot_version, int) \
                or self.snapshot_version < 1:
            raise ValueError(f"an Origin needs a project title and a snapshot version >= 1, got {self!r}")


@dataclass(frozen=True)
class ReviewItem:
    """A task held back for a person to decide: why, and every annotator's record."""

    task_id: int
    task_key: str
    dataset: str
    reasons: tuple[str, ...]
    candidates: tuple[dict, ...]


@dataclass
class NormalizedExport:
    """What came out of one export.

    Attributes:
        records: validated record dicts by dataset name (``"VideoPoint"``, ...), in task order.
        failures: validated ``failure`` record dicts.
        agreements: one ``Agreement`` per task with two or more usable annotations.
        review: tasks held back (annotators disagree).
        unannotated: ids of tasks with no annotations yet.
    """

    records: dict[str, list[dict]] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    review: list[ReviewItem] = field(default_factory=list)
    unannotated: list[int] = field(default_factory=list)

    def failure_counts(self) -> dict[str, int]:
        """Failures per ``error_type``, sorted by type."""
        return dict(sorted(Counter(f["error_type"] for f in self.failures).items()))


def record_key(task_key: str, suffix: str) -> str:
    """A deterministic, key-safe record key ``{key-safe task key}-{suffix}``.

    The task key goes through the project's one key rule (``schemas.record_types.make_key``):
    kept when key-safe, else an ASCII slug plus 8 hex digits of its sha256, so two task keys that
    differ only in unsafe characters still give different record keys.
    """
    return f"{make_key(task_key)}-{suffix}"


def load_export(export: Export, name: Optional[str] = None) -> list:
    """The list of tasks in an export.

    Args:
        export: the parsed list, JSON bytes or text, or a ``Path`` to a JSON file. A ``str`` is
            JSON text, not a path.
        name: what to call the input in messages (default: the path, or "the export").

    Returns:
        The list as parsed (items are not checked here).

    Raises:
        ExportProblem: ``not_json`` when the input is not JSON, ``bad_export`` when it is JSON
            but not a list.
        OSError: the path cannot be read.
        TypeError: an input of another type.
    """
    if isinstance(export, list):
        return export
    if isinstance(export, Path):
        name, raw = name or str(export), export.read_bytes()
    elif isinstance(export, (bytes, bytearray, str)):
        name, raw = name or "the export", export
    else:
        raise TypeError(f"an export is a list, bytes, JSON text or a Path, got {type(export).__name__}")
    try:
        tasks = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        hint = " (pass a pathlib.Path to read a file)" if isinstance(export, str) else ""
        raise ExportProblem("not_json", f"{name} is not JSON: {exc}{hint}") from None
    if not isinstance(tasks, list):
        raise ExportProblem("bad_export", f"{name} holds a JSON {type(tasks).__name__}, not a list of tasks")
    return tasks


def _problem(exc: Exception, where: str) -> ExportProblem:
    """An ``ExportProblem`` as is; anything else (a shape nobody foresaw) named by its class."""
    if isinstance(exc, ExportProblem):
        return exc
    return ExportProblem(type(exc).__name__, f"{where}: unexpected {type(exc).__name__}: {exc}")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


class _Run:
    """State of one ``normalize_export`` call: the output and the failure keys used."""

    def __init__(self, config: NormalizeConfig):
        self.config = config
        self.out = NormalizedExport()
        self._keys: set[str] = set()

    def fail(self, base: str, input_id: str, error_type: str, message: str, payload: Any) -> None:
        key, n = f"{base}-{STAGE}", 1
        while key in self._keys:
            n += 1
            key = f"{base}-{STAGE}-{n}"
        self._keys.add(key)
        data = {"key": key, "input_id": input_id, "stage": STAGE, "error_type": error_type,
                "message": message, "input": _json(payload), "outcome": "failed", "duplicate_of": None}
        self.out.failures.append(validate("failure", data).model_dump())

    def keep(self, dataset: str, record: dict) -> None:
        self.out.records.setdefault(dataset, []).append(record)


def _duplicates(tasks: list) -> tuple[set, set, set]:
    """Task ids, task keys and annotation ids that occur more than once in the export."""
    ids: Counter = Counter()
    keys: Counter = Counter()
    anns: Counter = Counter()
    for t in tasks:
        if not isinstance(t, dict):
            continue
        ids[repr(t.get("id"))] += 1
        data = t.get("data")
        if isinstance(data, dict) and isinstance(data.get("task_key"), str):
            keys[data["task_key"]] += 1
        annotations = t.get("annotations")
        for a in annotations if isinstance(annotations, list) else []:
            if isinstance(a, dict) and a.get("id") is not None:
                anns[repr(a["id"])] += 1
    return ({k for k, n in ids.items() if n > 1}, {k for k, n in keys.items() if n > 1},
            {k for k, n in anns.items() if n > 1})


def _clip_record(clip: Any) -> dict:
    return clip.model_dump() if hasattr(clip, "model_dump") else dict(clip)


def _task(task: Any, dups: tuple[set, set, set], known_clips: Any, known_videos: Optional[Mapping[str, Any]],
          config: NormalizeConfig) -> tuple[TaskInfo, str]:
    """Check a task and complete its data from the known clip and video; returns ``(TaskInfo, task key)``."""
    if not isinstance(task, dict):
        raise ExportProblem("bad_task", f"a task must be an object, got {type(task).__name__}")
    tid = require(task, "id", "task")
    if isinstance(tid, bool) or not isinstance(tid, int):
        raise ExportProblem("bad_value", f"task id must be an integer, got {tid!r}")
    where = f"task {tid}"
    if repr(tid) in dups[0]:
        raise ExportProblem("duplicate_id", f"{where}: task id {tid} appears more than once in the export")
    data = require(task, "data", where)
    if not isinstance(data, dict):
        raise ExportProblem("bad_value", f"{where} data must be an object, got {type(data).__name__}")
    annotations = require(task, "annotations", where)
    if not isinstance(annotations, list):
        raise ExportProblem("bad_value", f"{where} annotations must be a list, got {type(annotations).__name__}")
    kind = require(data, "kind", f"{where} data")
    if not isinstance(kind, str) or kind not in KIND_DATASET:
        raise ExportProblem("unknown_kind", f"{where} data.kind {kind!r} is not a project kind "
                            f"(known: {sorted(KIND_DATASET)})")
    task_key = data.get("task_key") if isinstance(data.get("task_key"), str) else f"{kind}-task{tid}"
    if task_key in dups[1]:
        raise ExportProblem("duplicate_id", f"{where}: task_key {task_key!r} is used by more than one task")
    data, clip = dict(data), None
    if kind in VIDEO_KINDS:
        clip_id = require(data, "clip_id", f"{where} data")
        if not isinstance(clip_id, str):
            raise ExportProblem("bad_value", f"{where} data.clip_id must be a string, got {clip_id!r}")
        if known_clips is not None and clip_id not in known_clips:
            raise ExportProblem("unknown_clip", f"{where}: clip {clip_id!r} is not among the known clips")
        if isinstance(known_clips, Mapping):
            clip = _clip_record(known_clips[clip_id])
            for name, src in (("clip_start", "start"), ("clip_end", "end"), ("video_id", "video_id"),
                              ("width", "frame_width"), ("height", "frame_height")):
                if data.get(name) is None and clip.get(src) is not None:
                    data[name] = clip[src]
    if kind in SOURCE_KINDS and known_videos is not None:
        video_id = data.get("video_id")
        if video_id not in known_videos:
            raise ExportProblem("unknown_video", f"{where}: video {video_id!r} is not among the known videos, "
                                f"whose source and duration the record holds")
        video = _clip_record(known_videos[video_id])
        data["source"], data["video_duration"] = video["source"], video["duration"]  # the videos table wins
    return TaskInfo(tid, kind, data, config.source, config.category, clip), task_key


def annotator(ann: dict, where: str) -> str:
    """Who made an annotation, as the export says (``completed_by``): an e-mail, else the user id as text.

    Raises:
        ExportProblem: ``missing_field`` when the export does not say (provenance needs it).
    """
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if isinstance(who, bool) or not isinstance(who, (int, str)) or who == "":
        raise ExportProblem("missing_field", f"{where}.completed_by is {who!r}: who annotated is part of the "
                            f"record's provenance")
    return str(who)


def _annotation(info: TaskInfo, ann: Any, dups: set, base: str,
                origin: Origin) -> tuple[int, dict, list[str], list[Skipped]]:
    """One annotation -> ``(annotation id, record, review notes, results left out)``.

    The record is validated; one held for review (it has notes) that breaks its schema is kept
    as it is, the schema's complaint added to its notes, so that no label is dropped.
    """
    if not isinstance(ann, dict):
        raise ExportProblem("bad_value", f"task {info.id}: an annotation must be an object, got {type(ann).__name__}")
    aid = require(ann, "id", f"task {info.id} annotation")
    if isinstance(aid, bool) or not isinstance(aid, int):
        raise ExportProblem("bad_value", f"task {info.id}: annotation id must be an integer, got {aid!r}")
    where = f"task {info.id} annotation {aid}"
    if repr(aid) in dups:
        raise ExportProblem("duplicate_id", f"{where}: annotation id {aid} appears more than once in the export")
    cancelled = require(ann, "was_cancelled", where)
    if not isinstance(cancelled, bool):
        raise ExportProblem("bad_value", f"{where}.was_cancelled must be true or false, got {cancelled!r}")
    if cancelled:
        raise ExportProblem("cancelled", f"{where} was cancelled (skipped) by annotator "
                            f"{ann.get('completed_by')!r}; it holds no labels")
    who = annotator(ann, where)
    try:
        built = build_record(info, ann, f"{base}-a{aid}", where)
    except ExportProblem as p:  # a task-data problem is reported on each annotation it spoils
        if str(p).startswith(where):
            raise
        raise ExportProblem(p.error_type, f"{where}: {p}") from None
    built.record["provenance"] = human_provenance(origin.project, origin.snapshot_version, info.id, [(aid, who)])
    try:
        return aid, validate(KIND_DATASET[info.kind], built.record).model_dump(), built.notes, built.skipped
    except RecordValidationError as exc:
        if built.notes:
            return aid, built.record, built.notes + [f"the record breaks its schema: {exc}"], built.skipped
        raise ExportProblem("invalid_record", f"{where}: {exc}") from None


def _decide(run: _Run, info: TaskInfo, task_key: str, base: str, good: list[tuple[int, dict, list[str]]]) -> None:
    dataset = KIND_DATASET[info.kind]
    notes = [n for _, _, ns in good for n in ns]
    records = [r for _, r, _ in good]
    if len(good) == 1:
        if notes:
            run.out.review.append(ReviewItem(info.id, task_key, dataset, tuple(notes), tuple(records)))
        else:
            run.keep(dataset, records[0])
        return
    agreement = assess(dataset, records, [str(a) for a, _, _ in good], f"{base}-merged", run.config.agreement)
    agreement = replace(agreement, task_id=info.id, task_key=task_key)
    run.out.agreements.append(agreement)
    reasons = list(agreement.reasons) + notes
    if agreement.decision == "merged" and not notes:
        made_of = [(a, who) for r in records for a, who in zip(r["provenance"]["annotation_ids"],
                                                                r["provenance"]["annotators"])]
        first = records[0]["provenance"]
        merged = {**agreement.merged, "provenance": human_provenance(first["project"], first["snapshot_version"],
                                                                      info.id, made_of)}
        try:
            run.keep(dataset, validate(dataset, merged).model_dump())
            return
        except RecordValidationError as exc:
            reasons.append(f"the merged record is invalid: {exc}")
    run.out.review.append(ReviewItem(info.id, task_key, dataset, tuple(reasons), tuple(records)))


def normalize_export(export: Export, known_clips: Optional[Union[set, frozenset, Mapping[str, Any]]] = None,
                     config: Optional[NormalizeConfig] = None, *, origin: Origin,
                     known_videos: Optional[Mapping[str, Any]] = None) -> NormalizedExport:
    """Normalize one Label Studio snapshot export.

    Args:
        export: the parsed task list, JSON bytes/text, or a ``Path`` to the snapshot file.
        known_clips: when given, video tasks whose ``data.clip_id`` is not in it fail with
            ``unknown_clip``. A mapping ``{clip id: Clip record (dict or model)}`` also fills
            ``clip_start``, ``clip_end``, ``video_id``, ``width`` and ``height`` where the task
            data lacks them.
        config: defaults and agreement thresholds.
        origin: the project title and snapshot version of the export (the records' provenance).
        known_videos: ``{video id: VideoAsset record (dict or model)}`` (``videos.parquet``): the
            ``source`` and ``duration`` of VideoPoint / VideoTrack records come from it, and their
            tasks fail with ``unknown_video`` when their video is not in it.

    Returns:
        A ``NormalizedExport``. A file that is not JSON (or not a list) gives exactly one failure.

    Raises:
        OSError: a ``Path`` that cannot be read. TypeError: an export of another type.
    """
    run = _Run(config or NormalizeConfig())
    name = str(export) if isinstance(export, Path) else "the export"
    raw = export.read_bytes() if isinstance(export, Path) else export
    try:
        tasks = load_export(raw, name)
    except ExportProblem as p:
        head = raw[:200] if isinstance(raw, (str, bytes, bytearray)) else ""
        if isinstance(head, (bytes, bytearray)):
            head = head.decode("utf-8", "replace")
        run.fail("export", name, p.error_type, str(p), {"source": name, "head": head})
        return run.out
    dups = _duplicates(tasks)
    for pos, task in enumerate(tasks):
        tid = task.get("id") if isinstance(task, dict) else None
        base_id = f"task{tid}" if isinstance(tid, int) and not isinstance(tid, bool) else f"task-at-{pos}"
        try:
            info, task_key = _task(task, dups, known_clips, known_videos, run.config)
        except Exception as exc:  # noqa: BLE001 - one bad task never stops the file
            p = _problem(exc, f"task {tid}")
            run.fail(base_id, f"task {tid}" if tid is not None else f"task at position {pos}", p.error_type,
                     str(p), task)
            continue
        base = make_key(task_key)
        annotations = task["annotations"]
        if not annotations:
            run.out.unannotated.append(info.id)
        good = []
        for k, ann in enumerate(annotations):
            aid = ann.get("id") if isinstance(ann, dict) else None
            suffix = f"-a{aid}" if isinstance(aid, int) and not isinstance(aid, bool) else f"-at-{k}"
            try:
                aid, record, notes, skipped = _annotation(info, ann, dups[2], base, origin)
            except Exception as exc:  # noqa: BLE001 - one bad annotation never stops the task
                p = _problem(exc, f"task {info.id} annotation")
                run.fail(base_id + suffix, f"task {info.id} annotation {aid}", p.error_type, str(p),
                         {"task_id": info.id, "data": task["data"], "annotation": ann})
                continue
            good.append((aid, record, notes))
            for r, left in enumerate(skipped):  # results the record does not need, each its own failure
                run.fail(f"{base_id}{suffix}-r{r}", left.where, left.problem.error_type, str(left.problem),
                         {"task_id": info.id, "annotation_id": aid, "result": left.result})
        if good:
            _decide(run, info, task_key, base, good)
    return run.out
