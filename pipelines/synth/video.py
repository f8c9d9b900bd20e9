"""CapQA and SubtitleQA: multiple-choice questions about clips, as Beam transforms.

One job: ``GenerateCapQA`` and ``GenerateSubtitleQA``, composites from the clip tables of ingest
outputs and the record tables of normalized annotations to the parts of a record folder
(:mod:`pipelines.synth.outputs`). Record shapes::

    (record type, Parquet path)    "clip" tables of ingest outputs; Cap / VideoPoint / VideoTrack tables
      -> ReadRowsFn                (record type, record dict)
      -> key by clip id -> CoGroupByKey      clip id -> {clip rows, records by dataset}
      -> BuildJobFn                Job(dataset, Request(task, clip id, facts), media fields)
                                   | failure: records about a clip no ingest output has (unknown_clip),
                                     two different clip rows under one id (conflicting_clip)
                                   | not an input (counted): CapQA: a clip no record is about;
                                     SubtitleQA: a clip without subtitle cues
      -> BatchElements -> GenerateFn -> MakeRecordsFn     records | failures   (pipelines.synth.steps)
      -> WriteParts                part infos of "records" and "failures"

The facts are :func:`pipelines.synth.facts.clip_facts`; CapQA's leave the subtitles out (its
questions are about what is seen), SubtitleQA's records carry the clip's cues.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.common.errors import InputError
from pipelines.synth.backends import Request
from pipelines.synth.config import SynthConfig
from pipelines.synth.facts import clip_facts
from pipelines.synth.steps import (
    FAILED, NAMESPACE, GenerateFn, Job, MakeRecordsFn, ReadRowsFn, WriteParts, failure_of, guarded,
)

__all__ = ["GenerateCapQA", "GenerateSubtitleQA", "BuildJobFn"]

def _by_clip(element):
    record_type, record = element
    if record_type == "clip":
        return record["key"], ("clip", record)
    return record["clip_id"], (record_type, record)

class BuildJobFn(beam.DoFn):
    """(clip id, [(record type, record)]) -> Job | failure (tag ``failed``) | nothing (not an input)."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.not_inputs = Metrics.counter(NAMESPACE, "not_inputs")

    def process(self, element):
        clip_id, rows = element
        rows = list(rows)
        yield from guarded(lambda: list(self._build(clip_id, rows)), clip_id, {"clip_id": clip_id})

    def _build(self, clip_id, rows):
        clips = [r for t, r in rows if t == "clip"]
        records: dict[str, list] = {}
        for t, r in rows:
            if t != "clip":
                records.setdefault(t, []).append(r)
        if not clips:
            keys = sorted(r["key"] for rs in records.values() for r in rs)
            yield beam.pvalue.TaggedOutput(FAILED, failure_of(clip_id, InputError(
                "synth", "unknown_clip", f"{len(keys)} record(s) are about clip {clip_id}, which no ingest output "
                f"given has: {keys[:5]}"), {"clip_id": clip_id, "records": keys}))
            return
        if any(c != clips[0] for c in clips[1:]):
            yield beam.pvalue.TaggedOutput(FAILED, failure_of(clip_id, InputError(
                "synth", "conflicting_clip", f"clip {clip_id} is in two ingest outputs with different records"),
                {"clip_id": clip_id}))
            return
        clip = clips[0]
        media = {"video_id": clip["video_id"], "clip_id": clip_id, "clip_start": clip["start"], "clip_end": clip["end"]}
        facts = clip_facts(clip, records)
        if self.dataset == "CapQA":
            if not records:
                self.not_inputs.inc()
                return
            facts["subtitles"] = []
            task = "capqa"
        else:
            if not facts["subtitles"]:
                self.not_inputs.inc()
                return
            media["subtitles"] = [{"start": c["start"], "end": c["end"], "text": c["text"]}
                                  for c in clip["subtitles"]]
            task = "subtitleqa"
        yield Job(self.dataset, Request(task, clip_id, facts), media)


class _GenerateVideoQA(beam.PTransform):
    """(record type, Parquet path) -> {"records": part infos, "failures": part infos}."""

    DATASET = ""

    def __init__(self, config: SynthConfig, staging: str):
        super().__init__()
        self.config, self.staging = config, str(staging)

    def expand(self, tables):
        rows = (tables
                | "ReadRows" >> beam.ParDo(ReadRowsFn())
                | "ByClip" >> beam.Map(_by_clip)
                | "GroupByClip" >> beam.GroupByKey())
        jobs = rows | "BuildJobs" >> beam.ParDo(BuildJobFn(self.DATASET)).with_outputs(FAILED, main="jobs")
        made = (jobs.jobs
                | "Reshuffle" >> beam.Reshuffle()
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=4 * self.config.backend.concurrency)
                | "Generate" >> beam.ParDo(GenerateFn(self.config))
                | "MakeRecords" >> beam.ParDo(MakeRecordsFn(self.config)).with_outputs(FAILED, main="records"))
        failures = (jobs[FAILED], made[FAILED]) | "Failures" >> beam.Flatten()
        return {"records": made.records | "WriteRecords" >> WriteParts(self.staging, "records", self.DATASET),
                "failures": failures | "WriteFailures" >> WriteParts(self.staging, "failures", "failure")}

class GenerateCapQA(_GenerateVideoQA):
    """Clip tables + Cap/VideoPoint/VideoTrack record tables -> CapQA record parts (module docstring)."""

    DATASET = "CapQA"

class GenerateSubtitleQA(_GenerateVideoQA):
    """Clip tables (+ record tables, for events) -> SubtitleQA record parts (module docstring)."""

    DATASET = "SubtitleQA"
