"""Read this project's tar shards back, strictly, and split shard lists across ranks and workers.

One job: turn shard files written by :mod:`shards.writer` back into sample dicts, and decide
which reader gets which shard.

Record shape out of :func:`iter_samples`: ``{"__key__": str, "__url__": str (the shard path),
"<ext>": bytes, ...}``; with ``decode_json=True`` the ``json``/``*.json`` members are parsed.

Reading primitives. Member names are split with ``webdataset.tariterators.base_plus_ext``, the
exact rule WebDataset uses, so this reader and ``webdataset.WebDataset`` agree on keys and
extensions (the tests read every shard with both). The member loop itself is a small
``tarfile`` loop rather than ``tar_file_iterator``/``group_by_keys``, because those are lenient
where this reader must raise: ``tarfile`` ends iteration silently at a corrupt or truncated
header after the first member, and ``group_by_keys`` yields a key twice when its members are
not contiguous and skips non-regular members. Here, by default:

* a truncated shard, a corrupt header, or anything but zero bytes after the last member
  (a correct tar ends with two zero blocks) raises :class:`MalformedShardError`;
* a non-regular member, a name without ``key.ext``, a repeated extension or a key that comes
  back after another key raises :class:`MalformedShardError`;
* a given expected sha256 is checked over the whole file *before* any sample is yielded
  (one extra read of the file) and a mismatch raises :class:`ShardChecksumError`.

Skipping is an explicit choice (``on_error="skip"``): the rest of a bad shard is skipped, each
skip counted by error type in the caller's ``error_counts``, and the read fails once the
skipped fraction of shards passes ``max_skip_fraction``.

Splitting. :func:`split_by_node_and_worker` takes rank, world size, worker id and worker count
as required arguments (no hidden defaults that duplicate data), so it is unit-tested without
processes, and assigns each shard to exactly one (rank, worker).
"""

from __future__ import annotations

import collections
import json
import os
import tarfile
from typing import Any, Iterator, Literal, Mapping, Sequence, Union

from webdataset.tariterators import base_plus_ext

from shards.writer import file_sha256

__all__ = [
    "MalformedShardError",
    "ShardChecksumError",
    "ShardReadError",
    "iter_samples",
    "split_by_node_and_worker",
]

PathLike = Union[str, "os.PathLike[str]"]


class ShardReadError(ValueError):
    """A shard could not be read as a valid shard of this project."""


class MalformedShardError(ShardReadError):
    """The file is not a well-formed tar of ``key.ext`` members."""


class ShardChecksumError(ShardReadError):
    """The file's sha256 is not the expected one."""


