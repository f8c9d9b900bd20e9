"""Deterministic, size-capped shard assignment that no worker computes from a global list.

One job: decide which ``{split}-NNNNNN.tar`` each sample of a dataset goes to, in Beam, so that
the same samples and settings always give the same shards and the same bytes (Beam's own file
sinks place records in whatever order workers finish).

The rule, per (dataset, split):

1. ``total``: the split's encoded bytes (one ``CombinePerKey(sum)``: a number, not a list);
2. ``buckets = ceil(total / (bucket_fill * shard_max_bytes))``; a sample goes to bucket
   ``int(sha256(key)[:16], 16) % buckets``: a pure function of its key;
3. each bucket (about ``bucket_fill * shard_max_bytes`` bytes, held by one worker) is sorted by
   key and cut into shards greedily at ``shard_max_bytes`` (exact tar sizes: headers, padding,
   end blocks), so no shard passes the cap unless one sample alone does;
4. shard numbers: bucket ``b``'s ``j``-th shard is ``sum(shards of buckets < b) + j``, from the
   per-bucket shard counts (one small dict per split as a side input).

Record shapes: in ``(dataset, split, sample)``; ``encode`` -> ``EncodedSample``; out of
``plan_shards`` ``(dataset, split, shard number, [EncodedSample] sorted by key)``.
"""
from __future__ import annotations

import hashlib
import math
import tarfile
from typing import Any, NamedTuple

import apache_beam as beam

from shards.keys import encode_sample
from shards.tarformat import archive_size, member_frames

__all__ = ["EncodedSample", "encode", "bucket_of", "chunk_bucket", "archive_size", "PlanShards"]


class EncodedSample(NamedTuple):
    """A sample as tar members, and the bytes those members take in a shard."""

    key: str
    members: tuple[tuple[str, bytes], ...]
    size: int

    def as_sample(self) -> dict[str, Any]:
        """The ``{"__key__", ext: bytes}`` dict ``shards.writer`` takes (bytes are stored as is)."""
        return {"__key__": self.key, **dict(self.members)}


def encode(sample: dict[str, Any], mtime: int) -> EncodedSample:
    """Validate and encode a sample (``shards.keys.encode_sample``) and size it exactly.

    A member whose name is ASCII and at most 100 characters takes one 512-byte USTAR header (the
    writer's rule, ``shards.writer``); other names get the writer's own PAX header encoding.
    """
    key, members = encode_sample(sample)
    size = 0
    for ext, data in members:
        name = f"{key}.{ext}"
        if len(name) <= 100 and name.isascii():
            size += tarfile.BLOCKSIZE
        else:
            size += len(_pax_header(key, ext, mtime))
        size += -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    return EncodedSample(key, tuple(members), size)


def _pax_header(key: str, ext: str, mtime: int) -> bytes:
    """The writer's own header bytes for a member whose name needs PAX (``shards.tarformat``)."""
    return member_frames(key, [(ext, b"")], mtime)[0][0][0]


def bucket_of(key: str, buckets: int) -> int:
    """The bucket of a sample key: stable across runs, machines and Python versions."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16) % buckets


def num_buckets(total_bytes: int, shard_max_bytes: int, bucket_fill: float) -> int:
    """Buckets for a split of ``total_bytes``: each about ``bucket_fill * shard_max_bytes``."""
    return max(1, math.ceil(total_bytes / (bucket_fill * shard_max_bytes)))


def chunk_bucket(samples: list[EncodedSample], shard_max_bytes: int) -> list[list[EncodedSample]]:
    """Sort a bucket's samples by key and cut them into shards of at most ``shard_max_bytes``.

    Raises:
        ValueError: two samples with one key (a sample key is unique within a dataset).
    """
    samples = sorted(samples, key=lambda s: s.key)
    chunks: list[list[EncodedSample]] = []
    current: list[EncodedSample] = []
    used = 0
    for i, sample in enumerate(samples):
        if i and sample.key == samples[i - 1].key:
            raise ValueError(f"sample key {sample.key!r} appears twice in one split")
        if current and archive_size(used + sample.size) > shard_max_bytes:
            chunks.append(current)
            current, used = [], 0
        current.append(sample)
        used += sample.size
    if current:
        chunks.append(current)
    return chunks


class _Chunk(beam.DoFn):
    """``((dataset, split, bucket), [EncodedSample])`` -> chunks, and the bucket's chunk count."""

    COUNTS = "counts"

    def __init__(self, shard_max_bytes: int):
        self.shard_max_bytes = shard_max_bytes

    def process(self, element):
        (dataset, split, bucket), samples = element
        chunks = chunk_bucket(list(samples), self.shard_max_bytes)
        yield beam.pvalue.TaggedOutput(self.COUNTS, ((dataset, split), (bucket, len(chunks))))
        for j, chunk in enumerate(chunks):
            yield (dataset, split, bucket, j), chunk


def _number(element, counts):
    """Give a chunk its shard number from the per-bucket counts of its split."""
    (dataset, split, bucket, j), chunk = element
    before = sum(n for b, n in counts[(dataset, split)] if b < bucket)
    return dataset, split, before + j, chunk


class PlanShards(beam.PTransform):
    """``(dataset, split, sample)`` -> ``(dataset, split, shard number, [EncodedSample])``."""

    def __init__(self, shard_max_bytes: int, bucket_fill: float, mtime: int):
        super().__init__()
        self.shard_max_bytes, self.bucket_fill, self.mtime = shard_max_bytes, bucket_fill, mtime

    def expand(self, samples):
        mtime, cap, fill = self.mtime, self.shard_max_bytes, self.bucket_fill
        # (dataset, split, sample) -> ((dataset, split), EncodedSample)
        encoded = samples | "Encode" >> beam.Map(lambda e: ((e[0], e[1]), encode(e[2], mtime)))
        # -> {(dataset, split): bytes}: one number per split
        totals = (encoded | "Sizes" >> beam.Map(lambda e: (e[0], e[1].size))
                  | "SplitBytes" >> beam.CombinePerKey(sum))
        # -> ((dataset, split, bucket), EncodedSample) -> one group per bucket
        bucketed = encoded | "Bucket" >> beam.Map(
            lambda e, t: ((*e[0], bucket_of(e[1].key, num_buckets(t[e[0]], cap, fill))), e[1]),
            t=beam.pvalue.AsDict(totals))
        chunks = (bucketed | "GroupBuckets" >> beam.GroupByKey()
                  | "Chunk" >> beam.ParDo(_Chunk(cap)).with_outputs(_Chunk.COUNTS, main="chunks"))
        counts = chunks[_Chunk.COUNTS] | "CountsPerSplit" >> beam.GroupByKey() | "AsList" >> beam.MapTuple(
            lambda k, v: (k, sorted(v)))
        return chunks["chunks"] | "Number" >> beam.Map(_number, counts=beam.pvalue.AsDict(counts))
