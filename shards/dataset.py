"""Read a published version: ``open_dataset`` for training, ``PublishedSplit`` for random access.

One job: hand every rank and data-loader worker its samples of a committed version.

Splitting is by **sample position**, not by shard: the version's index (``index/{split}.parquet``,
see ``shards.published``) lists every sample with its shard, byte span and checksum, so a reader
seeks to exactly its samples. Whole shards dealt to ranks (the usual WebDataset way) leave ranks
idle when a small build has fewer shards than ranks x workers, and a DDP job hangs; here every
rank gets the same number of samples per epoch whatever the shard count.

``plan_positions`` is the rule, a pure function (tested without processes):

1. the epoch order: positions ``0..N-1`` (the split's order: shards in number order, samples
   sorted by key within a shard), or a permutation seeded by ``(shuffle_seed, epoch)``;
2. per rank ``q`` samples: ``remainder="pad"`` gives ``q = ceil(N / world_size)`` and rank ``r``
   takes epoch-order slots ``r*q .. r*q+q-1``, slots past ``N`` wrapping to the start of the
   order, so every sample is read at least once and exactly ``world_size*q - N`` samples twice
   (padding by repetition); ``remainder="drop"`` gives ``q = N // world_size`` and leaves the
   last ``N - world_size*q`` samples of the order out of this epoch;
3. ``start`` (resume): the rank skips the first ``start`` of its ``q`` samples;
4. workers: the rank's remaining samples, in blocks of ``batch_size``, are dealt round robin
   to its ``num_workers`` workers: exactly the order in which a ``torch.utils.data.DataLoader``
   with that ``batch_size`` and ``num_workers`` hands them out, so "samples consumed so far" is
   a valid ``start`` for resuming.

Every sample read is checked against the checksum of its span before it is decoded (``verify``),
and member names are checked on read (``../x`` and ``/x`` raise); see ``shards.index``.
"""
from __future__ import annotations

import json
import math
import random
import warnings
from typing import Any, Iterator, Literal, Optional

from shards.index import SampleSpan, iter_spans
from shards.published import join, read_manifest, split_spans, version_dir

__all__ = ["open_dataset", "plan_positions", "PublishedSplit"]

