"""The steps (DoFns and small functions) that ``pipelines.ingest.pipeline.IngestVideos`` chains.

Every element that crosses a step boundary is small metadata; frame bytes stay in the frame
store on disk until the shard writer reads them. The shapes that flow:

    manifest path  -> ReadManifestFn -> ManifestRow            | "failed": failure dict
    ManifestRow    -> ProcessVideoFn -> VideoItem              | "failed": failure dict
    VideoItem      -> clip_records   -> (clip_id, clip record dict, [(member name, path)], mp4 path)
    (shard index, [refs]) -> WriteShardFn -> shard status dict (shard written and committed)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.ingest.config import IngestConfig
from pipelines.common.errors import InputError
from schemas.record_types import make_key
from schemas.records import validate
from shards.atomic import write_json
from shards.layout import SHARD_PREFIXES, IngestLayout, WorkLayout, media_rel

FAILED = "failed"


@dataclass(frozen=True)
class VideoItem:
    """A fetched, probed and decoded video (by reference)."""

    row: object  # pipelines.ingest.manifest.ManifestRow
    fetch: object  # pipelines.ingest.fetch.FetchResult
    video: object  # pipelines.ingest.media.VideoOutput
    cues: tuple | None  # schemas SubtitleCue in file time, or None without subtitles


def failure_record(input_id: str, stage: str, error_type: str, message: str, row_json: str,
                   outcome: str = "failed", duplicate_of: str | None = None, row_number: int | None = None) -> dict:
    """A validated ``FailureRecord`` as a plain dict.

    The key is ``{input_id made key-safe}-{stage}`` (``schemas.record_types.make_key``), plus
    ``-r{row_number}`` when given (manifest failures: two rows can share an id).
    """
    suffix = f"-r{row_number}" if row_number is not None else ""
    data = {"key": f"{make_key(input_id)}-{stage}{suffix}", "input_id": input_id, "stage": stage, "error_type": error_type,
            "message": message, "input": row_json, "outcome": outcome, "duplicate_of": duplicate_of}
    return validate("failure", data).model_dump()


def _row_json(row) -> str:
    return json.dumps(row.to_manifest_dict(), sort_keys=True, ensure_ascii=False)


REWRITTEN_IDS = "rewritten_ids"
"""Output tag of ``(given id, key)`` for each row whose given id is not a key and was rewritten."""


class ReadManifestFn(beam.DoFn):
    """Manifest path -> one ManifestRow per readable row; row failures to the ``failed`` output;
    ``(given id, key)`` to ``rewritten_ids`` for a row whose id had to be made key-safe."""

    def __init__(self, kinds: tuple[str, ...] = ("video",), progress_folder: str | None = None):
        from pipelines.common.progress import ProgressLog

        self.kinds = kinds
        self.progress = ProgressLog(progress_folder)
        self.rows = Metrics.counter("ingest", "manifest_rows")

    def process(self, path):
        from pipelines.ingest.manifest import ManifestFailure, read_manifest

        # each row is parsed inside the guard of read_manifest (parse_row): one row, one outcome
        for item in read_manifest(path):
            self.rows.inc()
            if isinstance(item, ManifestFailure):
                # a row asking again for an input another row already asked for is a duplicate
                dup = item.error_type == "duplicate_id"
                self.progress.add(done=1, duplicate=int(dup), failed=int(not dup))
                yield beam.pvalue.TaggedOutput(FAILED, failure_record(
                    item.input_id, "manifest", item.error_type, item.message, item.raw,
                    outcome="duplicate" if dup else "failed", duplicate_of=item.input_id if dup else None,
                    row_number=item.row_number))
            elif item.kind not in self.kinds:
                self.progress.add(done=1, failed=1)
                yield beam.pvalue.TaggedOutput(FAILED, failure_record(
                    item.input_id, "manifest", "unsupported_kind",
                    f"{item.where}: {item.kind!r} rows are not ingested by this pipeline "
                    f"(it takes {', '.join(self.kinds)})", _row_json(item), row_number=item.row_number))
            else:
                if item.given_id is not None and item.given_id != item.input_id:
                    yield beam.pvalue.TaggedOutput(REWRITTEN_IDS, (item.given_id, item.input_id))
                yield item


class FetchingDoFn(beam.DoFn):
    """Base of the steps that fetch inputs and inspect them in a sandbox child process.

    It holds the settings, the work folder, the ``InputGuard``, the progress log and the two
    Beam counters named by ``counter_names``; subclasses name their failure stage in
    ``sandbox_stage``. The fetcher and the sandbox are made in ``setup`` (per worker) and closed in
    ``teardown``.

    Args:
        config: ingest settings.
        work_dir: raw store, frame store, failure memory and progress events.
        retry_failed: retry inputs remembered as failed.
        run_folders: the run's folders by label (``{"OUT": out, "WORK": work}``), for ``InputGuard``.
    """

    sandbox_stage = "decode"
    counter_names = ("inputs_processed", "inputs_failed")  # (succeeded, failed) Beam counters
    fetcher = None
    sandbox = None
    downloads_reused = Metrics.counter("ingest", "downloads_reused")
    downloads_made = Metrics.counter("ingest", "downloads_made")

    def __init__(self, config: IngestConfig, work_dir: str, retry_failed: bool = False,
                 run_folders: dict[str, str] | None = None):
        from pipelines.common.guard import InputGuard
        from pipelines.common.progress import ProgressLog

        self.config = config
        self.work_dir = work_dir
        self.retry_failed = retry_failed
        self.guard = InputGuard(run_folders or {"WORK": work_dir})
        self.progress = ProgressLog(str(WorkLayout(work_dir).progress))
        ok, failed = self.counter_names
        self.ok = Metrics.counter("ingest", ok)
        self.failed = Metrics.counter("ingest", failed)

    def fetch(self, source: str, input_id: str, **kwargs):
        """``Fetcher.fetch``, counting what came from the raw store (``downloads_reused``)."""
        fetched = self.fetcher.fetch(source, input_id, **kwargs)
        (self.downloads_reused if fetched.from_cache else self.downloads_made).inc()
        return fetched

    def setup(self):
        from pipelines.ingest.fetch import Fetcher
        from pipelines.common.sandbox import Sandbox

        self.fetcher = Fetcher(self.config.fetch, str(WorkLayout(self.work_dir).raw))
        self.sandbox = Sandbox(timeout_s=self.config.frames.decode_timeout_s, stage=self.sandbox_stage)

    def teardown(self):
        if self.sandbox is not None:
            self.sandbox.close()
        if self.fetcher is not None:
            self.fetcher.close()


class FailureMemory:
    """The failures of earlier runs, in ``{work}/failed/{digest}.json``: one file per unit of work
    (a video row, an image set's rows) holding the failure records it ended in.

    A rerun replays a remembered unit's records instead of retrying it, unless ``--retry-failed``
    is given; the replayed records also go to the ``remembered`` output, so the summary can say
    which failures come from an earlier run. Successes need no memory: the raw and frame stores
    are it.
    """

    def __init__(self, work_dir: str):
        self.folder = WorkLayout(work_dir).failed

    def _path(self, rows) -> Path:
        text = "\n".join(_row_json(r) for r in rows)  # one row: the same digest as before sets had memory
        return self.folder / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"

    def recall(self, rows) -> list[dict] | None:
        """The records ``rows`` failed with in an earlier run, or None."""
        path = self._path(rows)
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return data if isinstance(data, list) else [data]

    def remember(self, rows, records: list[dict]) -> None:
        """Keep ``records`` as the outcome of ``rows`` (atomically)."""
        write_json(self._path(rows), records[0] if len(records) == 1 else records)

    def forget(self, rows) -> None:
        """``rows`` succeeded: drop what was remembered of them."""
        self._path(rows).unlink(missing_ok=True)


REMEMBERED = "remembered"
"""Output tag of the failure records replayed from an earlier run (``FailureMemory``)."""


def remembered_outputs(records: list[dict]):
    """The replayed records, to the ``failed`` output and (again) to the ``remembered`` one."""
    for record in records:
        yield beam.pvalue.TaggedOutput(FAILED, record)
        yield beam.pvalue.TaggedOutput(REMEMBERED, record)


class ProcessVideoFn(FetchingDoFn):
    """ManifestRow -> VideoItem: fetch, then probe/filter/decode in a sandboxed child process.

    One ``InputGuard`` boundary: any fault of the row (fetch, probe, decode, subtitles) ends as its
    failure record, a fault of the run stops the run. A failed input is remembered
    (``FailureMemory``) so that a rerun does not retry it unless ``retry_failed`` is set;
    successes are remembered by the raw and frame stores themselves.

    Args:
        config: ingest settings.
        work_dir: raw store, frame store, failure memory and progress events.
        retry_failed: retry inputs remembered as failed.
        run_folders: the run's folders by label (``{"OUT": out, "WORK": work}``), for ``InputGuard``.
    """

    counter_names = ("videos_processed", "videos_failed")

    def __init__(self, config: IngestConfig, work_dir: str, retry_failed: bool = False,
                 run_folders: dict[str, str] | None = None):
        super().__init__(config, work_dir, retry_failed, run_folders)
        self.reuse = {name: Metrics.counter("ingest", name)
                      for name in ("clips_reused", "clips_decoded", "mp4s_reused", "mp4s_made")}

    def process(self, row):
        source = row.url if row.url is not None else row.path
        return self.guard.outcome(lambda: self._succeeded(row), lambda err: self._failed(row, err),
                                  "fetch", source, row.input_id)

    def _succeeded(self, row):
        memory = FailureMemory(self.work_dir)
        remembered = None if self.retry_failed else memory.recall([row])
        if remembered is not None:
            self.failed.inc()
            self.progress.add(done=1, failed=1)
            yield from remembered_outputs(remembered)
            return
        item = self._process(row)
        memory.forget([row])
        self.ok.inc()
        self.progress.add(done=1, clips=len(item.video.clips), frames=sum(len(c.timestamps) for c in item.video.clips))
        yield item

    def _failed(self, row, exc: InputError):
        self.failed.inc()
        record = failure_record(row.input_id, exc.stage, exc.error_type, exc.message, _row_json(row))
        FailureMemory(self.work_dir).remember([row], [record])
        self.progress.add(done=1, failed=1)
        yield beam.pvalue.TaggedOutput(FAILED, record)

    def _process(self, row) -> VideoItem:
        from pipelines.ingest.subtitles import parse_subtitles

        source = row.url if row.url is not None else row.path
        with self.guard.step("fetch", source, row.input_id):
            fetched = self.fetch(source, row.input_id, subtitle=row.subtitle)
        explicit = row.start != 0.0 or row.end is not None
        with self.guard.step("decode", source, row.input_id):  # probe and decode are steps in the child
            video = self.sandbox.call(
                "pipelines.ingest.media:process_video", fetched.raw_path, fetched.sha256,
                row.start if explicit else None, row.end if explicit else None,
                self.config, str(WorkLayout(self.work_dir).frames), name=source, input_id=row.input_id,
                input_name=source)
        for clip in video.clips:  # what came from the frame store, what was made now
            self.reuse["clips_reused" if clip.reused else "clips_decoded"].inc()
            if clip.cfr_mp4:
                self.reuse["mp4s_reused" if clip.mp4_reused else "mp4s_made"].inc()
        cues = None
        if fetched.subtitle_paths:
            lang, path = fetched.subtitle_paths[0]
            with self.guard.step("subtitle", row.subtitle or source, row.input_id):
                cues = tuple(parse_subtitles(Path(path).read_bytes(), name=row.subtitle or path))
        return VideoItem(row=row, fetch=fetched, video=video, cues=cues)


def split_for(row, sha256: str, val_fraction: float) -> str:
    """The manifest's split, else one drawn from the hash of the kept source's bytes."""
    if row.split:
        return row.split
    draw = int(sha256[:8], 16) / 0x100000000
    return "validation" if draw < val_fraction else "train"


def clip_records(item: VideoItem, config: IngestConfig):
    """VideoItem -> (clip_id, clip record dict, [(member name, frame path)], mp4 path or None) per clip.

    Raises:
        InputError: a clip record that fails validation (reported against the video).
    """
    from pipelines.ingest.subtitles import clip_cues

    split = split_for(item.row, item.fetch.sha256, config.output.val_fraction)
    out = []
    for clip in item.video.clips:
        cues = None
        if item.cues is not None:
            cues = [c.model_dump() for c in clip_cues(item.cues, clip.start, clip.end)]
        record = {
            "key": clip.clip_id, "video_id": item.row.input_id, "start": clip.start, "end": clip.end,
            "timestamps": list(clip.timestamps), "frame_indices": list(clip.frame_indices),
            "frame_width": clip.width, "frame_height": clip.height,
            "max_frames": config.sampling.max_frames, "max_fps": float(config.sampling.max_fps),
            "subtitles": cues, "split": split,
        }
        if clip.cfr_mp4:
            record.update(mp4=media_rel(clip.clip_id), mp4_fps=float(clip.cfr_fps),
                          mp4_frame_indices=list(clip.cfr_frame_indices))
        try:
            record = validate("clip", record).model_dump()
        except ValueError as exc:
            raise InputError("decode", "invalid_clip", f"{item.row.input_id}: {exc}") from None
        members = [(f"{i:03d}.jpg", os.path.join(clip.frames_dir, f"{i:03d}.jpg")) for i in range(len(clip.timestamps))]
        out.append((clip.clip_id, record, members, clip.cfr_mp4))
    return out


def video_record(item: VideoItem, config: IngestConfig) -> dict:
    """The ``VideoAsset`` record of a kept video."""
    row, v = item.row, item.video
    return validate("video", {
        "key": row.input_id, "given_id": row.given_id,
        "uri": row.url if row.url is not None else row.path, "sha256": item.fetch.sha256,
        "duration": float(v.duration), "fps": float(v.fps), "num_frames": int(v.num_frames),
        "width": int(v.width), "height": int(v.height), "rotation": int(v.rotation),
        "license": row.license or "unknown", "source": row.source or "unknown",
        "split": split_for(row, item.fetch.sha256, config.output.val_fraction),
    }).model_dump()


def _content_address(path: str) -> str:
    """The part of a store path that names its bytes: the last two parts (``{clip}-{render}/000.jpg``,
    ``ab/{sha}-{side}.jpg``); the rest is where the store lies, which outputs must not depend on."""
    return "/".join(Path(path).parts[-2:])


def shard_fingerprint(refs) -> str:
    """Hash of a shard's keys, records and member renderings: a committed shard is reused only if
    all match (frames rendered anew under the same ids, e.g. at another JPEG quality, rewrite it)."""
    from shards.commit import fingerprint

    def rendering(members, mp4) -> str:
        rendered = [f"{name}={_content_address(path)}" for name, path in members]
        return "\t".join(rendered + ([f"mp4={_content_address(mp4)}"] if mp4 else []))

    return fingerprint((key, record, rendering(members, mp4)) for key, record, members, mp4 in refs)


class WriteShardFn(beam.DoFn):
    """(shard index, [refs]) -> status dict; reuses a shard already committed with the same samples.

    A ref is ``(key, record dict, [(member name, file path)], mp4 path or None)``; the record
    becomes ``{key}.json`` and each member ``{key}.{member name}``, streamed into the tar in key
    order (one sample in memory at a time); the constant-frame-rate mp4s are copied to
    ``IngestLayout.media_mp4``. Writing, the per-shard table, the done marker and reuse on resume are
    the shard commit protocol of ``shards.commit``; the status carries ``num_members`` (frames or
    images) besides the protocol's fields.
    """

    def __init__(self, out_dir: str, prefix: str = "clips"):
        self.out_dir = out_dir
        self.prefix = prefix
        self.written = Metrics.counter("ingest", "shards_written")
        self.skipped = Metrics.counter("ingest", "shards_reused")

    def process(self, element):
        from shards.atomic import atomic_path
        from shards.commit import ShardSlot, commit_shard, committed

        index, refs = element
        refs = sorted(refs, key=lambda r: r[0])
        slot = ShardSlot.numbered(self.out_dir, self.prefix, index)
        fingerprint = shard_fingerprint(refs)
        status = committed(slot, fingerprint)
        if status is not None:
            self.skipped.inc()
            yield status
            return
        for key, _, _, mp4 in refs:
            if mp4:
                with atomic_path(IngestLayout(self.out_dir).media_mp4(key)) as tmp:
                    shutil.copyfile(mp4, tmp)
        samples = ({"__key__": key, "json": record,  # stored as canonical JSON
                    **{name: Path(member_path).read_bytes() for name, member_path in members}}
                   for key, record, members, _ in refs)
        status = commit_shard(slot, samples, content_fingerprint=fingerprint,
                              table=(SHARD_PREFIXES[self.prefix], [r[1] for r in refs]),
                              extra={"num_members": sum(len(r[2]) for r in refs)})
        self.written.inc()
        yield status
