"""Read this project's tar shards back, strictly, checksums verified while streaming.

One job: turn shard files written by :mod:`shards.writer` back into sample dicts, each shard read
once from front to back, and decide which reader gets which shard.

Record shape out of :func:`iter_samples`: ``{"__key__": str, "__url__": str (the shard path),
"<ext>": bytes, ...}``; with ``decode_json=True`` the ``json``/``*.json`` members are parsed.
:func:`iter_shards` yields the same samples grouped per shard (:class:`ShardSamples`).

Checksums while streaming. A given expected sha256 is checked over the bytes as they stream by:
the file is read once, in chunks, and each chunk is hashed when read. The comparison happens
when the end of the archive (and the file) has been read, which is *before the shard's last
sample is yielded*: a mismatch raises :class:`ShardChecksumError` in its place. The
consequence for every consumer: **the samples before the last one reach you before their
shard's checksum is confirmed, so nothing built from a shard's samples may be committed
(written under a final name, sent to a server, counted as done) before the shard's checksum has
been confirmed.** Stage per shard and commit when the shard is confirmed; :func:`iter_shards`
makes that easy::

    for shard in iter_shards(paths, expected_sha256=sums):
        staged = [stage(sample) for sample in shard]  # raises on a mismatch, before the last sample
        commit(staged)                                 # here shard.verified is True

Strictness. Member headers are parsed here (``tarfile.TarInfo.frombuf`` per 512-byte header,
PAX ``path``/``size`` records, GNU long names), not by ``tarfile.open``, which needs to seek and
ends iteration silently at a corrupt header. By default:

* an empty or truncated shard, a corrupt header, or anything but zero bytes after the last
  member (a correct tar ends with two zero blocks) raises :class:`MalformedShardError`;
* a member that is not a regular file, a name that is absolute or holds a ``..`` component, a
  name the writer would refuse (key and extension rules of :mod:`shards.keys`), a name without
  ``key.ext``, a repeated extension or a key that comes back after another key raises
  :class:`MalformedShardError` naming the shard and the member.

Member names are split with ``webdataset.tariterators.base_plus_ext``, the rule WebDataset uses,
so this reader and ``webdataset.WebDataset`` agree on keys and extensions.

Skipping is an explicit choice (``on_error="skip"``): the rest of a bad shard is skipped, each
skip counted by error type in the caller's ``error_counts``, and the read fails once the
skipped fraction of shards passes ``max_skip_fraction``. Samples of a skipped shard that were
already yielded stay yielded: with :func:`iter_shards`, such a shard ends with ``verified``
False and its ``error`` set, so its staged work can be dropped.

Storage: paths are local paths or fsspec URLs (``memory://``, ``gs://``, ...), or paths of the
fsspec file system given as ``fs``. ``__url__`` is the path as given.

Splitting. :func:`split_by_node_and_worker` takes rank, world size, worker id and worker count
as required arguments (no hidden defaults that duplicate data), so it is unit-tested without
processes, and assigns each shard to exactly one (rank, worker).
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any, BinaryIO, Iterator, Literal, Mapping, Sequence, Union

from webdataset.tariterators import base_plus_ext

from shards.atomic import resolve
from shards.keys import validate_extension, validate_key
from shards.tarformat import (  # noqa: F401 (errors re-exported: they are the reader's)
    HashingReader, MalformedShardError, ShardChecksumError, ShardReadError, iter_members,
)

__all__ = [
    "MalformedShardError",
    "ShardChecksumError",
    "ShardReadError",
    "ShardSamples",
    "iter_samples",
    "iter_shards",
    "split_by_node_and_worker",
]

PathLike = Union[str, "os.PathLike[str]"]


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


def _check_name(path: str, name: str) -> tuple[str, str]:
    """Split a member name into (key, ext), refusing what the writer would refuse."""
    if name.startswith("/") or ".." in name.split("/"):
        what = "is absolute" if name.startswith("/") else "holds a '..' path component"
        raise MalformedShardError(f"{path}: member {name!r} {what}; refused (it could escape a target folder)")
    key, ext = base_plus_ext(name)
    if key is None or not ext:
        raise MalformedShardError(f"{path}: member {name!r} is not named key.ext")
    try:
        validate_key(key)
        validate_extension(ext, key)
    except ValueError as exc:
        raise MalformedShardError(f"{path}: member {name!r}: {exc}") from None
    return key, ext


def _decode(path: str, key: str, ext: str, data: bytes, decode_json: bool) -> Any:
    if decode_json and (ext == "json" or ext.endswith(".json")):
        try:
            return json.loads(data)
        except ValueError as exc:  # UnicodeDecodeError included
            raise MalformedShardError(f"{path}: member {key}.{ext} is not valid JSON: {exc}") from None
    return data


class ShardSamples:
    """The samples of one shard, streamed once; the checksum is confirmed when they end.

    Iterate it once. The last sample is yielded only after the whole file was read and its
    sha256 compared with the expected one; on a mismatch :class:`ShardChecksumError` is raised
    instead (see the module docstring for what a consumer must do with the earlier samples).

    Attributes:
        path: the shard, as given.
        expected_sha256: the sha256 it must have, or None (then only its structure is checked).
        sha256: the file's sha256, once every byte was read (else None).
        verified: True once the iteration ended and the sha256 equalled the expected one.
        error: with ``on_error="skip"``, the error that ended the shard early (else None).
    """

    def __init__(self, path: str, expected_sha256: str | None, decode_json: bool, fs: Any, skip: bool,
                 on_skip: Any = None) -> None:
        self.path = path
        self.expected_sha256 = expected_sha256
        self.sha256: str | None = None
        self.verified = False
        self.error: ShardReadError | None = None
        self._decode_json = decode_json
        self._fs = fs
        self._skip = skip
        self._on_skip = on_skip
        self._started = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._started:
            raise RuntimeError(f"{self.path}: a shard's samples can be iterated once")
        self._started = True
        try:
            yield from self._samples()
        except ShardReadError as exc:
            if not self._skip:
                raise
            self.error = exc
            self._on_skip(exc)

    def _open(self) -> BinaryIO:
        fs, real = resolve(self.path, self._fs)
        return open(real, "rb") if fs is None else fs.open(real, "rb")

    def _samples(self) -> Iterator[dict[str, Any]]:
        # bytes (hashed as read) -> (member name, data) -> grouped by key -> sample dicts
        path = self.path
        with self._open() as f:
            reader = HashingReader(f)
            seen: set[str] = set()
            sample: dict[str, Any] | None = None
            for name, data in iter_members(path, reader):
                key, ext = _check_name(path, name)
                if sample is None or key != sample["__key__"]:
                    if sample is not None:
                        yield sample
                    if key in seen:
                        raise MalformedShardError(f"{path}: members of key {key!r} are not contiguous")
                    seen.add(key)
                    sample = {"__key__": key, "__url__": path}
                if ext in sample:
                    raise MalformedShardError(f"{path}: key {key!r} has extension {ext!r} twice")
                sample[ext] = _decode(path, key, ext, data, self._decode_json)
        self.sha256 = reader.hexdigest()
        if self.expected_sha256 is not None:
            if self.sha256 != self.expected_sha256:
                raise ShardChecksumError(
                    f"{path}: sha256 {self.sha256} does not match the expected {self.expected_sha256}"
                )
            self.verified = True
        if sample is not None:
            yield sample


def iter_shards(
    path_or_paths: PathLike | Sequence[PathLike],
    *,
    expected_sha256: str | Mapping[Any, str] | None = None,
    decode_json: bool = False,
    on_error: Literal["raise", "skip"] = "raise",
    error_counts: collections.Counter[str] | None = None,
    max_skip_fraction: float = 0.0,
    fs: Any = None,
) -> Iterator[ShardSamples]:
    """Yield one :class:`ShardSamples` per shard, in the given order: samples grouped per shard.

    Iterate each before asking for the next. When a shard's iteration ends without an error,
    its checksum is confirmed (``verified`` is True when an expected sha256 was given): the
    moment to commit what was built from its samples.

    Args:
        path_or_paths: a shard path or URL, or a sequence of them.
        expected_sha256: the hex sha256 of the single shard, or a mapping path -> sha256 that
            covers every path; each shard is verified while it streams (see the module docstring).
        decode_json: parse ``json``/``*.json`` members into Python objects (default: bytes).
        on_error: ``"raise"`` (default) or ``"skip"``: end a bad shard early, counted.
        error_counts: with ``on_error="skip"``, required; incremented per error type name.
        max_skip_fraction: with ``on_error="skip"``, the largest allowed fraction of skipped
            shards among all given; one more skip raises.
        fs: the fsspec file system the paths lie in, if they are not plain paths or URLs.

    Yields:
        :class:`ShardSamples`, one per path.

    Raises:
        ShardChecksumError: a shard's sha256 differs from the expected one.
        MalformedShardError: a shard is not a well-formed tar of valid ``key.ext`` members.
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

    def on_skip(exc: ShardReadError) -> None:
        nonlocal skipped
        assert error_counts is not None
        error_counts[type(exc).__name__] += 1
        skipped += 1
        if skipped > max_skip_fraction * len(paths):
            raise ShardReadError(
                f"skipped {skipped} of {len(paths)} shards, more than max_skip_fraction="
                f"{max_skip_fraction}: {dict(error_counts)}; last: {exc}"
            ) from exc

    for path in paths:
        yield ShardSamples(path, expected[path], decode_json, fs, on_error == "skip", on_skip)


def iter_samples(path_or_paths: PathLike | Sequence[PathLike], **options: Any) -> Iterator[dict[str, Any]]:
    """Yield the samples of one shard or of several, in file order, each shard read once.

    A shard's checksum is confirmed just before its last sample is yielded; read the module
    docstring before committing anything built from samples (or use :func:`iter_shards`).

    Args:
        path_or_paths: a shard path or URL, or a sequence of them.
        **options: those of :func:`iter_shards` (``expected_sha256``, ``decode_json``,
            ``on_error``, ``error_counts``, ``max_skip_fraction``, ``fs``).

    Yields:
        ``{"__key__": key, "__url__": path, ext: bytes | object, ...}`` per sample.

    Raises:
        As :func:`iter_shards`.
    """
    for shard in iter_shards(path_or_paths, **options):
        yield from shard


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
