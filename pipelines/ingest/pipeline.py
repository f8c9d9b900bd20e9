"""Ingest: a manifest of videos in, clean sampled clips out (Apache Beam).

``IngestVideos`` is the composite transform; ``run(argv)`` parses options and runs it (the
command ``molmo2-data ingest --manifest M --out DIR [Beam options]`` is ``molmo2_data/ingest.py``).
Locally the runner is Beam's ``FnApiRunner`` (in memory, or
``--direct_running_mode=multi_processing --direct_num_workers=N``);
``--runner=DataflowRunner|SparkRunner|FlinkRunner`` with their usual options runs the same code
elsewhere (worker code lives in this package; stage it with ``--setup_file ./setup.py``).

Outputs under ``--out``: the ingest-output layout of ``shards.layout`` (shards of clips and image
sets with their tables and done markers, clips/imagesets/videos/failures tables, ``shards.json``,
``summary.json`` (under "this_run": what this run reused and made, failures remembered from
earlier runs), ``media/`` for ``--cfr-mp4``, ``.work/`` reused by reruns). All names come from
``shards.layout.IngestLayout``; nothing here spells them.

Every manifest row ends in exactly one outcome: succeeded, failed or duplicate. Rerunning the
same command after an interruption reuses downloads, decoded clips and committed shards and gives
byte-identical outputs (``this_run`` in summary.json aside); ``--retry-failed`` retries the inputs
that failed before, which a plain rerun replays from memory and names in the summary. A clip's
id depends only on its source, window and sample times (``pipelines.ingest.media``), so a rerun
with other render settings or with ``--cfr-mp4`` keeps every id.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import typing
from collections import Counter
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.pvalue import AsSingleton

from pipelines.ingest.config import IngestConfig
from pipelines.ingest.dedupe import DedupeVideos
from pipelines.common.errors import InputError
from pipelines.ingest.summary import (
    Tally, remembered_example, remembered_summary, reuse_figures, rewritten_example, rewritten_warnings,
)
from shards.atomic import write_json
from shards.layout import SHARD_PREFIXES, TABLES, IngestLayout, WorkLayout
from pipelines.ingest.steps import (
    FAILED, REMEMBERED, REWRITTEN_IDS, ProcessVideoFn, ReadManifestFn, WriteShardFn, clip_records,
    failure_record, video_record,
)

__all__ = ["IngestVideos", "run"]


# ------------------------------------------------------------------ small module-level steps
def _by_input_id(item):
    return item.row.input_id, item


def _candidate(item):
    """Dedupe by content: the file's bytes and, when the row cuts a clip, its window.

    Two rows asking for different windows of one file are different inputs; the same window of
    the same bytes is an exact duplicate. Of duplicates the best copy is kept (display
    resolution, then the file's bitrate, then the row number: ``pipelines.ingest.dedupe.preference``).
    """
    import hashlib

    from pipelines.ingest.dedupe import DedupeCandidate

    row, content, video = item.row, item.fetch.sha256, item.video
    if row.start != 0.0 or row.end is not None:
        content = hashlib.sha256(f"{content}|{row.start!r}|{row.end!r}".encode()).hexdigest()
    bitrate = _bitrate(item.fetch.size, video.duration)
    return DedupeCandidate(input_id=row.input_id, rank=row.row_number, sha256=content,
                           phashes=tuple(video.phashes), pixels=int(video.width) * int(video.height),
                           bitrate=bitrate)


def _bitrate(size: int, duration: float) -> float:
    """Bits per second of a file, 0.0 for a duration of 0."""
    if duration <= 0:
        return 0.0
    return round(size * 8 / duration, 3)


def _mark_kept(candidate):
    return candidate.input_id, True


def _by_duplicate_id(duplicate):
    return duplicate.input_id, duplicate


class _RouteDedupeFn(beam.DoFn):
    """(input_id, {"video", "kept", "dup"}) -> kept VideoItem | "failed": duplicate record."""

    def __init__(self, work_dir: str, run_folders: dict[str, str]):
        from pipelines.common.guard import InputGuard
        from pipelines.common.progress import ProgressLog

        self.guard = InputGuard(run_folders)
        self.progress = ProgressLog(str(WorkLayout(work_dir).progress))

    def process(self, element):
        input_id, grouped = element
        (item,) = grouped["video"]
        return self.guard.outcome(lambda: self._route(item, grouped), lambda err: _failed(item, err, self.progress),
                                  "dedupe", input_id)

    def _route(self, item, grouped):
        from pipelines.ingest.steps import _row_json

        if grouped["kept"]:
            yield item
            return
        (dup,) = grouped["dup"]
        message = (f"{item.row.input_id}: {dup.kind} duplicate of {dup.duplicate_of}"
                   + (f" (mean perceptual-hash distance {dup.distance:.2f})" if dup.kind == "near" else
                      " (same bytes)"))
        self.progress.add(duplicate=1, clips=-len(item.video.clips))  # its clips were counted when decoded
        yield beam.pvalue.TaggedOutput(FAILED, failure_record(
            item.row.input_id, "dedupe", f"{dup.kind}_duplicate", message, _row_json(item.row),
            outcome="duplicate", duplicate_of=dup.duplicate_of))


def _failed(item, exc: InputError, progress):
    """The failure record of a fetched video that failed a later step."""
    from pipelines.ingest.steps import _row_json

    progress.add(failed=1, clips=-len(item.video.clips))  # its clips were counted when decoded
    yield beam.pvalue.TaggedOutput(FAILED, failure_record(
        item.row.input_id, exc.stage, exc.error_type, exc.message, _row_json(item.row)))


class _ClipsFn(beam.DoFn):
    """Kept VideoItem -> clip refs; an invalid clip fails its video."""

    def __init__(self, config: IngestConfig, work_dir: str, run_folders: dict[str, str]):
        from pipelines.common.guard import InputGuard
        from pipelines.common.progress import ProgressLog

        self.config = config
        self.guard = InputGuard(run_folders)
        self.progress = ProgressLog(str(WorkLayout(work_dir).progress))

    def process(self, item):
        return self.guard.outcome(lambda: self._clips(item), lambda err: _failed(item, err, self.progress),
                                  "clip", item.row.input_id)

    def _clips(self, item):
        refs = clip_records(item, self.config)
        yield beam.pvalue.TaggedOutput("videos", video_record(item, self.config))
        yield from refs


def _assign_shard(ref, n_refs, per_shard):
    """Shard index from a hash of the key: ceil(n / per_shard) shards, no global key list."""
    import hashlib

    n_shards = max(1, math.ceil(n_refs / per_shard))
    return int(hashlib.sha256(ref[0].encode("utf-8")).hexdigest()[:16], 16) % n_shards, ref


def _by_kind(row, n_partitions):
    return {"video": 0, "image_set": 1, "image": 2}[row.kind]


def _set_ref(element):
    set_id, record, members, _ = element
    return set_id, record, members, None


def _set_rows(element):
    return element[3]


class _RunStepFn(beam.DoFn):
    """Runs a DoFn of the run itself (not of one input) inside ``run_step``: its faults stop the run."""

    def __init__(self, fn: beam.DoFn, what: str):
        self.fn, self.what = fn, what

    def setup(self):
        self.fn.setup()

    def process(self, element):
        from pipelines.common.guard import run_step

        with run_step(self.what):
            return list(self.fn.process(element))

    def teardown(self):
        self.fn.teardown()


class _WriteShards(beam.PTransform):
    """refs -> shard status dicts.

    A sample goes to shard ``hash(key) % ceil(n / per_shard)``: only the count travels as a side
    input, so nothing here grows with the number of samples; shard sizes vary around
    ``per_shard`` and an index that gets no sample writes no shard.
    """

    def __init__(self, out_dir: str, prefix: str, per_shard: int):
        super().__init__()
        self.out_dir, self.prefix, self.per_shard = out_dir, prefix, per_shard

    def expand(self, refs):
        count = refs | "Count" >> beam.combiners.Count.Globally()
        return (refs
                | "AssignShard" >> beam.Map(_assign_shard, AsSingleton(count), self.per_shard)
                | "GroupByShard" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_RunStepFn(WriteShardFn(self.out_dir, self.prefix), "writing shards")))


def _to_list(pcoll, label):
    return AsSingleton(pcoll | label >> beam.combiners.ToList())


class _WritePartFn(beam.DoFn):
    """(part index, [records]) -> part info: the records sorted by key, as a part of table ``name``
    (``IngestLayout.part``).

    The info carries the row count and, for failures, the counts by outcome and by error, so the
    summary never needs the records themselves.
    """

    def __init__(self, out_dir: str, name: str, record_type: str):
        self.out_dir, self.name, self.record_type = out_dir, name, record_type

    def process(self, element):
        from shards.tables import write_table

        index, records = element
        records = sorted(records, key=lambda r: r["key"])
        layout = IngestLayout(self.out_dir)
        path = layout.part(self.name, index)
        write_table(path, self.record_type, records)
        info = {"name": self.name, "part": path.relative_to(layout.root).as_posix(), "rows": len(records)}
        if self.record_type == "failure":
            info["outcomes"] = dict(Counter(r["outcome"] for r in records))
            info["errors"] = dict(Counter(f"{r['stage']}/{r['error_type']}" for r in records))
        yield info


def _key_record(record, n_records, per_part):
    return _assign_shard((record["key"],), n_records, per_part)[0], record


class _TableParts(beam.PTransform):
    """Records -> part infos: one table in parts of about ``per_part`` rows, by hash of the key.

    Only counts travel as side inputs; ``_Finalize`` concatenates the parts one at a time.
    """

    def __init__(self, out_dir: str, name: str, record_type: str, per_part: int = 10_000):
        super().__init__()
        self.out_dir, self.name, self.record_type, self.per_part = out_dir, name, record_type, per_part

    def expand(self, records):
        count = records | "Count" >> beam.combiners.Count.Globally()
        return (records
                | "AssignPart" >> beam.Map(_key_record, AsSingleton(count), self.per_part)
                | "GroupByPart" >> beam.GroupByKey()
                | "WritePart" >> beam.ParDo(_RunStepFn(_WritePartFn(self.out_dir, self.name, self.record_type),
                                                       f"writing the {self.name} table")))


class IngestVideos(beam.PTransform):
    """Manifest paths -> shards, tables and a summary under ``out_dir``.

    Input: ``PCollection[str]`` of manifest paths. Output: ``PCollection[dict]`` with one summary.

    Args:
        config: ingest settings.
        out_dir: output folder.
        work_dir: raw store, frame store and failure memory (default: ``IngestLayout``'s, ``{out_dir}/.work``).
        retry_failed: retry inputs remembered as failed by an earlier run.
    """

    def __init__(self, config: IngestConfig, out_dir: str, work_dir: str | None = None,
                 retry_failed: bool = False, label: str | None = None):
        super().__init__(label)
        self.config = config
        self.out_dir = str(out_dir)
        self.work_dir = str(IngestLayout(out_dir, work_dir or None).work.root)
        self.retry_failed = retry_failed

    def expand(self, manifests):
        from pipelines.ingest.image_steps import (
            ProcessImageSetFn, image_group_key, set_job_from_row, set_jobs_from_group,
        )

        from pipelines.common.progress import ProgressLog

        cfg, per_shard = self.config, self.config.output.clips_per_shard
        folders, progress = {"OUT": self.out_dir, "WORK": self.work_dir}, str(WorkLayout(self.work_dir).progress)
        read = manifests | "ReadManifest" >> beam.ParDo(
            ReadManifestFn(("video", "image_set", "image"), progress)).with_outputs(FAILED, REWRITTEN_IDS, main="rows")
        # read.rows: ManifestRow; read.failed: failure record dicts
        video_rows, set_rows, image_rows = read.rows | "ByKind" >> beam.Partition(_by_kind, 3)
        processed = (video_rows
                     | "Spread" >> beam.Reshuffle()
                     | "FetchProbeDecode" >> beam.ParDo(
                         ProcessVideoFn(cfg, self.work_dir, self.retry_failed, folders)).with_outputs(
                             FAILED, REMEMBERED, main="videos"))
        # processed.videos: VideoItem (metadata + frame-store references only)
        verdicts = (processed.videos
                    | "ToCandidates" >> beam.Map(_candidate).with_output_types(typing.Any)  # not inferred
                    | "Dedupe" >> DedupeVideos(cfg.dedupe))
        routed = ({"video": processed.videos | "KeyVideos" >> beam.Map(_by_input_id),
                   "kept": verdicts["kept"] | "KeyKept" >> beam.Map(_mark_kept),
                   "dup": verdicts["duplicates"] | "KeyDuplicates" >> beam.Map(_by_duplicate_id)}
                  | "JoinVerdicts" >> beam.CoGroupByKey()
                  | "RouteDedupe" >> beam.ParDo(_RouteDedupeFn(self.work_dir, folders)).with_outputs(FAILED, main="kept"))
        clips = routed.kept | "Clips" >> beam.ParDo(_ClipsFn(cfg, self.work_dir, folders)).with_outputs(FAILED, "videos", main="clips")
        # clips.clips: (clip_id, clip record, [(member, path)], mp4 path | None)
        clip_shards = clips.clips | "ClipShards" >> _WriteShards(self.out_dir, "clips", per_shard)

        grouped = (image_rows
                   | "KeyByGroup" >> beam.Map(image_group_key)
                   | "GroupImages" >> beam.GroupByKey()
                   | "MakeSets" >> beam.FlatMap(set_jobs_from_group, ProgressLog(progress)).with_outputs(FAILED, main="jobs"))
        jobs = ((set_rows | "SetJobs" >> beam.Map(set_job_from_row), grouped.jobs)
                | "AllSetJobs" >> beam.Flatten() | "SpreadSets" >> beam.Reshuffle())
        sets = jobs | "FetchCheckImages" >> beam.ParDo(
            ProcessImageSetFn(cfg, self.work_dir, self.retry_failed, folders)).with_outputs(
                FAILED, REMEMBERED, main="sets")
        # sets.sets: (set_id, ImageSet record, [(member, path)], rows it accounts for)
        set_refs = sets.sets | "SetRefs" >> beam.Map(_set_ref)
        set_shards = set_refs | "ImageSetShards" >> _WriteShards(self.out_dir, "imagesets", per_shard)

        failures = ((read.failed, processed.failed, routed.failed, clips.failed, grouped.failed, sets.failed)
                    | "AllFailures" >> beam.Flatten())
        shard_infos = (clip_shards, set_shards) | "AllShards" >> beam.Flatten()
        parts = ((clips.videos | "VideoTable" >> _TableParts(self.out_dir, "videos", "video"),
                  failures | "FailureTable" >> _TableParts(self.out_dir, "failures", "failure"))
                 | "AllParts" >> beam.Flatten())
        # failures replayed from an earlier run; ids made key-safe: counts and a few examples
        remembered = ((processed[REMEMBERED], sets[REMEMBERED]) | "AllRemembered" >> beam.Flatten()
                      | "RememberedExamples" >> beam.Map(remembered_example)
                      | "TallyRemembered" >> beam.CombineGlobally(Tally(20)))
        rewritten = (read[REWRITTEN_IDS] | "RewrittenExamples" >> beam.Map(rewritten_example)
                     | "TallyRewritten" >> beam.CombineGlobally(Tally(10)))
        return (manifests.pipeline
                | "Start" >> beam.Create([None])
                | "Finalize" >> beam.Map(
                    _Finalize(self.out_dir, self.work_dir),
                    AsSingleton(sets.sets | "SetRowCounts" >> beam.Map(_set_rows)
                                | "SetRows" >> beam.CombineGlobally(sum)),
                    _to_list(parts, "PartList"),
                    _to_list(shard_infos, "ShardList"),
                    AsSingleton(remembered), AsSingleton(rewritten)))


class _Finalize:
    """Write the tables, shards.json and summary.json; drop shards of an earlier, larger run;
    sweep what interrupted runs left under temporary names (the run is the folders' only writer)."""

    def __init__(self, out_dir: str, work_dir: str):
        self.out_dir = out_dir
        self.work_dir = work_dir

    def __call__(self, _, set_rows, table_parts, shards, remembered, rewritten):
        from pipelines.common.guard import run_step

        with run_step("finalizing the outputs"):
            return self._finalize(set_rows, table_parts, shards, remembered, rewritten)

    def _finalize(self, set_rows, table_parts, shards, remembered, rewritten):
        from shards.atomic import sweep, write_json
        from shards.commit import remove_stale
        from shards.tables import concat_tables

        layout = IngestLayout(self.out_dir, self.work_dir)
        out = layout.root
        out.mkdir(parents=True, exist_ok=True)
        table_parts = sorted(table_parts, key=lambda p: p["part"])
        for name in ("videos", "failures"):
            concat_tables(layout.table(name), TABLES[name],
                          [out / p["part"] for p in table_parts if p["name"] == name])
        listed = {p["part"] for p in table_parts}
        for stale in layout.parts.glob("*.parquet") if layout.parts.is_dir() else []:
            if stale.relative_to(out).as_posix() not in listed:  # parts of an earlier, larger run
                stale.unlink()
        shards = sorted(shards, key=lambda s: s["shard"])
        for prefix, record_type in SHARD_PREFIXES.items():
            parts = [out / s["table"] for s in shards if s["shard"].startswith(prefix + "/")]
            concat_tables(layout.table(prefix), record_type, parts)
        for prefix in SHARD_PREFIXES:  # shards of an earlier run with more shards
            remove_stale(out, prefix, prefix, {s["shard"] for s in shards})
        for folder in layout.temp_folders():  # interrupted runs' temporary files
            sweep(folder)
        write_json(layout.shards_index, shards, indent=1, newline=True)
        n_videos = sum(p["rows"] for p in table_parts if p["name"] == "videos")
        outcomes = Counter({"succeeded": n_videos + set_rows})
        errors = Counter()
        for p in table_parts:
            outcomes.update(p.get("outcomes", {}))
            errors.update(p.get("errors", {}))
        summary = {
            "rows": sum(outcomes.values()),
            "outcomes": {k: outcomes.get(k, 0) for k in ("succeeded", "failed", "duplicate")},
            "errors": dict(sorted(errors.items())),
            "videos": n_videos,
            "clips": sum(s["num_samples"] for s in shards if s["shard"].startswith("clips/")),
            "frames": sum(s["num_members"] for s in shards if s["shard"].startswith("clips/")),
            "image_sets": sum(s["num_samples"] for s in shards if s["shard"].startswith("imagesets/")),
            "images": sum(s["num_members"] for s in shards if s["shard"].startswith("imagesets/")),
            "shards": len(shards),
            "shard_bytes": sum(s["num_bytes"] for s in shards),
            "warnings": rewritten_warnings(rewritten),
            "rewritten_ids": {"count": rewritten["count"],
                              "examples": [{"given": g, "key": k} for g, k in rewritten["examples"]]},
            # what this run did, as against an earlier one (``run`` adds what it reused)
            "this_run": {"remembered_failures": remembered_summary(remembered)},
        }
        write_json(layout.summary, summary, indent=1, newline=True)
        return summary


# ------------------------------------------------------------------ launcher
def _config_from(args, config: IngestConfig | None = None) -> IngestConfig:
    """``--config`` (or ``config``, or the defaults) with ``--window`` and ``--cfr-mp4`` applied."""
    if config is None:
        config = IngestConfig.from_yaml(args.config) if args.config else IngestConfig()
    data = config.to_dict()
    if args.window is not None:
        data["clips"]["window_s"] = args.window
    if args.cfr_mp4:
        data["frames"]["write_cfr_mp4"] = True
    return IngestConfig.from_dict(data)


def run(argv=None, test_pipeline=None, config: IngestConfig | None = None, console: bool = False) -> dict:
    """Parse ``argv`` (ours + Beam's options) and run the ingest; return the summary.

    The command itself (``molmo2-data ingest``: exit codes, the printed summary) is
    ``molmo2_data/ingest.py``.

    Args:
        argv: command-line arguments (``pipelines.ingest.args``); the others must be Beam
            pipeline options.
        test_pipeline: a pipeline to build on instead of a new one (tests).
        config: settings to use instead of ``--config`` (``--window`` and ``--cfr-mp4`` still apply).
        console: the command's console mode: live progress on stderr, and (unless ``--verbose``)
            Beam's, its workers' and other libraries' logs into ``WORK/ingest.log`` instead.

    Returns:
        The summary dict (also in ``OUT/summary.json``), plus ``seconds`` and throughput figures.

    Raises:
        ConfigError: the settings are invalid (``--config``, ``--window``).
        ManifestError: the manifest is missing or cannot be read as a whole (rows that make no
            sense are failure records, not errors).
        OptionError: an argument that is neither ours nor a Beam pipeline option (with the
            nearest valid one), or a Beam option with an invalid value.
        RunFault: a fault of the run itself (unwritable output or work folder, a full disk, out of
            memory, or an error of the run's own steps); rerunning the same command resumes.
    """
    from pipelines.common import progress as live
    from pipelines.common.console import quiet_console
    from pipelines.common.guard import check_writable
    from pipelines.common.options import check_pipeline_options
    from pipelines.ingest.args import parse_ingest_argv
    from pipelines.ingest.manifest import ManifestNotFoundError, count_rows, read_manifest

    args, beam_args, own = parse_ingest_argv(argv)
    check_pipeline_options(beam_args, own)
    config = _config_from(args, config)
    manifest = args.manifest if "://" in args.manifest else os.path.abspath(args.manifest)
    if "://" not in manifest and not Path(manifest).exists():
        raise ManifestNotFoundError(f"manifest {args.manifest} does not exist")
    read_manifest(manifest)  # an unreadable manifest is the run's error, said before Beam starts
    total = count_rows(manifest) if console else None  # also says a CSV syntax error up front
    layout = IngestLayout(os.path.abspath(args.out), os.path.abspath(args.work_dir) if args.work_dir else None)
    out, work = str(layout.root), str(layout.work.root)
    check_writable([out, work])
    progress_folder = str(layout.work.progress)
    live.reset(progress_folder)
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    if runner is None:  # never Beam's default (it tries to download the Prism binary)
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
    log_path = str(layout.work.log)
    started = time.monotonic()
    with quiet_console(log_path if console else None, verbose=args.verbose) as stream:
        reporter = live.ProgressReporter(progress_folder, total, stream).start() if console else None
        try:
            pipeline = test_pipeline or beam.Pipeline(runner=runner, options=options)
            _ = (pipeline | "Manifest" >> beam.Create([manifest])
                 | "Ingest" >> IngestVideos(config, out, work, args.retry_failed))
            result = pipeline.run()
            result.wait_until_finish()
        except Exception as exc:  # noqa: BLE001 - every way a run can stop becomes one clear RunFault
            raise _run_fault(exc, log_path if console and not args.verbose else None) from None
        finally:
            if reporter is not None:
                reporter.stop(show=sys.exc_info()[0] is None)
    seconds = time.monotonic() - started
    path = layout.summary
    summary = json.loads(path.read_text())
    summary["this_run"].update(reuse_figures(result))
    write_json(path, summary, indent=1, newline=True)
    summary["seconds"] = round(seconds, 3)
    summary["clips_per_s"] = round(summary["clips"] / seconds, 3) if seconds else None
    summary["frames_per_s"] = round(summary["frames"] / seconds, 3) if seconds else None
    return summary


def _run_fault(exc: Exception, log_path: str | None):
    """The ``RunFault`` a failed pipeline run reports: the marked fault of a step, else the error itself."""
    import logging

    from pipelines.common.guard import RunFault, describe, run_fault_message

    message = run_fault_message(exc)
    if message is not None:
        return RunFault(message)
    logging.getLogger(__name__).error("the ingest run stopped", exc_info=exc)  # the whole story, in the log
    inner = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__
    details = f"; the full error is in {log_path}" if log_path else ""
    return RunFault(f"the run stopped on an internal error ({describe(inner)}){details}; rerun the same "
                    "command to resume")

