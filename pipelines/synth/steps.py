"""The Beam steps every generator shares: read tables, ask the backend, make records, write parts.

One job: the pieces between "a Job per clip or image set" and "parts of the record folder",
identical for CapQA, SubtitleQA and SynMultiImageQA. Record shapes::

    table paths -> ReadRowsFn       record dicts of one record type (validated, migrated)
    Job(dataset, Request, media) -> BatchElements -> GenerateFn   (Job, Reply)
        (backend + response cache in setup(); counters: inputs, cache_hits, cache_misses,
         backend_calls, no_reply)
    (Job, Reply) -> MakeRecordsFn   records | failures (tagged)      (pipelines.synth.filters)
    records -> WriteParts           part infos ({name, part, rows})  (pipelines.synth.outputs)
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton

from pipelines.common.errors import InputError
from pipelines.synth.backends import PROGRAMS_VERSION, Reply, Request
from pipelines.synth.config import SynthConfig
from pipelines.synth.prompts import prompt_version

__all__ = ["Job", "ReadRowsFn", "GenerateFn", "MakeRecordsFn", "WriteParts", "FAILED", "provenance_for",
           "generator_name", "counter_values", "failure_of", "guarded"]

FAILED = "failed"
NAMESPACE = "synth"
_TASKS = {"CapQA": "capqa", "SubtitleQA": "subtitleqa", "SynMultiImageQA": "synmultiimageqa"}


@dataclass(frozen=True)
class Job:
    """One generation input and the record fields naming its media."""

    dataset: str
    request: Request
    media: dict


def generator_name(dataset: str) -> str:
    """``synth.capqa``: what provenance names as the generator."""
    return f"synth.{_TASKS[dataset]}"


def provenance_for(config: SynthConfig, dataset: str) -> dict[str, Any]:
    """The provenance of every record a run makes (``schemas.provenance``, method ``generated``):
    generator, backend, model, prompt version (the template programs' version for the template
    backend) and seed (the programs' seed for the template backend, else the model's)."""
    from schemas.provenance import generated_provenance

    b, task = config.backend, _TASKS[dataset]
    template = b.kind == "template"
    return generated_provenance(
        generator_name(dataset), b.kind, b.model_name,
        f"{task}.programs.v{PROGRAMS_VERSION}" if template else prompt_version(task, config.generation.prompt_version),
        config.generation.seed if template else b.seed)


def failure_of(input_id: str, error: Any, payload: Any, error_type: Optional[str] = None) -> dict[str, Any]:
    """The failure record (stage ``synth``) of an input that failed as a whole, from its ``InputError``."""
    import json

    from schemas.records import validate

    kind = error_type or error.error_type
    return validate("failure", {
        "key": f"{input_id}-{kind}", "input_id": input_id, "stage": "synth", "error_type": kind,
        "message": error.message if hasattr(error, "message") else str(error),
        "input": json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str), "outcome": "failed",
    }).model_dump()


def guarded(work, input_id: str, payload: Any) -> list:
    """The outputs of one input's ``work``, or its one failure record (tag ``failed``): any fault of
    the input becomes its failure (``pipelines.common.guard``), a fault of the run stops the run."""
    from pipelines.common.guard import InputGuard

    return InputGuard().outcome(
        work, lambda err: [beam.pvalue.TaggedOutput(FAILED, failure_of(input_id, err, payload))], "synth", input_id)


class ReadRowsFn(beam.DoFn):
    """(record type, Parquet path) -> validated record dicts (older schema versions migrated)."""

    def process(self, element):
        import pyarrow.parquet as pq

        from schemas.arrow import from_table

        record_type, path = element
        for record in from_table(record_type, pq.read_table(path)):
            yield record_type, record.model_dump()


class GenerateFn(beam.DoFn):
    """[Job] (a batch) -> (Job, Reply) each; the backend and the cache live for the worker's life."""

    def __init__(self, config: SynthConfig):
        self.config = config
        self.inputs = Metrics.counter(NAMESPACE, "inputs")
        self.hits = Metrics.counter(NAMESPACE, "cache_hits")
        self.misses = Metrics.counter(NAMESPACE, "cache_misses")
        self.calls = Metrics.counter(NAMESPACE, "backend_calls")
        self.no_reply = Metrics.counter(NAMESPACE, "no_reply")
        self.gen = None

    def setup(self):
        from pipelines.synth.backends import make_backend
        from pipelines.synth.cache import CachedBackend, ResponseCache

        c = self.config
        cache = ResponseCache(c.backend.cache) if c.backend.cache else None
        self.gen = CachedBackend(make_backend(c.backend, c.generation), cache)

    def _replies(self, batch) -> list[Reply]:
        """The batch's replies; when the backend fails on the batch as a whole, each request alone,
        so one input's fault becomes that input's ``Reply(error_type="internal_error")``."""
        from pipelines.common.guard import InputGuard, RunFault

        try:
            return self.gen.generate([job.request for job in batch])
        except RunFault:
            raise
        except Exception:  # noqa: BLE001 - sorted out one request at a time below
            pass
        guard, out = InputGuard(), []
        for job in batch:
            try:
                with guard.step("synth", job.request.input_id):
                    out += self.gen.generate([job.request])
            except InputError as err:
                out.append(Reply(error_type=err.error_type, message=err.message))
        return out

    def process(self, batch):
        before = (self.gen.stats.hits, self.gen.stats.misses, self.gen.stats.calls)
        replies = self._replies(batch)
        s = self.gen.stats
        self.inputs.inc(len(batch))
        self.hits.inc(s.hits - before[0])
        self.misses.inc(s.misses - before[1])
        self.calls.inc(s.calls - before[2])
        for job, reply in zip(batch, replies):
            if reply.text is None:
                self.no_reply.inc()
            yield job, reply

    def teardown(self):
        if self.gen is not None:
            self.gen.backend.close()


