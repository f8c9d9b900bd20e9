"""SynMultiImageQA as a Beam transform: data, rendered image sets in the ingest-output layout, questions.

One job: ``GenerateSynMultiImageQA``, from set specs to (a) image sets written as one more ingest
output (publish takes it with ``--ingest``) and (b) the parts of a SynMultiImageQA record folder.
Record shapes::

    {"index", "set_id", "seed", "split"}    one spec per set (``set_jobs``)
      -> MakeSetFn     pipelines.synth.cosyn.make_set: data + render items -> PNG bytes (lossless),
                       an ImageSet record (sha256, width, height, license, source, split per image)
                       | failure: an item the renderer refuses (render_failed)
         -> Job(SynMultiImageQA, Request(synmultiimageqa, set id, facts), {image_set_id, image_ids})
            -> BatchElements -> GenerateFn -> MakeRecordsFn -> WriteParts     (pipelines.synth.steps)
         -> (set id, record, {"i.png": bytes}) -> hash(set id) % shards -> WriteSetShardFn
            imagesets/imagesets-NNNNNN.tar ({set}.json + {set}.{i}.png) + .parquet + .done.json

``finalize_media(media_out, n_shards)`` then writes ``imagesets.parquet`` (every ImageSet, shard
order) and ``shards.json`` (per shard: sha256, counts, first/last key, its table and the table's
sha256, as ingest writes it) and renames the staged folder into place. Sets are ``{prefix}_NNNNNN``;
set ``i`` depends only on (seed, i), so more sets extend fewer.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import apache_beam as beam

from pipelines.common.errors import InputError
from pipelines.synth.backends import Request
from pipelines.synth.config import InputsError, SynthConfig
from pipelines.synth.steps import FAILED, GenerateFn, Job, MakeRecordsFn, WriteParts, generator_name, guarded

__all__ = ["GenerateSynMultiImageQA", "MakeSetFn", "set_jobs", "finalize_media", "SOURCE", "LICENSE",
           "SETS_PER_SHARD"]

SOURCE = generator_name("SynMultiImageQA")
LICENSE = "CC0-1.0"
"""Generated data and its drawings carry no third-party rights."""
SETS_PER_SHARD = 1000
MEDIA = "media"


def set_jobs(args, config: SynthConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The set specs of a run, and its inputs as the manifest names them (none: the data is generated).

    Raises:
        InputsError: ``--sets`` below 1 or a prefix that is not key-safe.
    """
    from pipelines.synth.outputs import prepare

    if args.sets < 1:
        raise InputsError(f"--sets must be >= 1, got {args.sets}")
    if not args.prefix or not all(c.isascii() and (c.isalnum() or c in "_-") for c in args.prefix):
        raise InputsError(f"--prefix must be letters, digits, '_' or '-', got {args.prefix!r}")
    splits = args.split or ["train"]
    seed = config.generation.seed
    specs = [{"index": i, "set_id": f"{args.prefix}_{i:06d}", "seed": seed * 100_000 + i,
              "split": splits[i % len(splits)]} for i in range(args.sets)]
    prepare(args.media_out, manifest="shards.json")
    return specs, [{"role": "generated", "sets": args.sets, "prefix": args.prefix, "splits": splits}]


class MakeSetFn(beam.DoFn):
    """spec -> Job (main) | (set id, ImageSet record, members) (tag ``media``) | failure (tag ``failed``)."""

    def __init__(self, config: SynthConfig):
        self.config = config

    def process(self, spec):
        yield from guarded(lambda: list(self._make(spec)), spec["set_id"], spec)

    def _make(self, spec):
        from pipelines.render import render_png
        from pipelines.synth.cosyn import make_set, render_items
        from schemas.records import validate

        g = self.config.generation
        set_id = spec["set_id"]
        facts = make_set(set_id, spec["seed"], tuple(g.images_per_set))
        try:
            pngs = [render_png(item) for item in render_items(facts)]
        except (ValueError, TypeError) as exc:  # the renderer refuses data (text that does not fit)
            raise InputError("synth", "render_failed", f"set {set_id}: {exc}") from None
        images = [{"image_id": f"{set_id}_{i}", "uri": f"synth://{set_id}/{i}.png",
                   "sha256": hashlib.sha256(png).hexdigest(), "width": img["item"]["width"],
                   "height": img["item"]["height"]} for i, (png, img) in enumerate(zip(pngs, facts["images"]))]
        record = validate("image_set", {"key": set_id, "images": images, "license": LICENSE, "source": SOURCE,
                                        "split": spec["split"]}).model_dump()
        yield beam.pvalue.TaggedOutput(MEDIA, (set_id, record, {f"{i}.png": png for i, png in enumerate(pngs)}))
        yield Job("SynMultiImageQA", Request("synmultiimageqa", set_id, facts),
                  {"image_set_id": set_id, "image_ids": [img["image_id"] for img in images]})


