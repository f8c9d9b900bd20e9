"""Publish: ingest media and records in, one versioned WebDataset tree per dataset out (Beam).

``PublishDatasets`` is the composite transform; ``run`` (in ``pipelines.publish.version``)
pins the inputs, runs it on Beam's ``FnApiRunner`` (or any runner named in the options) and
commits each dataset by writing its ``manifest.json`` last.

Steps (record shapes in ``join``, ``shard_plan``, ``rules``, ``samples``)::

    media shards --ReadMedia--> (media key, meta) + (media key, frames); clip meta + videos.parquet
    record files --ReadRecords--> ((dataset, key), record)             | failures
    review files --ReadReviews--> ((dataset, key), decision)           | failures
    records + decisions --ApplyReviews (CoGroupByKey)--> (media key, (dataset, record)) | excluded
    meta + records --JoinMeta (CoGroupByKey)--> validation rows        | failures, excluded
    rows --BatchElements--> ValidateBatch (Great Expectations) --> passed | failures (rule named)
    meta + frames + passed --BuildSamples (CoGroupByKey)--> (dataset, split, sample): one per media
                                                                        item (frames shuffled once)
    samples --DatasetRules--> (dataset, [violation])                   blocks a dataset's shards
    samples --PlanShards--> (dataset, split, number, [encoded]) --WriteShards--> tar + span index

Per dataset, small results go to ``<version dir>/.publish/`` (shard infos and spans, failures,
exclusions, tallies, histograms, violations, member names, previews) for the finalize step to
assemble.
"""
from __future__ import annotations

import json
from typing import Any

import apache_beam as beam

from pipelines.publish import join as J
from pipelines.publish.config import PublishConfig
from pipelines.publish.inputs import Inputs
from pipelines.publish.rules import DatasetRules
from pipelines.publish.shard_plan import PlanShards
from pipelines.publish.stats import sample_metrics

__all__ = ["PublishDatasets", "STAGING", "staging_dir", "write_staged"]

STAGING = ".publish"


def staging_dir(root: str, dataset: str, version: str) -> str:
    """Where a run leaves its per-dataset results for the finalize step."""
    from shards.published import join, version_dir

    return join(version_dir(root, dataset, version), STAGING)


