"""Image sets for the multi-image datasets: the image branch of ``IngestVideos``.

Manifest rows of kind ``image_set`` (2-5 images in one row) are one set each. Rows of kind
``image`` are grouped by their ``group`` label (``pipelines.ingest.images.group_images``: sorted by
input id, split into ceil(n/5) balanced sets of 2-5; a group of one image is a failure,
``singleton_group``). Each image is fetched like a video, then decoded, checked and re-encoded
in the sandbox (``pipelines.ingest.images.inspect_image``); its stored bytes go to an image store on
disk and only references travel on. Shapes:

    ManifestRow(image_set)            -> SetJob
    (group, [ManifestRow(image)])     -> SetJob | "failed": failure dicts (leftovers)
    SetJob -> ProcessImageSetFn       -> (set_id, ImageSet record, [(member name, path)], n rows)
                                       | "failed": one failure dict per member row
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.ingest.config import IngestConfig
from pipelines.common.errors import InputError
from pipelines.ingest.steps import FAILED, FetchingDoFn, _row_json, failure_record, split_for
from schemas.records import validate


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


def set_jobs_from_group(element):
    """(group, rows) -> SetJob per balanced set | ``failed``: singleton leftovers."""
    from pipelines.ingest.images import group_images

    _, rows = element
    rows = sorted(rows, key=lambda r: r.input_id)
    sets, leftovers = group_images([{"input_id": r.input_id, "group": r.group, "image": r.images[0], "row": r}
                                    for r in rows])
    by_id = {r.input_id: r for r in rows}
    for s in sets:
        members = tuple(by_id[i] for i in s.input_ids)
        yield SetJob(set_id=s.set_id, images=s.images, rows=members, image_ids=s.input_ids)
    for left in leftovers:
        row = by_id[left.input_id]
        yield beam.pvalue.TaggedOutput(FAILED, failure_record(
            row.input_id, "image", left.error_type, left.message, _row_json(row)))


def inspect_image_file(path: str, name: str, max_side: int):
    """Sandbox job: read a fetched image and inspect it (``pipelines.ingest.images.inspect_image``)."""
    from pipelines.ingest.images import inspect_image

    return inspect_image(Path(path).read_bytes(), name, max_side)


class ProcessImageSetFn(FetchingDoFn):
    """SetJob -> (set_id, ImageSet record, members, rows) | ``failed`` for every member row."""

    sandbox_stage = "image"

    def __init__(self, config: IngestConfig, work_dir: str):
        self.config = config
        self.work_dir = work_dir
        self.ok = Metrics.counter("ingest", "image_sets")
        self.failed = Metrics.counter("ingest", "image_sets_failed")

    def process(self, job: SetJob):
        try:
            record, members = self._build(job)
        except InputError as exc:
            self.failed.inc()
            for row in job.rows:
                message = exc.message if len(job.rows) == 1 else f"set {job.set_id}: {exc.message}"
                yield beam.pvalue.TaggedOutput(FAILED, failure_record(
                    row.input_id, exc.stage, exc.error_type, message, _row_json(row)))
            return
        self.ok.inc()
        yield job.set_id, record, members, len(job.rows)

    def _build(self, job: SetJob):
        from pipelines.ingest.images import dedupe_images_in_set

        results, members = [], []
        for i, source in enumerate(job.images):
            fetched = self.fetcher.fetch(source, job.image_ids[i])
            result = self.sandbox.call("pipelines.ingest.image_steps:inspect_image_file", fetched.raw_path, source,
                                       self.config.frames.max_side, input_name=source)
            results.append(result)
            store = Path(self.work_dir) / "images" / result.sha256[:2]
            store.mkdir(parents=True, exist_ok=True)
            path = store / f"{result.sha256}-{self.config.frames.max_side}.{result.ext}"
            if not path.is_file():
                tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
                tmp.write_bytes(result.data)
                os.replace(tmp, path)
            members.append((f"{i}.{result.ext}", str(path)))
        for i, first in enumerate(dedupe_images_in_set(results)):
            if first is not None:
                raise InputError("image", "duplicate_image",
                                 f"{job.images[i]} has the same bytes as {job.images[first]} in one set")
        row = job.rows[0]
        record = validate("image_set", {
            "key": job.set_id,
            "images": [{"image_id": job.image_ids[i], "uri": job.images[i], "sha256": r.sha256,
                        "width": r.width, "height": r.height} for i, r in enumerate(results)],
            "license": row.license or "unknown", "source": row.source or "unknown",
            "split": split_for(row, results[0].sha256, self.config.output.val_fraction),
        }).model_dump()
        return record, members
