"""The publish steps that read inputs, apply review decisions and join records with their media.

One job: the DoFns and small functions of the join (``pipelines.publish.pipeline`` chains them).
Each says what flows in and out; bad input becomes a failure record (``failure`` schema, stage
``records``, ``review`` or ``join``) and every record read ends in exactly one outcome:
published, failed, or excluded with a reason (``review_rejected``, ``takedown``,
``license_filtered``).

Tallies: besides records, steps emit ``(dataset, counter, name, n)`` tally tuples into the
``tally`` output; the pipeline sums them per dataset into ``stats.json`` (``records_read``,
``failed``, ``excluded``, ``review`` outcomes, ...).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipelines.publish import samples as S

__all__ = [
    "FAILED", "TALLY", "EXCLUDED", "ReadMediaFn", "read_videos", "ReadRecordsFn", "ReadReviewsFn",
    "ApplyReviewsFn", "JoinMetaFn", "BuildSampleFn", "record_failure",
]

FAILED, TALLY, EXCLUDED = "failed", "tally", "excluded"
"""Tagged outputs: failure rows ``(dataset, failure dict)``, tallies ``(dataset, group, name, n)``,
exclusions ``(dataset, {"key", "reason", "media_key"})``."""


def record_failure(dataset: str, key: Any, stage: str, error_type: str, message: str, record: Any) -> tuple:
    """A ``(dataset, failure dict)`` for one record, with the record as its retryable input.

    ``input_id`` is ``{dataset}/{record key}``; the failure's own key is that made key-safe plus the
    stage, and a short hash of the id when making it safe changed it (two records never share one).
    """
    import hashlib
    import re

    from schemas.records import validate

    input_id = f"{dataset}/{key}"
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", input_id)[:180]
    if safe != input_id:
        safe += "-" + hashlib.sha256(input_id.encode("utf-8")).hexdigest()[:8]
    failure = {"key": f"{safe}-{stage}", "input_id": input_id, "stage": stage, "error_type": error_type,
               "message": message, "input": json.dumps(record, sort_keys=True, ensure_ascii=False, default=str),
               "outcome": "failed", "duplicate_of": None}
    return dataset, validate("failure", failure).model_dump()


def _tally(dataset: str, group: str, name: str, n: int = 1):
    return pvalue.TaggedOutput(TALLY, (dataset, group, name, n))


class ReadMediaFn(beam.DoFn):
    """``MediaShard`` -> ``(media key, meta)`` of image sets, ``(video id, meta)`` of clips in the
    ``clips`` output (``attach_videos`` gives them source and license) and ``(media key, frames)``
    in the ``frames`` output: frames travel apart from the meta, through one shuffle only."""

    CLIPS, FRAMES = "clips", "frames"

    def __init__(self):
        self.items = Metrics.counter("publish", "media_items")

    def process(self, shard):
        from shards.reader import iter_samples

        # shard -> samples (sha256 confirmed as the shard ends: a mismatch raises before the last
        # sample and fails this bundle, whose outputs Beam then discards; no manifest is written,
        # so nothing built from the shard is committed) -> (meta, frames)
        for sample in iter_samples(shard.path, expected_sha256=shard.sha256):
            meta, frames = S.media_from_ingest(shard.kind, sample)
            self.items.inc()
            yield pvalue.TaggedOutput(self.FRAMES, (meta["key"], frames))
            if meta["kind"] == "clip":
                yield pvalue.TaggedOutput(self.CLIPS, (meta["record"]["video_id"], meta))
            else:
                yield meta["key"], meta


def read_videos(path: str) -> Iterable[tuple[str, dict]]:
    """``videos.parquet`` path -> ``(video id, VideoAsset dict)``."""
    from pipelines.publish.inputs import read_rows

    for row in read_rows(path, "video"):
        yield row["key"], row


def attach_videos(element):
    """``(video id, {"clips": [meta], "videos": [VideoAsset]})`` -> ``(clip key, meta)``.

    Raises:
        ValueError: a clip whose video is missing from every ``videos.parquet`` (a broken ingest
            output, not a bad record).
    """
    video_id, grouped = element
    videos = sorted(grouped["videos"], key=lambda v: json.dumps(v, sort_keys=True))
    for meta in grouped["clips"]:
        if not videos:
            raise ValueError(f"clip {meta['key']!r}: its video {video_id!r} is in no videos.parquet")
        yield meta["key"], S.attach_video(meta, videos[0])


class ReadRecordsFn(beam.DoFn):
    """``(dataset, file)`` -> ``((dataset, record key), record)`` for valid records (migrated to
    the current schema version); invalid ones to ``failed``."""

    def process(self, item):
        from pipelines.publish.inputs import read_rows
        from schemas.records import RecordValidationError, validate

        dataset, path = item
        for n, row in enumerate(read_rows(path, dataset), start=1):
            yield _tally(dataset, "records", "read")
            if "__unreadable__" in row:
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    dataset, f"{path}:{n}", "records", "not_json", f"{path} {row['__unreadable__']}", row))
                continue
            try:
                record = validate(dataset, row).model_dump(mode="json")
            except RecordValidationError as exc:
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    dataset, row.get("key"), "records", "invalid_record", str(exc), row))
                continue
            yield (dataset, record["key"]), record


class ReadReviewsFn(beam.DoFn):
    """Review file -> ``((dataset, record key), ReviewDecision dict)``; invalid ones to ``failed``."""

    def process(self, path):
        from pipelines.publish.inputs import read_rows
        from schemas.records import RecordValidationError, validate

        for row in read_rows(path, "review_decision"):
            try:
                decision = validate("review_decision", row).model_dump(mode="json")
            except (RecordValidationError, KeyError) as exc:
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    str(row.get("dataset") or "reviews"), row.get("key"), "review", "invalid_review", str(exc), row))
                continue
            yield (decision["dataset"], decision["record_key"]), decision


class ApplyReviewsFn(beam.DoFn):
    """``((dataset, key), {"records": [...], "reviews": [...]})`` -> ``(media key, (dataset, record))``.

    A key found in two inputs: the copies are duplicates of each other and both fail (none is
    trusted). Several decisions on one record: the latest ``decided_at`` (then decision key)
    wins. Rejected records go to ``excluded``; edited ones are re-validated with the new text.
    """

    def process(self, element):
        from schemas.records import RecordValidationError, validate

        (dataset, key), grouped = element
        records, decisions = list(grouped["records"]), list(grouped["reviews"])
        if not records:
            for decision in decisions:
                yield _tally(dataset, "review", "no_such_record")
            return
        if len(records) > 1:  # copy n of the key fails as "{key}#{n}", numbered in canonical JSON order
            for n, record in enumerate(sorted(records, key=lambda r: json.dumps(r, sort_keys=True)), start=1):
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    dataset, f"{key}#{n}", "records", "duplicate_key",
                    f"{dataset} record {key!r} appears {len(records)} times among the record inputs", record))
            return
        record = records[0]
        if decisions:
            decision = max(decisions, key=lambda d: (d["decided_at"], d["key"]))
            yield _tally(dataset, "review", decision["decision"])
            if len(decisions) > 1:
                yield _tally(dataset, "review", "superseded", len(decisions) - 1)
            if decision["decision"] == "reject":
                yield pvalue.TaggedOutput(EXCLUDED, (dataset, {"key": key, "reason": "review_rejected",
                                                               "media_key": _media_key_or_none(dataset, record)}))
                return
            if decision["decision"] == "edit":
                unknown = sorted(set(decision["edits"]) - set(record))
                try:
                    if unknown:
                        raise ValueError(f"edits name fields the record does not have: {unknown}")
                    record = validate(dataset, {**record, **decision["edits"]}).model_dump(mode="json")
                except (RecordValidationError, ValueError) as exc:
                    yield pvalue.TaggedOutput(FAILED, record_failure(
                        dataset, key, "review", "invalid_edit", f"decision {decision['key']!r}: {exc}", record))
                    return
        try:
            media_key = S.media_key_of(dataset, record)
        except ValueError as exc:
            yield pvalue.TaggedOutput(FAILED, record_failure(dataset, key, "join", "no_media", str(exc), record))
            return
        yield media_key, (dataset, record)


def _media_key_or_none(dataset: str, record: dict):
    try:
        return S.media_key_of(dataset, record)
    except ValueError:
        return None


class JoinMetaFn(beam.DoFn):
    """``(media key, {"meta": [meta], "records": [(dataset, record)]})`` -> validation rows
    ``{"dataset", "record", "meta"}``; records of unknown media to ``failed``; records on
    taken-down or license-filtered media to ``excluded``."""

    def __init__(self, takedown: frozenset[str], licenses):
        self.takedown = frozenset(takedown)
        self.licenses = None if licenses is None else frozenset(licenses)

    def process(self, element):
        media_key, grouped = element
        metas, records = list(grouped["meta"]), list(grouped["records"])
        if not records:
            return
        if not metas:
            for dataset, record in records:
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    dataset, record["key"], "join", "unknown_media",
                    f"{dataset} record {record['key']!r} is about {media_key!r}, which no ingest input holds", record))
            return
        metas = sorted({json.dumps(m, sort_keys=True): m for m in metas}.items())
        if len(metas) > 1:
            for dataset, record in records:
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    dataset, record["key"], "join", "ambiguous_media",
                    f"{len(metas)} ingest inputs hold different media under {media_key!r}", record))
            return
        meta = metas[0][1]
        reason = None
        if self.takedown.intersection(meta["source_ids"]):
            reason = "takedown"
        elif self.licenses is not None and meta["license"] not in self.licenses:
            reason = "license_filtered"
        for dataset, record in records:
            if reason:
                yield pvalue.TaggedOutput(EXCLUDED, (dataset, {"key": record["key"], "reason": reason,
                                                               "media_key": media_key}))
                continue
            try:
                record = S.resample_for_clip(dataset, record, meta)
            except ValueError as exc:
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    dataset, record["key"], "join", "track_resample", str(exc), record))
                continue
            yield {"dataset": dataset, "record": record, "meta": meta}


class ValidateBatchFn(beam.DoFn):
    """A batch of validation rows -> ``(media key, (dataset, record, messages))`` for rows that pass
    every record rule and phrase as a conversation; the others to ``failed`` naming the rule
    (``pipelines.publish.validate``) or ``conversation`` (``messages_for`` refused the record)."""

    def __init__(self, min_images: int, max_images: int):
        self.min_images, self.max_images = min_images, max_images
        self.rules = None

    def setup(self):
        from pipelines.publish.validate import RecordRules

        self.rules = RecordRules(self.min_images, self.max_images)

    def process(self, batch):
        by_dataset: dict[str, list] = {}
        for row in batch:
            by_dataset.setdefault(row["dataset"], []).append(row)
        for dataset in sorted(by_dataset):
            passed, failed = self.rules.check(dataset, by_dataset[dataset])
            for row in passed:
                record = row["record"]
                try:
                    messages = S.conversation(dataset, record, row["meta"])
                except ValueError as exc:
                    yield pvalue.TaggedOutput(FAILED, record_failure(
                        dataset, record["key"], "validate", "conversation", str(exc), record))
                    continue
                yield row["meta"]["key"], (dataset, record, messages)
            for row, rule, message in failed:
                key = row["record"]["key"]
                yield pvalue.TaggedOutput(FAILED, record_failure(
                    dataset, key, "validate", rule, f"{dataset} record {key!r}: {message}", row["record"]))


class BuildSampleFn(beam.DoFn):
    """``(media key, {"meta": [meta], "frames": [frames], "records": [(dataset, record, messages)]})``
    -> one sample per dataset: ``(dataset, split, sample)``."""

    def process(self, element):
        import hashlib

        media_key, grouped = element
        metas, copies, records = list(grouped["meta"]), list(grouped["frames"]), list(grouped["records"])
        # media that no dataset uses yields nothing; records without media failed in JoinMetaFn
        if not records or not metas or not copies:
            return
        meta = min(metas, key=lambda m: json.dumps(m, sort_keys=True))  # one, unless two inputs hold it
        frames = min(copies, key=lambda f: [(e, hashlib.sha256(b).digest()) for e, b in f])
        per_dataset: dict[str, list] = {}
        for dataset, record, messages in records:
            per_dataset.setdefault(dataset, []).append((record, messages))
        for dataset in sorted(per_dataset):
            yield dataset, meta["split"], S.build_sample(dataset, meta, frames, per_dataset[dataset])