def write_staged(url: str, data: Any) -> None:
    """Write JSON (canonical) or bytes to ``url`` atomically."""
    from pipelines.publish.storage import write_bytes

    payload = data if isinstance(data, bytes) else (
        json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    write_bytes(url, payload)


class _WriteShardFn(beam.DoFn):
    """``(dataset, split, number, [EncodedSample])`` -> the shard, its span index, its info file."""

    def __init__(self, root: str, version: str, mtime: int):
        self.root, self.version, self.mtime = root, version, mtime

    def process(self, element, blocked):
        from pipelines.publish.shard_plan import archive_size
        from pipelines.publish.storage import write_shard_at
        from shards.index import spans_for
        from shards.published import join, version_dir

        dataset, split, number, chunk = element
        if dataset in blocked:
            return
        name = f"{split}-{number:06d}.tar"
        url = join(version_dir(self.root, dataset, self.version), name)
        info = write_shard_at(url, [s.as_sample() for s in chunk], self.mtime)
        if info.num_bytes != archive_size(sum(s.size for s in chunk)):  # the spans below assume exact sizes
            raise RuntimeError(f"{url}: {info.num_bytes} bytes written, {archive_size(sum(s.size for s in chunk))} "
                               "planned: shard_plan.encode and shards.writer disagree on the tar layout")
        spans = spans_for([(s.key, s.members, s.size) for s in chunk])
        entry = {"name": name, "split": split, "number": number, "sha256": info.sha256,
                 "num_samples": info.num_samples, "num_bytes": info.num_bytes, "first_key": info.first_key,
                 "last_key": info.last_key, "spans": [list(s) for s in spans]}
        write_staged(join(staging_dir(self.root, dataset, self.version), "shards", name + ".json"), entry)
        yield dataset, name


def _write_grouped(element, root: str, version: str, name: str, sort_key):
    dataset, items = element
    rows = sorted(items, key=sort_key)
    from shards.published import join

    write_staged(join(staging_dir(root, dataset, version), name), rows)
    return dataset


def _histogram_entry(element):
    (dataset, metric, value), n = element
    return dataset, (metric, value, n)


def _preview_rank(element):
    import hashlib

    dataset, split, sample = element
    return dataset, (hashlib.sha256(sample["__key__"].encode()).hexdigest(), sample)


class _RenderPreviews(beam.DoFn):
    """``(dataset, [(rank, sample)])`` -> preview PNGs and captions in the staging folder."""

    def __init__(self, root: str, version: str):
        self.root, self.version = root, version

    def process(self, element):
        from pipelines.publish.preview import render_sample
        from shards.published import join

        dataset, ranked = element
        where = staging_dir(self.root, dataset, self.version)
        for _, sample in sorted(ranked, key=lambda x: x[0]):
            png, caption = render_sample(sample)
            write_staged(join(where, "preview", f"{sample['__key__']}.png"), png)
            write_staged(join(where, "preview", f"{sample['__key__']}.json"), {"caption": caption})
        yield dataset


class PublishDatasets(beam.PTransform):
    """Inputs (pinned) -> shards and per-dataset results under ``<root>/<dataset>/<version>/``."""

    def __init__(self, inputs: Inputs, config: PublishConfig, root: str, datasets: list[str]):
        super().__init__()
        self.inputs, self.config, self.root, self.datasets = inputs, config, root, list(datasets)

    def expand(self, pbegin):
        cfg, inputs, root, version = self.config, self.inputs, self.root, self.config.version
        wanted = set(self.datasets)
        # ---- media: shards -> (media key, (meta, frames)); clips joined with their video
        media = (pbegin | "MediaShards" >> beam.Create(sorted(inputs.media_shards, key=lambda s: s.path))
                 | "ReadMedia" >> beam.ParDo(J.ReadMediaFn()).with_outputs(
                     J.ReadMediaFn.CLIPS, J.ReadMediaFn.FRAMES, main="sets"))
        videos = (pbegin | "VideoTables" >> beam.Create(sorted(inputs.videos_tables))
                  | "ReadVideos" >> beam.FlatMap(J.read_videos))
        clips = ({"clips": media[J.ReadMediaFn.CLIPS], "videos": videos} | "ClipsWithVideo" >> beam.CoGroupByKey()
                 | "AttachVideo" >> beam.FlatMap(J.attach_videos))
        metas = (clips, media["sets"]) | "AllMedia" >> beam.Flatten()
        frames = media[J.ReadMediaFn.FRAMES]
        # ---- records and review decisions -> (media key, (dataset, record))
        files = sorted((d, p) for d, p in inputs.record_files if d in wanted)
        read = (pbegin | "RecordFiles" >> beam.Create(files)
                | "ReadRecords" >> beam.ParDo(J.ReadRecordsFn()).with_outputs(J.FAILED, J.TALLY, main="records"))
        reviews = (pbegin | "ReviewFiles" >> beam.Create(sorted(inputs.review_files))
                   | "ReadReviews" >> beam.ParDo(J.ReadReviewsFn()).with_outputs(J.FAILED, main="decisions"))
        decisions = reviews["decisions"] | "WantedDecisions" >> beam.Filter(lambda e: e[0][0] in wanted)
        reviewed = ({"records": read["records"], "reviews": decisions} | "RecordsWithReviews" >> beam.CoGroupByKey()
                    | "ApplyReviews" >> beam.ParDo(J.ApplyReviewsFn()).with_outputs(
                        J.FAILED, J.TALLY, J.EXCLUDED, main="records"))
        # ---- join with media meta, then record rules in batches
        rows = ({"meta": metas, "records": reviewed["records"]} | "RecordsWithMeta" >> beam.CoGroupByKey()
                | "JoinMeta" >> beam.ParDo(J.JoinMetaFn(inputs.takedown, cfg.licenses)).with_outputs(
                    J.FAILED, J.EXCLUDED, main="rows"))
        checked = (rows["rows"]
                   | "Batch" >> beam.BatchElements(min_batch_size=cfg.validation_batch,
                                                   max_batch_size=cfg.validation_batch)
                   | "RecordRules" >> beam.ParDo(J.ValidateBatchFn(cfg.min_images, cfg.max_images)).with_outputs(
                       J.FAILED, main="passed"))
        samples = ({"meta": metas, "frames": frames, "records": checked["passed"]}
                   | "RecordsWithMedia" >> beam.CoGroupByKey()
                   | "BuildSamples" >> beam.ParDo(J.BuildSampleFn()))
        # ---- outcomes: failures, exclusions, tallies
        failures = ((read[J.FAILED], reviews[J.FAILED], reviewed[J.FAILED], rows[J.FAILED], checked[J.FAILED])
                    | "Failures" >> beam.Flatten()
                    | "WantedFailures" >> beam.Filter(lambda e: e[0] in wanted))
        excluded = (reviewed[J.EXCLUDED], rows[J.EXCLUDED]) | "Exclusions" >> beam.Flatten()
        per_sample = samples | "SampleTallies" >> beam.Map(
            lambda e: (e[0], "split_records", e[1], len(e[2]["json"]["records"])))
        tallies = ((read[J.TALLY], reviewed[J.TALLY], per_sample,
                    failures | "FailureTally" >> beam.Map(_failure_tally),
                    excluded | "ExclusionTally" >> beam.Map(lambda e: (e[0], "excluded", e[1]["reason"], 1)))
                   | "AllTallies" >> beam.Flatten()
                   | "TallyKey" >> beam.Map(lambda t: (t[:3], t[3]))
                   | "SumTallies" >> beam.CombinePerKey(sum)
                   | "TallyTuple" >> beam.MapTuple(lambda k, n: (*k, n)))
        # ---- dataset rules, then shards (skipped for blocked datasets)
        violations = {"samples": samples, "tallies": tallies} | "DatasetRules" >> DatasetRules(
            cfg.allowed_licenses, cfg.max_failure_rate)
        written = (samples | "PlanShards" >> PlanShards(cfg.shard_max_bytes, cfg.bucket_fill, cfg.mtime)
                   | "WriteShards" >> beam.ParDo(_WriteShardFn(root, version, cfg.mtime),
                                                 blocked=beam.pvalue.AsDict(violations)))
        # ---- per-dataset results for the finalize step
        staged = [
            failures | "GroupFailures" >> beam.GroupByKey() | "WriteFailures" >> beam.Map(
                _write_grouped, root, version, "failures.json", lambda f: f["key"]),
            excluded | "GroupExcluded" >> beam.GroupByKey() | "WriteExcluded" >> beam.Map(
                _write_grouped, root, version, "exclusions.json", lambda x: (x["key"], x["reason"])),
            tallies | "TallyByDataset" >> beam.Map(lambda t: (t[0], list(t[1:]))) | "GroupTallies" >> beam.GroupByKey()
            | "WriteTallies" >> beam.Map(_write_grouped, root, version, "tallies.json", lambda t: t[:2]),
            violations | "WriteViolations" >> beam.Map(
                lambda e: _write_grouped(e, root, version, "violations.json", lambda v: v["rule"])),
            samples | "Measure" >> beam.FlatMap(
                lambda e: [((e[0], m, v), 1) for m, v in sample_metrics(e[0], e[2]["json"])])
            | "SumMetrics" >> beam.CombinePerKey(sum) | "HistogramEntry" >> beam.Map(_histogram_entry)
            | "GroupHistograms" >> beam.GroupByKey()
            | "WriteHistograms" >> beam.Map(_write_grouped, root, version, "histograms.json",
                                            lambda h: (h[0], str(h[1]))),
            samples | "MemberNames" >> beam.FlatMap(lambda e: [(e[0], m) for m in e[2] if not m.startswith("__")])
            | "DistinctMembers" >> beam.Distinct() | "GroupMembers" >> beam.GroupByKey()
            | "WriteMembers" >> beam.Map(_write_grouped, root, version, "members.json", lambda m: m),
            samples | "PreviewRank" >> beam.Map(_preview_rank)
            | "PickPreviews" >> beam.combiners.Top.PerKey(cfg.preview_samples, key=lambda x: x[0], reverse=True)
            | "RenderPreviews" >> beam.ParDo(_RenderPreviews(root, version)),
            written,
        ]
        return staged | "Staged" >> beam.Flatten()


def _failure_tally(element):
    dataset, failure = element
    if failure["error_type"] == "invalid_review":  # a bad decision file row is not a record outcome
        return dataset, "review", "invalid", 1
    return dataset, "failed", failure["error_type"], 1