class MakeRecordsFn(beam.DoFn):
    """(Job, Reply) -> records (main output) and failure records (tag ``failed``)."""

    def __init__(self, config: SynthConfig):
        self.config = config
        self.with_records = Metrics.counter(NAMESPACE, "inputs_with_records")

    def process(self, element):
        from pipelines.synth.filters import make_records

        job, reply = element
        g = self.config.generation

        def work():
            out = make_records(job.dataset, job.request.input_id, reply, job.media,
                               provenance_for(self.config, job.dataset), min_negatives=g.min_negatives,
                               max_questions=g.max_questions, support_threshold=g.support_threshold)
            return out.records + [beam.pvalue.TaggedOutput(FAILED, f) for f in out.failures]

        outputs = guarded(work, job.request.input_id, {"input_id": job.request.input_id, "reply": (reply.text or "")[:2000]})
        if any(not isinstance(o, beam.pvalue.TaggedOutput) for o in outputs):
            self.with_records.inc()
        yield from outputs


def _part_of(record, n_records, per_part):
    n_parts = max(1, math.ceil(n_records / per_part))
    return int(hashlib.sha256(record["key"].encode("utf-8")).hexdigest()[:16], 16) % n_parts, record


class _WritePartFn(beam.DoFn):
    def __init__(self, staging: str, name: str, record_type: str):
        self.staging, self.name, self.record_type = staging, name, record_type

    def process(self, element):
        from pipelines.synth.outputs import write_part

        index, records = element
        yield write_part(self.staging, self.name, self.record_type, index, records)


class WriteParts(beam.PTransform):
    """Records -> part infos: parts of about ``per_part`` rows by hash of the key (only a count
    travels as a side input); an empty input writes no part."""

    def __init__(self, staging: str, name: str, record_type: str, per_part: int = 10_000):
        super().__init__()
        self.staging, self.name, self.record_type, self.per_part = staging, name, record_type, per_part

    def expand(self, records):
        count = records | "Count" >> beam.combiners.Count.Globally()
        return (records
                | "AssignPart" >> beam.Map(_part_of, AsSingleton(count), self.per_part)
                | "GroupByPart" >> beam.GroupByKey()
                | "WritePart" >> beam.ParDo(_WritePartFn(self.staging, self.name, self.record_type)))


def counter_values(result) -> dict[str, int]:
    """The synth counters of a finished pipeline run, by name (0 for a counter never touched)."""
    from apache_beam.metrics.metric import MetricsFilter

    names = ("inputs", "inputs_with_records", "not_inputs", "cache_hits", "cache_misses", "backend_calls", "no_reply")
    out = dict.fromkeys(names, 0)
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        if c.key.metric.name in out:
            out[c.key.metric.name] += c.committed or 0
    return out