def _shard_of(element, n_shards: int):
    return int(hashlib.sha256(element[0].encode("utf-8")).hexdigest()[:16], 16) % n_shards, element


class WriteSetShardFn(beam.DoFn):
    """(shard index, [(set id, record, members)]) -> the shard's status: tar, table and done marker
    committed by ``shards.commit`` (the marker written last)."""

    def __init__(self, staging: str):
        self.staging = staging

    def process(self, element):
        from shards.commit import ShardSlot, commit_shard, fingerprint

        index, refs = element
        refs = sorted(refs, key=lambda r: r[0])
        slot = ShardSlot.numbered(self.staging, "imagesets", index)
        os.makedirs(os.path.dirname(slot.path(slot.tar)), exist_ok=True)
        # the members are drawn from the records' data (their sha256 stand in the records)
        status = commit_shard(slot, ({"__key__": k, "json": rec, **members} for k, rec, members in refs),
                              content_fingerprint=fingerprint((k, rec) for k, rec, _ in refs),
                              table=("image_set", [rec for _, rec, _ in refs]),
                              extra={"num_members": sum(len(m) for _, _, m in refs)})
        yield status


class GenerateSynMultiImageQA(beam.PTransform):
    """Set specs -> {"records", "failures": part infos, "shards": shard statuses} (module docstring)."""

    def __init__(self, config: SynthConfig, staging: str, media_out: str, sets_per_shard: int = SETS_PER_SHARD):
        super().__init__()
        self.config, self.staging, self.media_out = config, str(staging), str(media_out)
        self.sets_per_shard = sets_per_shard

    def expand(self, specs):
        from pipelines.synth.outputs import staging_dir

        media_staging = str(staging_dir(self.media_out))
        n_shards = beam.pvalue.AsSingleton(
            specs | "CountSets" >> beam.combiners.Count.Globally()
            | "ShardCount" >> beam.Map(lambda n, per: max(1, math.ceil(n / per)), self.sets_per_shard))
        made = (specs
                | "Reshuffle" >> beam.Reshuffle()
                | "MakeSets" >> beam.ParDo(MakeSetFn(self.config)).with_outputs(FAILED, MEDIA, main="jobs"))
        shards = (made[MEDIA]
                  | "AssignShard" >> beam.Map(_shard_of, n_shards)
                  | "GroupByShard" >> beam.GroupByKey()
                  | "WriteShards" >> beam.ParDo(WriteSetShardFn(media_staging)))
        qa = (made.jobs
              | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=4 * self.config.backend.concurrency)
              | "Generate" >> beam.ParDo(GenerateFn(self.config))
              | "MakeRecords" >> beam.ParDo(MakeRecordsFn(self.config)).with_outputs(FAILED, main="records"))
        failures = (made[FAILED], qa[FAILED]) | "Failures" >> beam.Flatten()
        return {"records": qa.records | "WriteRecords" >> WriteParts(self.staging, "records", "SynMultiImageQA"),
                "failures": failures | "WriteFailures" >> WriteParts(self.staging, "failures", "failure"),
                "shards": shards}


def finalize_media(media_out: str | os.PathLike) -> dict[str, Any]:
    """Write ``imagesets.parquet`` and ``shards.json`` from the committed shards, then rename the
    staged folder to ``media_out``; return ``{"image_sets", "images", "shards"}``."""
    from pipelines.synth.outputs import staging_dir
    from shards.atomic import write_json
    from shards.commit import DONE_SUFFIX
    from shards.layout import IngestLayout
    from shards.tables import concat_tables

    out = Path(media_out).resolve()
    staging = staging_dir(out)
    layout = IngestLayout(staging)
    done = sorted(layout.shard_folder("imagesets").glob(f"*.tar{DONE_SUFFIX}"))
    shards = sorted((json.loads(p.read_text()) for p in done), key=lambda s: s["shard"])
    concat_tables(layout.imagesets_table, "image_set", [staging / s["table"] for s in shards])
    write_json(layout.shards_index, shards, indent=1, newline=True)
    shutil.rmtree(staging / ".parts", ignore_errors=True)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)
    return {"image_sets": sum(s["num_samples"] for s in shards), "images": sum(s["num_members"] for s in shards),
            "shards": len(shards)}