def _as_paths(path_or_paths: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        return [os.fspath(path_or_paths)]
    return [os.fspath(p) for p in path_or_paths]


def _expected_for(paths: list[str], expected: str | Mapping[Any, str] | None) -> dict[str, str | None]:
    if expected is None:
        return {p: None for p in paths}
    if isinstance(expected, str):
        if len(paths) != 1:
            raise ValueError(
                f"one expected sha256 given for {len(paths)} shards; pass a mapping path -> sha256"
            )
        return {paths[0]: expected.lower()}
    table = {os.fspath(k): v.lower() for k, v in expected.items()}
    missing = [p for p in paths if p not in table]
    if missing:
        raise ValueError(f"expected_sha256 has no entry for {missing[:3]} ({len(missing)} shards)")
    return {p: table[p] for p in paths}


def _decode(ext: str, data: bytes, decode_json: bool) -> Any:
    if decode_json and (ext == "json" or ext.endswith(".json")):
        return json.loads(data)
    return data


def _check_end(f: Any, path: str, offset: int) -> None:
    """Raise unless the bytes from ``offset`` to EOF are at least two zero blocks and only zeros."""
    f.seek(offset)
    tail = f.read()
    if len(tail) < 2 * tarfile.BLOCKSIZE or tail.count(0) != len(tail):
        raise MalformedShardError(
            f"{path}: no clean end of archive at byte {offset} (truncated, corrupt header, or trailing data)"
        )


def _iter_shard(path: str, decode_json: bool) -> Iterator[dict[str, Any]]:
    """Yield the samples of one shard; raise MalformedShardError on anything off."""
    # tar members (TarInfo, bytes) -> grouped by key -> sample dicts
    with open(path, "rb") as f:
        try:
            tar = tarfile.open(fileobj=f, mode="r:")
        except tarfile.TarError as exc:
            raise MalformedShardError(f"{path}: not a readable tar: {exc}") from exc
        seen: set[str] = set()
        sample: dict[str, Any] | None = None
        while True:
            try:
                info = tar.next()
                if info is None:
                    break
                if not info.isreg():
                    raise MalformedShardError(f"{path}: member {info.name!r} is not a regular file")
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
            except tarfile.TarError as exc:
                raise MalformedShardError(f"{path}: {exc}") from exc
            tar.members.clear()  # keep memory bounded while streaming
            key, ext = base_plus_ext(info.name)
            if key is None or not ext:
                raise MalformedShardError(f"{path}: member {info.name!r} is not named key.ext")
            if sample is None or key != sample["__key__"]:
                if sample is not None:
                    yield sample
                if key in seen:
                    raise MalformedShardError(f"{path}: members of key {key!r} are not contiguous")
                seen.add(key)
                sample = {"__key__": key, "__url__": path}
            if ext in sample:
                raise MalformedShardError(f"{path}: key {key!r} has extension {ext!r} twice")
            sample[ext] = _decode(ext, data, decode_json)
        _check_end(f, path, tar.offset)
        if sample is not None:
            yield sample


def iter_samples(
    path_or_paths: PathLike | Sequence[PathLike],
    *,
    expected_sha256: str | Mapping[Any, str] | None = None,
    decode_json: bool = False,
    on_error: Literal["raise", "skip"] = "raise",
    error_counts: collections.Counter[str] | None = None,
    max_skip_fraction: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Yield the samples of one shard or of several, in file order.

    Args:
        path_or_paths: a shard path, or a sequence of them (read in the given order).
        expected_sha256: the hex sha256 of the single shard, or a mapping path -> sha256 that
            covers every path; each shard is verified before any of its samples is yielded.
        decode_json: parse ``json``/``*.json`` members into Python objects (default: bytes).
        on_error: ``"raise"`` (default) or ``"skip"``: skip the rest of a bad shard.
        error_counts: with ``on_error="skip"``, required; incremented per error type name.
        max_skip_fraction: with ``on_error="skip"``, the largest allowed fraction of skipped
            shards among all given; one more skip raises.

    Yields:
        ``{"__key__": key, "__url__": path, ext: bytes | object, ...}`` per sample.

    Raises:
        ShardChecksumError: a shard's sha256 differs from the expected one.
        MalformedShardError: a shard is not a well-formed tar of ``key.ext`` members.
        ShardReadError: with ``on_error="skip"``, when skips pass ``max_skip_fraction``.
        ValueError: on inconsistent arguments.
        OSError: a shard cannot be opened (never skipped).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if on_error == "skip" and error_counts is None:
        raise ValueError("on_error='skip' needs an error_counts Counter so that skips are counted")
    if not 0.0 <= max_skip_fraction <= 1.0:
        raise ValueError(f"max_skip_fraction must be in [0, 1], got {max_skip_fraction!r}")
    paths = _as_paths(path_or_paths)
    expected = _expected_for(paths, expected_sha256)
    skipped = 0
    for path in paths:
        try:
            want = expected[path]
            if want is not None:
                got = file_sha256(path)
                if got != want:
                    raise ShardChecksumError(f"{path}: sha256 {got} does not match the expected {want}")
            yield from _iter_shard(path, decode_json)
        except ShardReadError as exc:
            if on_error == "raise":
                raise
            assert error_counts is not None
            error_counts[type(exc).__name__] += 1
            skipped += 1
            if skipped > max_skip_fraction * len(paths):
                raise ShardReadError(
                    f"skipped {skipped} of {len(paths)} shards, more than max_skip_fraction="
                    f"{max_skip_fraction}: {dict(error_counts)}; last: {exc}"
                ) from exc


def split_by_node_and_worker(
    shard_list: Sequence[Any],
    rank: int,
    world_size: int,
    worker_id: int,
    num_workers: int,
) -> list[Any]:
    """Return the shards that one data-loader worker of one rank reads.

    Shards are dealt round-robin over ``world_size * num_workers`` global workers, global
    worker ``rank * num_workers + worker_id`` taking positions ``g, g + n, g + 2n, ...``.
    Every shard goes to exactly one (rank, worker); some get none when there are fewer shards
    than workers. Every rank must pass the same list in the same order (sorted, or shuffled
    with a seed they share).

    Args:
        shard_list: all shards of the epoch, identical on every rank; no duplicates.
        rank: this process's rank, ``0 <= rank < world_size``.
        world_size: number of processes (nodes x processes per node), >= 1.
        worker_id: this data-loader worker, ``0 <= worker_id < num_workers``.
        num_workers: data-loader workers per process, >= 1 (1 when loading in the main process).

    Returns:
        The assigned shards, in the order of ``shard_list``.

    Raises:
        ValueError: on out-of-range or non-integer arguments, or a duplicated shard.
    """
    for name, value in (
        ("rank", rank),
        ("world_size", world_size),
        ("worker_id", worker_id),
        ("num_workers", num_workers),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"need 0 <= rank < world_size and world_size >= 1, got rank={rank}, world_size={world_size}"
        )
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ValueError(
            f"need 0 <= worker_id < num_workers and num_workers >= 1, got worker_id={worker_id}, num_workers={num_workers}"
        )
    shards = list(shard_list)
    if len(set(map(str, shards))) != len(shards):
        raise ValueError("shard_list holds a shard twice; it would be read twice")
    total = world_size * num_workers
    return shards[rank * num_workers + worker_id :: total]
