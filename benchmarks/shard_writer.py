"""Benchmark: shards.writer.ShardWriter against a plain webdataset.TarWriter loop.

One job: write the same samples (default 2,000 of ~50 KB random bytes plus a small JSON) with
this project's ``ShardWriter`` (validation, canonical JSON, hashing while writing, fsync,
atomic rename) and with a plain ``webdataset.TarWriter`` loop into shards of the same size,
in the same run; print samples/s and MB/s for both and their ratio, and append them to
``benchmarks/results.jsonl``.

Run (under ~30 s)::

    cd /work/main && PYTHONPATH=. .venv/bin/python benchmarks/shard_writer.py

Each writer runs ``--repeats`` times, alternating, and the fastest run of each counts (the
least disturbed by other load). ``--out-dir`` puts the shards on a disk of your choice; by
default they go to a temporary directory (often tmpfs, where fsync is nearly free).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import webdataset as wds  # noqa: E402

from benchmarks._common import print_table, record  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402


def make_samples(n: int, size: int, seed: int) -> list[dict]:
    """Samples in key order: ``{"__key__", "bin": random bytes, "json": small dict}``."""
    rng = random.Random(seed)
    return [
        {
            "__key__": f"video{i // 10:05d}/clip_{i % 10:02d}",
            "bin": rng.randbytes(size),
            "json": {"clip": i, "start": i * 1.5, "caption": f"clip number {i}", "points": [[0.25, 0.75]]},
        }
        for i in range(n)
    ]


def run_ours(samples: list[dict], out: Path, per_shard: int, fsync: bool) -> tuple[float, int, list[str]]:
    """Write with ShardWriter; return (seconds, bytes written, sha256 of each shard)."""
    start = time.perf_counter()
    with ShardWriter(str(out / "ours-%05d.tar"), max_samples=per_shard, fsync=fsync) as sink:
        for sample in samples:
            sink.write(sample)
    seconds = time.perf_counter() - start
    return seconds, sum(i.num_bytes for i in sink.shards), [i.sha256 for i in sink.shards]


def run_webdataset(samples: list[dict], out: Path, per_shard: int) -> tuple[float, int]:
    """Write with a plain webdataset.TarWriter loop; return (seconds, bytes written)."""
    start = time.perf_counter()
    for first in range(0, len(samples), per_shard):
        with wds.TarWriter(str(out / f"wds-{first // per_shard:05d}.tar")) as tw:
            for sample in samples[first : first + per_shard]:
                tw.write(sample)
    seconds = time.perf_counter() - start
    return seconds, sum(p.stat().st_size for p in out.glob("wds-*.tar"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--sample-kb", type=int, default=50, help="random payload per sample, KiB")
    parser.add_argument("--per-shard", type=int, default=500, help="samples per shard for both writers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="where shards go (default: a temporary directory)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.jsonl")
    args = parser.parse_args(argv)

    samples = make_samples(args.samples, args.sample_kb * 1024, args.seed)
    base = Path(tempfile.mkdtemp(prefix="bench-shard-writer-", dir=args.out_dir))
    best = {"ours": float("inf"), "ours_nofsync": float("inf"), "wds": float("inf")}
    sizes: dict[str, int] = {}
    hashes: set[tuple[str, ...]] = set()
    try:
        for rep in range(args.repeats):
            for name in ("wds", "ours", "ours_nofsync"):
                out = base / f"{name}-{rep}"
                out.mkdir()
                if name == "wds":
                    seconds, sizes[name] = run_webdataset(samples, out, args.per_shard)
                else:
                    seconds, sizes[name], shas = run_ours(samples, out, args.per_shard, fsync=name == "ours")
                    hashes.add(tuple(shas))
                best[name] = min(best[name], seconds)
                shutil.rmtree(out)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if len(hashes) != 1:
        raise SystemExit("ShardWriter produced different bytes across runs: not reproducible")

    n = args.samples
    mb = sizes["ours"] / 1e6
    extra = {
        "samples": n,
        "sample_bytes": args.sample_kb * 1024,
        "per_shard": args.per_shard,
        "repeats": args.repeats,
        "shard_mb_total": round(mb, 3),
        "ours_seconds": round(best["ours"], 4),
        "webdataset_seconds": round(best["wds"], 4),
        "ours_no_fsync_seconds": round(best["ours_nofsync"], 4),
        "ours_no_fsync_samples_per_s": round(n / best["ours_nofsync"], 1),
        "out_dir": args.out_dir or tempfile.gettempdir(),
        "baseline": "webdataset.TarWriter loop, defaults (no fsync, no rename, no hashing)",
    }
    rows = [
        dict(
            name="shard_writer.samples_per_s",
            figure=n / best["ours"],
            baseline=n / best["wds"],
            unit="samples/s",
        ),
        dict(
            name="shard_writer.mb_per_s",
            figure=mb / best["ours"],
            baseline=sizes["wds"] / 1e6 / best["wds"],
            unit="MB/s",
        ),
    ]
    for row in rows:
        row["ratio"] = row["figure"] / row["baseline"]
        if not args.no_record:
            record(row["name"], row["figure"], row["baseline"], row["unit"], extra=extra)
    print(f"{n} samples x {args.sample_kb} KiB + JSON, {args.per_shard} per shard, best of {args.repeats}")
    print_table(rows)
    print(
        f"ours without fsync: {n / best['ours_nofsync']:,.1f} samples/s ({mb / best['ours_nofsync']:,.1f} MB/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
