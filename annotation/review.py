"""Human review of generated QA: push records as ``review`` tasks, normalize snapshots into decisions.

One job: the ``review`` project kind end to end, without a dataset record of its own. A reviewer
sees one generated record (CapQA, SubtitleQA or SynMultiImageQA) with its media: the clip's
sampled frames, or the images of its set, materialized as :mod:`annotation.push` does for
``video_point`` and ``multi_image_point``, and accepts, edits or rejects it (config
``annotation/configs/review.xml``). Pulled snapshots (:mod:`annotation.pull`) are normalized
here into ``review_decision`` records (``schemas.review``) that ``publish`` applies: rejected
records are left out, edited ones replaced, each counted.

    synth record folder ({Dataset}.parquet) + the ingest output holding its media
      -> push_review: materialize frames/images, one task per record
         (task_key review:{dataset}:{record key}), import only new tasks
    snapshot export -> normalize_review_export -> NormalizedExport(records={"review_decision": [...]},
                                                                   failures, unannotated)

Decisions: one per submitted annotation; key ``review-{record key}-a{annotation id}``; reviewer
``labelstudio-user-{completed_by}`` (the e-mail when the export carries one); ``decided_at`` the
annotation's ``updated_at``. ``edit`` takes the non-empty ``edit_*`` fields (``question``,
``answer``, ``explanation``); ``accept``/``reject`` with edited text, ``edit`` without any, a
cancelled annotation or a task that is not a review task are failure records (stage
``annotation``) naming the task and the annotation, never silently dropped.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from annotation.ls_results import ExportProblem, read_labels, read_text, require
from annotation.normalize import STAGE, NormalizedExport, load_export
from schemas.records import RecordValidationError, validate

__all__ = ["REVIEW_DATASETS", "EDITABLE", "review_task", "review_text", "read_review_records", "push_review",
           "normalize_review_export", "is_review_export"]

REVIEW_DATASETS = ("CapQA", "SubtitleQA", "SynMultiImageQA")
EDITABLE = ("question", "answer", "explanation")
"""Record fields a reviewer may rewrite (``edit_{field}`` text areas)."""
_DECISIONS = frozenset({"accept", "edit", "reject"})


def _media_key(dataset: str, record: dict) -> str:
    return record["image_set_id"] if dataset == "SynMultiImageQA" else record["clip_id"]


def review_text(dataset: str, record: dict) -> str:
    """The question as the reviewer reads it: question, answer, wrong answers, explanation, category."""
    lines = [f"Question: {record['question']}", f"Answer: {record['answer']}"]
    if record.get("negative_answers"):
        lines.append("Wrong answers: " + " | ".join(record["negative_answers"]))
    if record.get("explanation"):
        lines.append(f"Explanation: {record['explanation']}")
    lines.append(f"Category: {record.get('category') or '-'}")
    if dataset == "SubtitleQA":
        lines.append("Subtitles: " + " / ".join(f"[{c['start']:.1f}-{c['end']:.1f} s] {c['text']}"
                                               for c in record["subtitles"]))
    return "\n".join(lines)


def review_task(dataset: str, record: dict, image_urls: list[str]) -> dict[str, Any]:
    """A review task's data for one generated record.

    Args:
        dataset: one of ``REVIEW_DATASETS``.
        record: the record (dict).
        image_urls: the clip's sampled frames, or the set's images, as Label Studio loads them.

    Raises:
        ValueError: a dataset that is not reviewed here.
    """
    if dataset not in REVIEW_DATASETS:
        raise ValueError(f"review tasks are for {', '.join(REVIEW_DATASETS)}, not {dataset!r}")
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return {
        "task_key": f"review:{dataset}:{record['key']}", "kind": "review", "dataset": dataset,
        "record_key": record["key"], "media_key": _media_key(dataset, record), "images": list(image_urls),
        "text": review_text(dataset, record), "question": record["question"], "answer": record["answer"],
        "negatives": list(record.get("negative_answers") or []), "explanation": record.get("explanation") or "",
        "record_sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    }


def read_review_records(folder: str | os.PathLike, dataset: Optional[str] = None) -> tuple[str, list[dict]]:
    """The generated records of a synth record folder: ``(dataset, records)``.

    Raises:
        FileNotFoundError: no ``{Dataset}.parquet`` of a reviewed dataset in the folder.
        ValueError: several datasets and none chosen.
    """
    import pyarrow.parquet as pq

    from schemas.arrow import from_table

    folder = Path(folder)
    found = [d for d in REVIEW_DATASETS if (folder / f"{d}.parquet").is_file() and (dataset in (None, d))]
    if not found:
        raise FileNotFoundError(f"{folder} holds no {' / '.join(f'{d}.parquet' for d in REVIEW_DATASETS)}"
                                + (f" for {dataset}" if dataset else ""))
    if len(found) > 1:
        raise ValueError(f"{folder} holds {', '.join(found)}: say which dataset to review")
    table = pq.read_table(folder / f"{found[0]}.parquet")
    return found[0], [r.model_dump() for r in from_table(found[0], table)]


def push_review(client: Any, project: Any, ingest_dir: str | os.PathLike, media_root: str | os.PathLike,
                dataset: str, records: Iterable[dict], *, url_for: Optional[Callable[[str], str]] = None,
                batch_size: int = 500, on_conflict: str = "skip") -> Any:
    """Push one review task per record, with its media, importing only tasks the project lacks.

    Args:
        client, project: a connected client and a project of kind ``review``.
        ingest_dir: the ingest output holding the records' clips (frames) or image sets (images);
            for SynMultiImageQA, the folder ``synth synmultiimageqa --media-out`` wrote.
        media_root: Label Studio's document root (with ``url_for``: any local folder).
        dataset, records: what to review.
        url_for: media path relative to ``media_root`` -> URL (default: local files).
        batch_size, on_conflict: see :func:`annotation.push.import_new_tasks`.

    Returns:
        The ``annotation.push.PushResult``.

    Raises:
        FileNotFoundError: a record's clip or image set is not in ``ingest_dir``.
        ValueError: a dataset that is not reviewed here.
        LabelStudioError: as :func:`annotation.push.import_new_tasks`.
    """
    from annotation.push import ensure_local_storage, import_new_tasks, local_files_url, materialize, media_folder

    records = sorted(records, key=lambda r: r["key"])
    kind = "multi_image_point" if dataset == "SynMultiImageQA" else "video_point"  # which media to serve
    sources = materialize(ingest_dir, kind, sorted({_media_key(dataset, r) for r in records}), media_root,
                          project.title)
    url = url_for or local_files_url
    payloads = [{"data": review_task(dataset, r, [url(m) for m in sources[_media_key(dataset, r)].media])}
                for r in records]
    if url_for is None:
        folder = media_folder(media_root, project.title)
        folder.mkdir(parents=True, exist_ok=True)
        ensure_local_storage(client, project.id, folder)
    return import_new_tasks(client, project.id, payloads, batch_size=batch_size, on_conflict=on_conflict)


def is_review_export(tasks: list) -> bool:
    """Whether an export's tasks are review tasks (judged by the first task's ``data.kind``)."""
    first = tasks[0] if tasks and isinstance(tasks[0], dict) else {}
    return isinstance(first.get("data"), dict) and first["data"].get("kind") == "review"


def _reviewer(annotation: dict) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or f"labelstudio-user-{who.get('id')}")
    if who is None or isinstance(who, bool):
        raise ExportProblem("missing_field", "completed_by is missing: who decided is required")
    return f"labelstudio-user-{who}"


def _decision(data: dict, annotation: dict, where: str) -> dict:
    """The review_decision record of one annotation (validated)."""
    decision, edits, note = None, {}, None
    for i, result in enumerate(require(annotation, "result", where) or []):
        at = f"{where} result {i}"
        name = result.get("from_name") if isinstance(result, dict) else None
        if name == "decision":
            labels = read_labels(result, at, "choices", _DECISIONS)
            if len(labels) != 1:
                raise ExportProblem("bad_value", f"{at}: exactly one decision is needed, got {labels}")
            decision = labels[0]
        elif name in {f"edit_{f}" for f in EDITABLE}:
            try:
                edits[name[len("edit_"):]] = read_text(result, at)
            except ExportProblem as exc:
                if exc.error_type != "missing_field":  # an emptied text area edits nothing
                    raise
        elif name == "note":
            try:
                note = read_text(result, at)
            except ExportProblem as exc:
                if exc.error_type != "missing_field":
                    raise
        else:
            raise ExportProblem("unknown_control", f"{at}: the review config has no control {name!r}")
    if decision is None:
        raise ExportProblem("missing_field", f"{where}: no decision (accept, edit or reject)")
    if decision == "edit" and not edits:
        raise ExportProblem("bad_value", f"{where}: decision 'edit' but no edit_* text: write the new text or "
                                         f"choose accept/reject")
    if decision != "edit" and edits:
        raise ExportProblem("bad_value", f"{where}: decision {decision!r} with edited text in "
                                         f"{sorted(edits)}: choose 'edit' to apply it, or clear it")
    if "explanation" in edits and data.get("dataset") != "SynMultiImageQA":
        raise ExportProblem("bad_value", f"{where}: {data.get('dataset')} records have no explanation to edit")
    decided_at = require(annotation, "updated_at", where)
    record = {"key": f"review-{data['record_key']}-a{annotation['id']}", "dataset": data["dataset"],
              "record_key": data["record_key"], "decision": decision, "edits": edits or None,
              "reviewer": _reviewer(annotation), "decided_at": decided_at, "note": note}
    try:
        return validate("review_decision", record).model_dump()
    except RecordValidationError as exc:
        raise ExportProblem("invalid_record", f"{where}: {exc}") from None


def normalize_review_export(export: Any) -> NormalizedExport:
    """Review decisions and failures from a review project's export (module docstring).

    Args:
        export: the export (list, JSON bytes or text, or a Path), as :func:`annotation.normalize.load_export`.

    Returns:
        A ``NormalizedExport`` whose ``records`` hold ``{"review_decision": [...]}`` (in task order).
    """
    out = NormalizedExport()
    keys: set[str] = set()

    def fail(base: str, input_id: str, exc: ExportProblem, payload: Any) -> None:
        key, n = f"{base}-{STAGE}", 1
        while key in keys:
            n += 1
            key = f"{base}-{STAGE}-{n}"
        keys.add(key)
        out.failures.append(validate("failure", {
            "key": key, "input_id": input_id, "stage": STAGE, "error_type": exc.error_type, "message": str(exc),
            "input": json.dumps(payload, sort_keys=True, ensure_ascii=False, default=repr), "outcome": "failed",
            "duplicate_of": None}).model_dump())

    try:
        tasks = load_export(export)
    except ExportProblem as exc:
        fail("export", "the export", exc, {"export": "unreadable"})
        return out
    for t, task in enumerate(tasks):
        tid = task.get("id") if isinstance(task, dict) else None
        where = f"task {tid if tid is not None else f'#{t}'}"
        try:
            data = require(task, "data", where)
            if not isinstance(data, dict) or data.get("kind") != "review":
                raise ExportProblem("unknown_kind", f"{where}: not a review task (data.kind "
                                                    f"{data.get('kind') if isinstance(data, dict) else None!r})")
            for name in ("dataset", "record_key"):
                if not isinstance(require(data, name, f"{where} data"), str):
                    raise ExportProblem("bad_value", f"{where} data.{name} must be text")
            annotations = require(task, "annotations", where)
        except ExportProblem as exc:
            fail(f"task{tid}", where, exc, {"task": task})
            continue
        if not annotations:
            out.unannotated.append(tid)
        for ann in annotations:
            aid = ann.get("id") if isinstance(ann, dict) else None
            at = f"{where} annotation {aid}"
            try:
                if not isinstance(ann, dict) or aid is None:
                    raise ExportProblem("bad_value", f"{at}: an annotation must be an object with an id")
                if ann.get("was_cancelled"):
                    raise ExportProblem("cancelled", f"{at} was skipped by the reviewer; it decides nothing")
                out.records.setdefault("review_decision", []).append(_decision(data, ann, at))
            except ExportProblem as exc:
                fail(f"task{tid}-a{aid}", at, exc, {"data": {"record_key": data.get("record_key")}, "annotation": ann})
    return out