Remainder = Literal["pad", "drop"]


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def plan_positions(num_samples: int, *, rank: int, world_size: int, worker_id: int = 0, num_workers: int = 1,
                   start: int = 0, remainder: Remainder = "pad", batch_size: int = 1,
                   shuffle_seed: Optional[int] = None, epoch: int = 0) -> list[int]:
    """Sample positions one worker of one rank reads in one epoch, in reading order.

    Args:
        num_samples: samples in the split (``N``).
        rank, world_size: this process and the number of processes; ``0 <= rank < world_size``.
        worker_id, num_workers: this data-loader worker and the workers per process.
        start: samples of this rank's epoch already consumed (resume); ``0 <= start <= q``.
        remainder: ``"pad"`` (repeat from the start of the order) or ``"drop"`` (leave the tail out).
        batch_size: block size of the round-robin deal to workers (the DataLoader's batch size).
        shuffle_seed, epoch: permute the epoch order with ``random.Random(f"{seed}:{epoch}")``; None keeps it.

    Returns:
        Positions into the split, in the order this worker yields them.

    Raises:
        ValueError: an argument out of range (rank, worker, start, remainder...).
    """
    _check_int("num_samples", num_samples, 0)
    _check_int("world_size", world_size, 1)
    _check_int("num_workers", num_workers, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("epoch", epoch, 0)
    _check_int("rank", rank, 0)
    _check_int("worker_id", worker_id, 0)
    if rank >= world_size or worker_id >= num_workers:
        raise ValueError(f"need rank < world_size and worker_id < num_workers, got rank={rank}, "
                         f"world_size={world_size}, worker_id={worker_id}, num_workers={num_workers}")
    if remainder not in ("pad", "drop"):
        raise ValueError(f"remainder must be 'pad' or 'drop', got {remainder!r}")
    if num_samples == 0:
        return []
    order = list(range(num_samples))
    if shuffle_seed is not None:
        random.Random(f"{shuffle_seed}:{epoch}").shuffle(order)
    per_rank = math.ceil(num_samples / world_size) if remainder == "pad" else num_samples // world_size
    _check_int("start", start, 0)
    if start > per_rank:
        raise ValueError(f"start {start} is past this rank's {per_rank} samples per epoch")
    mine = [order[(rank * per_rank + i) % num_samples] for i in range(start, per_rank)]
    blocks = [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
    return [p for j, block in enumerate(blocks) if j % num_workers == worker_id for p in block]


class PublishedSplit:
    """One split of a committed version, with its index: length, keys, random access, reads.

    Args:
        root, dataset, version, split: where it is (``root`` local or an fsspec URL).
        verify: check each sample's checksum before decoding it.

    Raises:
        shards.published.VersionNotFound: no committed version there.
        KeyError: a split the version does not have.
    """

    def __init__(self, root: str, dataset: str, version: str, split: str, verify: bool = True) -> None:
        self.manifest = read_manifest(root, dataset, version)
        if split not in self.manifest["splits"]:
            raise KeyError(f"{dataset} {version} has no split {split!r} (splits: {sorted(self.manifest['splits'])})")
        self.where = version_dir(root, dataset, version)
        self.split, self.verify = split, verify
        rows = split_spans(root, dataset, version, split)
        if len(rows) != self.manifest["splits"][split]["samples"]:
            raise ValueError(f"{dataset} {version} {split}: the index lists {len(rows)} samples, the manifest "
                             f"{self.manifest['splits'][split]['samples']}")
        self._rows = rows
        self._by_key: Optional[dict[str, int]] = None

    def __len__(self) -> int:
        return len(self._rows)

    def keys(self) -> list[str]:
        """Sample keys in position order."""
        return [r["key"] for r in self._rows]

    def position_of(self, key: str) -> int:
        """The position of a key. Raises KeyError."""
        if self._by_key is None:
            self._by_key = {r["key"]: i for i, r in enumerate(self._rows)}
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"no sample {key!r} in split {self.split!r}") from None

    def __getitem__(self, key: str) -> dict[str, Any]:
        """Random access by key (one seek and one read)."""
        return next(self.read([self.position_of(key)]))

    def read(self, positions: list[int]) -> Iterator[dict[str, Any]]:
        """Samples at the given positions, in that order; one open file per run of one shard."""
        run: list[SampleSpan] = []
        shard = None
        for p in positions:
            row = self._rows[p]
            if row["shard"] != shard and run:
                yield from iter_spans(join(self.where, shard), run, self.verify)
                run = []
            shard = row["shard"]
            run.append(SampleSpan(row["key"], row["offset"], row["length"], row["xxh3"]))
        if run:
            yield from iter_spans(join(self.where, shard), run, self.verify)


def _decode_json(sample: dict[str, Any]) -> dict[str, Any]:
    out = dict(sample)
    for ext, value in sample.items():
        if ext == "json" or ext.endswith(".json"):
            out[ext] = json.loads(value)
    return out


class _Source:
    """First pipeline stage: this worker's samples (worker id from torch when not given)."""

    def __init__(self, split: PublishedSplit, plan: dict[str, Any], worker_id: Optional[int]) -> None:
        self.split, self.plan, self.worker_id = split, plan, worker_id

    def _worker(self) -> int:
        if self.worker_id is not None:
            return self.worker_id
        try:
            from torch.utils.data import get_worker_info
            info = get_worker_info()
        except ImportError:
            info = None
        if info is None:
            if self.plan["num_workers"] != 1:
                raise RuntimeError(f"open_dataset(num_workers={self.plan['num_workers']}) iterated outside a "
                                   "DataLoader worker: pass worker_id, or use a DataLoader with that many workers")
            return 0
        if info.num_workers != self.plan["num_workers"]:
            raise RuntimeError(f"open_dataset(num_workers={self.plan['num_workers']}) read by a DataLoader with "
                               f"{info.num_workers} workers; they must agree")
        return info.id

    def __call__(self) -> Iterator[dict[str, Any]]:
        positions = plan_positions(len(self.split), worker_id=self._worker(), **self.plan)
        return self.split.read(positions)


def open_dataset(root: str, dataset: str, version: str, split: str, *, rank: int, world_size: int,
                 num_workers: int = 1, start: int = 0, remainder: Remainder = "pad", batch_size: int = 1,
                 shuffle_seed: Optional[int] = None, epoch: int = 0, worker_id: Optional[int] = None,
                 decode_json: bool = True, verify: bool = True) -> Any:
    """A ``webdataset.DataPipeline`` over one rank's samples of one split of a committed version.

    Args:
        root, dataset, version, split: the version (``root`` local or an fsspec URL).
        rank, world_size: required: this process and the number of processes.
        num_workers: DataLoader workers of this process (the pipeline finds its worker id from
            torch; pass ``worker_id`` to read one worker's share outside a DataLoader).
        start: samples of this rank's epoch already consumed (resume mid-epoch).
        remainder: ``"pad"`` (default: every rank gets ``ceil(N / world_size)``, the shortfall
            repeated from the start of the epoch order) or ``"drop"`` (``N // world_size``).
        batch_size: the DataLoader batch size (workers get samples in blocks of it, so the
            loader's output is the rank's epoch order).
        shuffle_seed, epoch: sample-level shuffling, the same on every rank.
        decode_json: parse the ``json`` member (frames stay bytes).
        verify: check each sample's checksum before decoding it.

    Returns:
        The pipeline; its ``len()`` is this rank's samples per epoch (all workers together). Add
        stages (``.shuffle``, ``.map``...) with ``compose``.

    Raises:
        VersionNotFound: no committed version. KeyError: no such split. ValueError: bad arguments.
    """
    import webdataset as wds

    data = PublishedSplit(root, dataset, version, split, verify=verify)
    plan = {"rank": rank, "world_size": world_size, "num_workers": num_workers, "start": start,
            "remainder": remainder, "batch_size": batch_size, "shuffle_seed": shuffle_seed, "epoch": epoch}
    per_rank = sum(len(plan_positions(len(data), worker_id=w, **plan)) for w in range(num_workers))
    stages: list[Any] = [_Source(data, plan, worker_id)]
    if decode_json:
        stages.append(wds.map(_decode_json))
    with warnings.catch_warnings():  # with_length warns that it does not cut epochs; here it is exact
        warnings.simplefilter("ignore", UserWarning)
        return wds.DataPipeline(*stages).with_length(per_rank)
