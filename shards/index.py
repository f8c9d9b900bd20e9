"""Per-sample index of a shard: where each sample's bytes lie and what they hash to.

One job: locate samples inside a tar shard so a reader can jump to any sample (random access by
key, resuming mid-epoch, several readers splitting one shard) and verify exactly the bytes it
reads, without reading the whole shard.

An index entry (``SampleSpan``) covers a sample's members from its first header to the end of
its last member's padding: ``offset`` and ``length`` in bytes, the sha256 of those bytes, and
the member names. ``read_span`` reads one span back, checks its sha256 *before* anything is
decoded, and parses the members with ``tarfile`` (a name that is not ``key.ext``, a key that
breaks ``shards.keys.validate_key`` (``../x``, ``/x``), or a member of another key raise
``MalformedShardError``).

Storage: paths are local or fsspec URLs.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
from typing import Any, Iterator, NamedTuple

import fsspec
from webdataset.tariterators import base_plus_ext

from shards.keys import validate_key
from shards.reader import MalformedShardError, ShardChecksumError

__all__ = ["SampleSpan", "index_shard", "read_span", "iter_spans"]

_END = b"\0" * (2 * tarfile.BLOCKSIZE)


class SampleSpan(NamedTuple):
    """Where one sample lies in its shard."""

    key: str
    offset: int
    length: int
    sha256: str


def _check_name(path: str, name: str) -> tuple[str, str]:
    key, ext = base_plus_ext(name)
    if key is None or not ext:
        raise MalformedShardError(f"{path}: member {name!r} is not named key.ext")
    try:
        validate_key(key)
    except ValueError as exc:
        raise MalformedShardError(f"{path}: member {name!r} refused: {exc}") from None
    return key, ext


def index_shard(path: str, chunk: int = 1 << 20) -> list[SampleSpan]:
    """Scan a shard and return the span of every sample, in file order.

    Two passes: the tar headers (seeking over data) give the spans, then one sequential read
    hashes each span.

    Raises:
        MalformedShardError: a member that is not a regular ``key.ext`` file, an unsafe key, or
            members of one key that are not contiguous.
    """
    spans: list[list[Any]] = []
    with fsspec.open(path, "rb") as f:
        with tarfile.open(fileobj=f, mode="r:") as tar:
            seen: set[str] = set()
            for info in tar:
                if not info.isreg():
                    raise MalformedShardError(f"{path}: member {info.name!r} is not a regular file")
                key, _ = _check_name(path, info.name)
                end = info.offset_data + -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                if spans and spans[-1][0] == key:
                    spans[-1][2] = end
                    continue
                if key in seen:
                    raise MalformedShardError(f"{path}: members of key {key!r} are not contiguous")
                seen.add(key)
                spans.append([key, info.offset, end])
        out = []
        f.seek(0)
        position = 0
        for key, start, end in spans:
            if start != position:
                f.seek(start)
            digest = hashlib.sha256()
            left = end - start
            while left:
                block = f.read(min(chunk, left))
                if not block:
                    raise MalformedShardError(f"{path}: truncated inside sample {key!r}")
                digest.update(block)
                left -= len(block)
            position = end
            out.append(SampleSpan(key, start, end - start, digest.hexdigest()))
    return out


def parse_span(path: str, key: str, data: bytes) -> dict[str, Any]:
    """The members of one sample's bytes as ``{"__key__", "__url__", ext: bytes}``.

    Raises:
        MalformedShardError: a member of another key, a bad name, or a repeated extension.
    """
    sample: dict[str, Any] = {"__key__": key, "__url__": path}
    try:
        with tarfile.open(fileobj=io.BytesIO(data + _END), mode="r:") as tar:
            for info in tar:
                got, ext = _check_name(path, info.name)
                if got != key or not info.isreg():
                    raise MalformedShardError(f"{path}: member {info.name!r} inside the span of sample {key!r}")
                if ext in sample:
                    raise MalformedShardError(f"{path}: key {key!r} has extension {ext!r} twice")
                sample[ext] = tar.extractfile(info).read()  # type: ignore[union-attr]
    except tarfile.TarError as exc:
        raise MalformedShardError(f"{path}: sample {key!r}: {exc}") from exc
    return sample


def read_span(f: Any, path: str, span: SampleSpan, verify: bool = True) -> dict[str, Any]:
    """Read one sample from an open shard file at its span.

    Args:
        f: the shard opened for binary reading (seekable).
        path: the shard's path or URL (for messages and ``__url__``).
        span: the sample's index entry.
        verify: check the bytes' sha256 before decoding them.

    Raises:
        ShardChecksumError: the bytes do not hash to the index's sha256.
        MalformedShardError: see ``parse_span``.
    """
    if f.tell() != span.offset:
        f.seek(span.offset)
    data = f.read(span.length)
    if len(data) != span.length:
        raise MalformedShardError(f"{path}: truncated inside sample {span.key!r}")
    if verify:
        got = hashlib.sha256(data).hexdigest()
        if got != span.sha256:
            raise ShardChecksumError(f"{path}: sample {span.key!r} has sha256 {got}, the index says {span.sha256}")
    return parse_span(path, span.key, data)


def iter_spans(path: str, spans: list[SampleSpan], verify: bool = True) -> Iterator[dict[str, Any]]:
    """Read the given samples of one shard (any subset, best in file order)."""
    with fsspec.open(path, "rb") as f:
        for span in spans:
            yield read_span(f, path, span, verify)
