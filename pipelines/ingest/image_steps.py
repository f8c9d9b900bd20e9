"""Image sets for the multi-image datasets: the image branch of ``IngestVideos``.

Manifest rows of kind ``image_set`` (2-5 images in one row) are one set each. Rows of kind
``image`` are grouped by their ``group`` label (``pipelines.ingest.images.group_images``: sorted by
input id, split into ceil(n/5) balanced sets of 2-5; a group of one image fails as
``singleton_group``, and every row of a group whose rows disagree on license, source or split
fails as ``conflicting_group_field``). Each image is fetched like a video, then decoded, checked
and re-encoded in the sandbox (``pipelines.ingest.images.inspect_image_file``); its stored bytes
go to an image store on disk and only references travel on. A set that failed is remembered like
a video (``pipelines.ingest.steps.FailureMemory``): a rerun replays its failures unless
``--retry-failed``.
Shapes:

    ManifestRow(image_set)            -> SetJob
    (group, [ManifestRow(image)])     -> SetJob | "failed": failure dicts (leftovers)
    SetJob -> ProcessImageSetFn       -> (set_id, ImageSet record, [(member name, path)], n rows)
                                       | "failed": one failure dict per member row
                                       | "remembered": those of them replayed from an earlier run
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam

from pipelines.common.errors import InputError
from pipelines.ingest.steps import (
    FAILED, FailureMemory, FetchingDoFn, _row_json, failure_record, remembered_outputs, split_for,
)
from schemas.records import validate
from shards.atomic import write_bytes
from shards.layout import WorkLayout


@dataclass(frozen=True)
class SetJob:
    """One image set to build: its id, its images and the manifest rows it answers for."""

    set_id: str
    images: tuple[str, ...]
    rows: tuple  # ManifestRow, one per manifest row this set accounts for
    image_ids: tuple[str, ...]


def set_job_from_row(row) -> SetJob:
    """An ``image_set`` row: image ids are ``{set id}_{i}``."""
    return SetJob(set_id=row.input_id, images=tuple(row.images), rows=(row,),
                  image_ids=tuple(f"{row.input_id}_{i}" for i in range(len(row.images))))


def image_group_key(row):
    return row.group, row


def set_jobs_from_group(element, progress=None):
    """(group, rows) -> SetJob per balanced set | ``failed``: leftovers (singleton, conflicting).

    Guarded as one input: an unforeseen fault fails every row of the group (stage ``image``).
    ``progress`` (a ``ProgressLog``) counts the rows that fail here.
    """
    from pipelines.common.guard import InputGuard

    group, rows = element
    rows = sorted(rows, key=lambda r: r.input_id)
    outputs = InputGuard().outcome(lambda: _group_jobs(rows), lambda err: _group_failed(rows, err),
                                   "image", f"group {group}", *[r.input_id for r in rows])
    failed = sum(1 for o in outputs if isinstance(o, beam.pvalue.TaggedOutput))
    if progress is not None:
        progress.add(done=failed, failed=failed)
    return outputs


def _group_jobs(rows):
    from pipelines.ingest.images import group_images

    sets, leftovers = group_images(rows)
    for s in sets:
        yield SetJob(set_id=s.set_id, images=s.images, rows=s.rows, image_ids=s.input_ids)
    for left in leftovers:
        yield beam.pvalue.TaggedOutput(FAILED, failure_record(
            left.input_id, "image", left.error_type, left.message, _row_json(left.row)))


def _group_failed(rows, exc: InputError):
    for row in rows:
        yield beam.pvalue.TaggedOutput(FAILED, failure_record(
            row.input_id, exc.stage, exc.error_type, exc.message, _row_json(row)))


class ProcessImageSetFn(FetchingDoFn):
    """SetJob -> (set_id, ImageSet record, members, rows) | ``failed`` for every member row.

    One ``InputGuard`` boundary: any fault of the set (fetch, inspection, store) fails its rows.
    A failed set is remembered (``FailureMemory``, keyed by its rows) so that a rerun replays its
    failures, to ``failed`` and ``remembered``, unless ``retry_failed`` is set.
    """

    sandbox_stage = "image"
    counter_names = ("image_sets", "image_sets_failed")

    def process(self, job: SetJob):
        ids = [r.input_id for r in job.rows]
        return self.guard.outcome(lambda: self._succeeded(job), lambda err: self._failed(job, err),
                                  "image", job.set_id, *ids)

    def _succeeded(self, job: SetJob):
        memory = FailureMemory(self.work_dir)
        remembered = None if self.retry_failed else memory.recall(job.rows)
        if remembered is not None:
            self.failed.inc()
            self.progress.add(done=len(job.rows), failed=len(job.rows))
            yield from remembered_outputs(remembered)
            return
        record, members = self._build(job)
        memory.forget(job.rows)
        self.ok.inc()
        self.progress.add(done=len(job.rows))
        yield job.set_id, record, members, len(job.rows)

    def _failed(self, job: SetJob, exc: InputError):
        self.failed.inc()
        message = exc.message if len(job.rows) == 1 else f"set {job.set_id}: {exc.message}"
        records = [failure_record(row.input_id, exc.stage, exc.error_type, message, _row_json(row))
                   for row in job.rows]
        FailureMemory(self.work_dir).remember(job.rows, records)
        self.progress.add(done=len(job.rows), failed=len(job.rows))
        for record in records:
            yield beam.pvalue.TaggedOutput(FAILED, record)

    def _build(self, job: SetJob):
        from pipelines.ingest.images import dedupe_images_in_set

        results, members = [], []
        for i, source in enumerate(job.images):
            with self.guard.step("fetch", source, job.image_ids[i]):
                fetched = self.fetch(source, job.image_ids[i])
            with self.guard.step("image", source, job.image_ids[i]):
                result = self.sandbox.call("pipelines.ingest.images:inspect_image_file", fetched.raw_path,
                                           source, self.config.frames.max_side, input_name=source)
            results.append(result)
            store = WorkLayout(self.work_dir).images / result.sha256[:2]
            store.mkdir(parents=True, exist_ok=True)
            path = store / f"{result.sha256}-{self.config.frames.max_side}.{result.ext}"
            if not path.is_file():
                write_bytes(path, result.data)
            members.append((f"{i}.{result.ext}", str(path)))
        for i, first in enumerate(dedupe_images_in_set(results)):
            if first is not None:
                raise InputError("image", "duplicate_image",
                                 f"{job.images[i]} has the same bytes as {job.images[first]} in one set")
        row = job.rows[0]
        grouped = row.kind == "image"  # one row per image, else one image_set row for all
        record = validate("image_set", {
            "key": job.set_id, "given_id": None if grouped else row.given_id,
            "images": [{"image_id": job.image_ids[i], "given_id": job.rows[i].given_id if grouped else None,
                        "uri": job.images[i], "sha256": r.sha256,
                        "width": r.width, "height": r.height} for i, r in enumerate(results)],
            "license": row.license or "unknown", "source": row.source or "unknown",
            "split": split_for(row, results[0].sha256, self.config.output.val_fraction),
        }).model_dump()
        return record, members
