"""Per-sample index of a shard: where each sample's bytes lie and a checksum of its contents.

One job: locate samples inside a tar shard so a reader can jump to any sample (random access by
key, resuming mid-epoch, several readers splitting one shard) and verify what it reads, without
reading the whole shard.

An index entry (``SampleSpan``) covers a sample's members from its first header to the end of
its last member's padding (``offset``, ``length``) and holds ``xxh3``: the hex ``xxh3_128`` of
the sample's member data, concatenated in member order (``member_checksum``). Together with the
checksum every tar header carries (``tarfile`` refuses a header that does not match it), that
covers every byte of a sample but the zero padding; the shard's sha256 in the manifest, which
``verify`` checks, covers all of them. xxh3 runs at memory speed (about 3.5 GB/s here against
0.4 GB/s for sha256), so reading with checks costs little more than reading.

The writer side needs no second pass: ``spans_for`` derives the spans from the members and
their exact encoded sizes (``pipelines.publish.shard_plan``). ``index_shard`` scans an existing
shard for the same spans. ``read_span`` reads one span, parses its members with ``tarfile``
(a name that is not ``key.ext``, a key that breaks ``shards.keys.validate_key`` such as ``../x``
or ``/x``, or a member of another key raise ``MalformedShardError``) and checks the checksum
before the sample is handed on.

Storage: paths are local or fsspec URLs.
"""
from __future__ import annotations

import io
import tarfile
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import fsspec
import xxhash
from webdataset.tariterators import base_plus_ext

from shards.keys import validate_key
from shards.reader import MalformedShardError, ShardChecksumError

__all__ = ["SampleSpan", "member_checksum", "spans_for", "index_shard", "parse_span", "read_span", "iter_spans"]

_END = b"\0" * (2 * tarfile.BLOCKSIZE)


class SampleSpan(NamedTuple):
    """Where one sample lies in its shard, and the checksum of its member data."""

    key: str
    offset: int
    length: int
    xxh3: str


def member_checksum(datas: Iterable[bytes]) -> str:
    """Hex ``xxh3_128`` of a sample's member data, in member order."""
    digest = xxhash.xxh3_128()
    for data in datas:
        digest.update(data)
    return digest.hexdigest()


def spans_for(samples: Sequence[tuple[str, Sequence[tuple[str, bytes]], int]]) -> list[SampleSpan]:
    """Spans of samples written in this order from offset 0: ``(key, members, encoded size)``."""
    out, offset = [], 0
    for key, members, size in samples:
        out.append(SampleSpan(key, offset, size, member_checksum(data for _, data in members)))
        offset += size
    return out


def _check_name(path: str, name: str) -> tuple[str, str]:
    key, ext = base_plus_ext(name)
    if key is None or not ext:
        raise MalformedShardError(f"{path}: member {name!r} is not named key.ext")
    try:
        validate_key(key)
    except ValueError as exc:
        raise MalformedShardError(f"{path}: member {name!r} refused: {exc}") from None
    return key, ext


def index_shard(path: str) -> list[SampleSpan]:
    """Scan an existing shard and return the span of every sample, in file order.

    Raises:
        MalformedShardError: a member that is not a regular ``key.ext`` file, an unsafe key, or
            members of one key that are not contiguous.
    """
    spans: list[list[Any]] = []
    seen: set[str] = set()
    with fsspec.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for info in tar:
            if not info.isreg():
                raise MalformedShardError(f"{path}: member {info.name!r} is not a regular file")
            key, _ = _check_name(path, info.name)
            end = info.offset_data + -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            data = tar.extractfile(info).read()  # type: ignore[union-attr]
            tar.members.clear()
            if spans and spans[-1][0] == key:
                spans[-1][2] = end
                spans[-1][3].update(data)
                continue
            if key in seen:
                raise MalformedShardError(f"{path}: members of key {key!r} are not contiguous")
            seen.add(key)
            digest = xxhash.xxh3_128()
            digest.update(data)
            spans.append([key, info.offset, end, digest])
    return [SampleSpan(key, start, end - start, digest.hexdigest()) for key, start, end, digest in spans]


def parse_span(path: str, key: str, data: bytes) -> dict[str, Any]:
    """The members of one sample's bytes as ``{"__key__", "__url__", ext: bytes}``.

    The first member's name is checked in full (``key.ext``, ``validate_key``); the others must
    carry the same key.

    Raises:
        MalformedShardError: a member of another key, a bad name or header, a repeated extension.
    """
    sample: dict[str, Any] = {"__key__": key, "__url__": path}
    try:
        with tarfile.open(fileobj=io.BytesIO(data + _END), mode="r:") as tar:
            for n, info in enumerate(tar):
                got, ext = _check_name(path, info.name) if n == 0 else base_plus_ext(info.name)
                if got != key or not ext or not info.isreg():
                    raise MalformedShardError(f"{path}: member {info.name!r} inside the span of sample {key!r}")
                if ext in sample:
                    raise MalformedShardError(f"{path}: key {key!r} has extension {ext!r} twice")
                sample[ext] = tar.extractfile(info).read()  # type: ignore[union-attr]
    except tarfile.TarError as exc:
        raise MalformedShardError(f"{path}: sample {key!r}: {exc}") from exc
    if len(sample) == 2:
        raise MalformedShardError(f"{path}: no member of sample {key!r} at its indexed span")
    return sample


def read_span(f: Any, path: str, span: SampleSpan, verify: bool = True) -> dict[str, Any]:
    """Read one sample from an open shard file at its span.

    Args:
        f: the shard opened for binary reading (seekable).
        path: the shard's path or URL (for messages and ``__url__``).
        span: the sample's index entry.
        verify: check the member data's checksum before returning the sample.

    Raises:
        ShardChecksumError: the member data does not hash to the index's checksum.
        MalformedShardError: see ``parse_span``.
    """
    if f.tell() != span.offset:
        f.seek(span.offset)
    data = f.read(span.length)
    if len(data) != span.length:
        raise MalformedShardError(f"{path}: truncated inside sample {span.key!r}")
    sample = parse_span(path, span.key, data)
    if verify:
        got = member_checksum(v for k, v in sample.items() if not k.startswith("__"))
        if got != span.xxh3:
            raise ShardChecksumError(f"{path}: sample {span.key!r} has checksum {got}, the index says {span.xxh3}")
    return sample


def iter_spans(path: str, spans: list[SampleSpan], verify: bool = True) -> Iterator[dict[str, Any]]:
    """Read the given samples of one shard (any subset, best in file order)."""
    with fsspec.open(path, "rb") as f:
        for span in spans:
            yield read_span(f, path, span, verify)
