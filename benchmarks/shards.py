"""Benchmark: writing and reading published shards against moving the same bytes the plain way.

One job: measure, in one run on the same data, the two figures issue [6/9] sets goals for:

* **write MB/s**: publish's shard step (``shards.writer.write_shard`` of encoded samples: sorted,
  validated, sha256 while written, fsynced, renamed; then ``shards.index.spans_for``: the
  per-sample spans and checksums the readers verify) against **copying the same bytes** (each
  finished shard copied to a new file with ``shutil.copyfile`` and fsynced). Goal: >= 0.8x.
  Also printed: sha256 alone over the same bytes, the bound any writer that pins shards by
  sha256 meets on this machine.
* **read samples/s**: ``shards.dataset.open_dataset`` (index lookup, seek, tar parse, per-sample
  checksum checked before the sample is handed on, webdataset pipeline) against **iterating the
  raw tar members** of the same shards with ``tarfile`` (every member's bytes read, nothing
  checked). Goal: >= 0.8x. JSON is left undecoded on both sides.

Samples look like published video samples: a JSON of ~2 KB and ``--frames`` frames of
``--frame-kb`` KB each (random bytes: JPEG-like, incompressible). Each measurement runs
``--repeats`` times, alternating with its baseline; the fastest run of each counts.

Run (about a minute)::

    cd /work/main && PYTHONPATH=. .venv/bin/python benchmarks/shards.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, record  # noqa: E402


def make_samples(n: int, frames: int, frame_kb: int, seed: int) -> list[dict]:
    """Published-like samples: ``{"__key__", "json", "000.jpg"...}``, keys in random order."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = hashlib.sha256(f"clip{i}".encode()).hexdigest()[:24]
        body = {"key": key, "dataset": "VideoPoint", "records": [{"key": f"r{i}_{j}", "question": "x" * 200}
                                                                 for j in range(8)]}
        sample = {"__key__": key, "json": body}
        sample.update({f"{f:03d}.jpg": rng.randbytes(frame_kb * 1024) for f in range(frames)})
        out.append(sample)
    return out


def chunks(samples: list[dict], shard_bytes: int) -> list[list]:
    """Encode and cut into shards as publish does (``pipelines.publish.shard_plan``)."""
    from pipelines.publish.shard_plan import chunk_bucket, encode

    return chunk_bucket([encode(s, 0) for s in samples], shard_bytes)


def write_ours(parts: list[list], folder: Path) -> tuple[float, int, list]:
    """Publish's shard step; returns (seconds, bytes, [(name, ShardInfo, spans)])."""
    from shards.index import spans_for
    from shards.writer import write_shard

    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    written = []
    for n, chunk in enumerate(parts):
        path = folder / f"train-{n:06d}.tar"
        info = write_shard(path, [s.as_sample() for s in chunk])
        written.append((path.name, info, spans_for([(s.key, s.members, s.size) for s in chunk])))
    seconds = time.perf_counter() - start
    return seconds, sum(i.num_bytes for _, i, _ in written), written


def copy_same_bytes(folder: Path, names: list[str], dest: Path) -> float:
    """Copy each shard to a new file and fsync it (the plain way to move those bytes)."""
    dest.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in names:
        shutil.copyfile(folder / name, dest / name)
        with open(dest / name, "rb+") as f:
            os.fsync(f.fileno())
    return time.perf_counter() - start


def make_version(root: Path, written: list) -> None:
    """Index and manifest beside the shards so ``open_dataset`` can read them."""
    from pipelines.publish.finalize import _index_parquet
    from shards.published import FORMAT, manifest_bytes

    where = root / "Bench" / "1.0.0"
    shards = [{"name": name, "split": "train", "number": n, "sha256": info.sha256, "num_samples": info.num_samples,
               "num_bytes": info.num_bytes, "first_key": info.first_key, "last_key": info.last_key,
               "spans": [list(s) for s in spans]} for n, (name, info, spans) in enumerate(written)]
    (where / "index").mkdir(parents=True, exist_ok=True)
    (where / "index" / "train.parquet").write_bytes(_index_parquet("train", shards))
    total = sum(s["num_samples"] for s in shards)
    manifest = {"format": FORMAT, "dataset": "Bench", "version": "1.0.0", "parent_version": None, "inputs": [],
                "code": {}, "config": {}, "files": {},
                "splits": {"train": {"samples": total, "records": total, "bytes": sum(s["num_bytes"] for s in shards)}},
                "shards": [{k: v for k, v in s.items() if k not in ("spans", "number")} for s in shards]}
    (where / "manifest.json").write_bytes(manifest_bytes(manifest))


def read_ours(root: Path) -> tuple[float, int]:
    from shards.dataset import open_dataset

    start = time.perf_counter()
    n = sum(1 for _ in open_dataset(str(root), "Bench", "1.0.0", "train", rank=0, world_size=1, decode_json=False))
    return time.perf_counter() - start, n


def read_raw(folder: Path) -> tuple[float, int]:
    start = time.perf_counter()
    members = 0
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                tar.extractfile(info).read()
                members += 1
    return time.perf_counter() - start, members


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1500)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--frame-kb", type=int, default=16)
    parser.add_argument("--shard-mb", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", help="where to write (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    samples = make_samples(args.samples, args.frames, args.frame_kb, args.seed)
    parts = chunks(samples, args.shard_mb << 20)
    base = Path(args.out_dir or tempfile.mkdtemp(prefix="bench-shards-"))
    writes, copies, reads, raws = [], [], [], []
    try:
        for r in range(args.repeats):
            root = base / f"run{r}"
            folder = root / "Bench" / "1.0.0"
            seconds, size, written = write_ours(parts, folder)
            writes.append(seconds)
            copies.append(copy_same_bytes(folder, [w[0] for w in written], base / f"copy{r}"))
            make_version(root, written)
            seconds_read, n = read_ours(root)
            seconds_raw, members = read_raw(folder)
            assert n == len(samples) and members == len(samples) * (args.frames + 1)
            reads.append(seconds_read)
            raws.append(seconds_raw)
            if r:
                shutil.rmtree(base / f"run{r - 1}", ignore_errors=True)
            shutil.rmtree(base / f"copy{r}", ignore_errors=True)
    finally:
        if not args.out_dir:
            shutil.rmtree(base, ignore_errors=True)
    mb = size / 1e6
    blob = b"".join(d for c in parts for s in c for _, d in s.members)
    start = time.perf_counter()
    hashlib.sha256(blob).digest()
    sha_mb_per_s = len(blob) / 1e6 / (time.perf_counter() - start)
    extra = {"sha256_alone_mb_per_s": round(sha_mb_per_s, 1), "samples": len(samples), "frames": args.frames, "frame_kb": args.frame_kb, "shards": len(parts),
             "shard_mb": args.shard_mb, "bytes": size, "repeats": args.repeats, "write_s": writes, "copy_s": copies,
             "read_s": reads, "raw_s": raws}
    rows = [
        record("shards.publish_write_mb_per_s", mb / min(writes), mb / min(copies), "MB/s",
               extra={**extra, "baseline": "shutil.copyfile of the same shards + fsync"}),
        record("shards.open_dataset_samples_per_s", len(samples) / min(reads), len(samples) / min(raws), "samples/s",
               extra={**extra, "baseline": "tarfile iteration reading every member's bytes (samples = members / "
                                           f"{args.frames + 1})"}),
    ]
    print_table(rows)
    print(f"sha256 alone over the same bytes: {sha_mb_per_s:.0f} MB/s (copy: {mb / min(copies):.0f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
