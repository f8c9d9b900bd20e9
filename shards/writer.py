"""The one way this project writes a WebDataset tar shard: deterministic, validated, atomic.

The ingest pipeline and the publishing step both write through it: one layout, one set of rules.

Record shape in: a sample ``{"__key__": str, "<ext>": bytes | str | dict | list, ...}``, as in
WebDataset. ``bytes`` are stored as is, ``str`` as UTF-8, and a ``dict``/``list`` under an
extension ``json`` (or ``*.json``) as canonical JSON (``schemas.records.canonical_json``). Entries named
``__name__`` (``__url__``, ``__local_path__``, as WebDataset readers add them) are metadata
and are not written, so a sample read back with :mod:`shards.reader` can be written again.
Record shape out: one tar file per shard plus a :class:`ShardInfo` (path, sha256, counts).

Byte reproducibility. The same samples, in any input order, give the same bytes:

* format: POSIX.1-2001 **PAX** (:data:`TAR_FORMAT`). A plain USTAR header is written for
  every member whose name is ASCII and at most 100 characters; a PAX extended header
  carries the name (UTF-8) only when it is not, so non-ASCII and long keys survive
  exactly, independent of the locale. USTAR would reject those names instead.
* every member: ``mtime`` fixed (default :data:`DEFAULT_MTIME` = 0, 1970-01-01T00:00:00Z,
  configurable), uid = gid = 0, empty uname/gname, mode :data:`MEMBER_MODE` (0o444).
* order: samples sorted by key (Python ``str`` order, which is UTF-8 byte order), members of
  a sample sorted by extension; member name ``f"{key}.{ext}"``.
* end: two zero blocks, then zero padding to a 10240-byte record, as ``tarfile`` writes.

Why ``tarfile`` and not ``webdataset.TarWriter``: TarWriter 1.0.2 computes its ``format``
argument but never passes it to ``tarfile.open`` (the format is whatever the stdlib default
is), exposes no uid/gid/encoding, silently drops ``_``-prefixed entries and its default JSON
encoder is not canonical; it also offers neither atomic rename nor a checksum. Here every
header field is set explicitly on a ``tarfile.TarInfo`` and encoded by ``TarInfo.tobuf``; the
block framing (data padded to 512 bytes, end blocks, record padding) is ``tarfile``'s, written
here so that each header is encoded once: it is also what sizes a sample against ``max_bytes``.
The tests check that the bytes equal those of ``webdataset.TarWriter(user="", group="",
mtime=0, encoder=False)`` fed the same sorted, encoded samples, that ``tarfile`` and
``webdataset.WebDataset`` read them, and a golden sha256 pins the layout across Python versions.

Atomic commit. A shard is written under a temporary name beside its final name
(:mod:`shards.atomic`), hashed while written, fsynced, then renamed onto its final name (and
the folder fsynced). A writer that received no sample writes nothing. On an exception the
temporary file is removed and no final file appears. ``on_shard_done(ShardInfo)`` runs after
each rename. The done marker, table and reuse on resume that make a shard the unit of work are
:mod:`shards.commit`'s.

Storage. Paths are local paths or fsspec URLs (``memory://``, ``gs://``, ``s3://``), or paths of
an fsspec file system passed as ``fs``; see :mod:`shards.atomic` for what a rename is there.

Three ways to write: :func:`write_shard` (one shard from samples in any order, sorted in
memory), :class:`ShardFile` (one shard streamed from samples in key order, one sample in memory
at a time) and :class:`ShardWriter` (samples in key order into shards that roll over by count
and size).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, TypeVar

from shards.atomic import AtomicFile, resolve
from shards.tarformat import (  # noqa: F401 (constants re-exported)
    DEFAULT_MTIME, MEMBER_MODE, TAR_FORMAT, HashingWriter, archive_size, check_mtime, member_frames,
)
from schemas.records import canonical_json
from shards.keys import encode_sample, validate_extension, validate_key  # noqa: F401 (re-exported)

__all__ = [
    "DEFAULT_MTIME",
    "MEMBER_MODE",
    "TAR_FORMAT",
    "ShardFile",
    "ShardInfo",
    "ShardWriter",
    "encode_sample",
    "file_sha256",
    "validate_extension",
    "validate_key",
    "write_shard",
]

OnShardDone = Callable[["ShardInfo"], Any]
_Self = TypeVar("_Self", bound="_SampleSink")


@dataclass(frozen=True)
class ShardInfo:
    """What was committed: one finished shard.

    Attributes:
        path: final path of the shard, as given (``os.fspath``; a URL stays a URL).
        sha256: hex sha256 of the shard's bytes.
        num_samples: samples in the shard (>= 1).
        num_bytes: size of the shard file in bytes.
        first_key: smallest key in the shard.
        last_key: largest key in the shard.
    """

    path: str
    sha256: str
    num_samples: int
    num_bytes: int
    first_key: str
    last_key: str

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict."""
        return asdict(self)

    def to_json(self) -> str:
        """Return canonical JSON text of the fields (sorted keys, compact, UTF-8 safe)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardInfo:
        """Parse what :meth:`to_json` wrote.

        Raises:
            ValueError: when the text is not a JSON object with exactly these fields.
        """
        data = json.loads(text)
        names = {"path", "sha256", "num_samples", "num_bytes", "first_key", "last_key"}
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"ShardInfo JSON must hold exactly the fields {sorted(names)}: {text!r}")
        return cls(**data)


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20, *, fs: Any = None) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks.

    Args:
        path: a local path or fsspec URL (a path of ``fs`` when ``fs`` is given).
        chunk_size: bytes per read.
        fs: the fsspec file system of ``path``, if any.

    Raises:
        FileNotFoundError: no such file.
    """
    digest = hashlib.sha256()
    fs, real = resolve(path, fs)
    with open(real, "rb") if fs is None else fs.open(real, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class _OpenShard:
    """One shard being written to its temporary name; ``commit`` or ``abort`` ends it.

    Framing is :mod:`shards.tarformat`'s.
    """

    def __init__(self, path: str, fs: Any, fsync: bool) -> None:
        self.path = path
        self.staged = AtomicFile(path, "wb", fs=fs, fsync=fsync)
        self.sink = HashingWriter(self.staged.file)
        self.num_samples = 0
        self.first_key = ""
        self.last_key = ""

    def size_with(self, extra: int) -> int:
        """Final file size if ``extra`` more member bytes were added."""
        return archive_size(self.sink.count + extra)

    def add(self, key: str, frames: list[tuple[bytes, bytes]]) -> None:
        self.sink.add(frames)
        if self.num_samples == 0:
            self.first_key = key
        self.last_key = key
        self.num_samples += 1

    def commit(self) -> ShardInfo:
        self.sink.finish()
        self.staged.commit()
        return ShardInfo(
            path=self.path,
            sha256=self.sink.digest.hexdigest(),
            num_samples=self.num_samples,
            num_bytes=self.sink.count,
            first_key=self.first_key,
            last_key=self.last_key,
        )

    def abort(self) -> None:
        self.staged.abort()


def _encode_after(sample: Mapping[str, Any], last_key: str | None, mtime: int) -> tuple[str, list, int]:
    """Encode a sample that must come after ``last_key``: (key, member frames, their bytes)."""
    key, members = encode_sample(sample)
    if last_key is not None and key <= last_key:
        raise ValueError(
            f"sample key {key!r}: keys must arrive in strictly increasing order, "
            f"but the previous key was {last_key!r}"
        )
    frames, size = member_frames(key, members, mtime)
    return key, frames, size


def write_shard(
    path: str | os.PathLike[str],
    samples: Iterable[Mapping[str, Any]],
    *,
    mtime: int = DEFAULT_MTIME,
    fsync: bool = True,
    on_shard_done: OnShardDone | None = None,
    fs: Any = None,
) -> ShardInfo | None:
    """Write one shard from samples in any order (sorted in memory).

    Every sample is validated and encoded before the file is opened.

    Args:
        path: final path of the tar (local path or fsspec URL); its folder is created when
            missing. An existing file is replaced.
        samples: sample dicts; keys must be unique.
        mtime: member mtime in seconds since the epoch.
        fsync: fsync the file and its directory around the rename (turn off only for scratch).
        on_shard_done: called with the :class:`ShardInfo` after the rename.
        fs: the fsspec file system of ``path``, if not a plain path or URL.

    Returns:
        The :class:`ShardInfo`, or None when there was no sample (then nothing is written).

    Raises:
        ValueError: on an invalid or duplicate key, an invalid extension or a bad mtime.
        TypeError: on a value that cannot be encoded.
    """
    check_mtime(mtime)
    encoded = [encode_sample(sample) for sample in samples]
    if not encoded:
        return None
    encoded.sort(key=lambda item: item[0])
    for (prev, _), (key, _) in zip(encoded, encoded[1:]):
        if key == prev:
            raise ValueError(f"sample key {key!r}: duplicate key within shard {os.fspath(path)!r}")
    with ShardFile(path, mtime=mtime, fsync=fsync, fs=fs) as shard:
        for key, members in encoded:
            shard._append(key, member_frames(key, members, mtime)[0])
    info = shard.info
    assert info is not None
    if on_shard_done is not None:
        on_shard_done(info)
    return info


class _SampleSink:
    """What both streaming writers share: key order, closing, and ``with`` support
    (:meth:`close` on a clean exit, :meth:`abort` on an exception)."""

    mtime: int
    _last_key: str | None
    _closed: bool

    def _next(self, sample: Mapping[str, Any]) -> tuple[str, list, int]:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return _encode_after(sample, self._last_key, self.mtime)

    def close(self) -> Any:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ShardFile(_SampleSink):
    """Write one shard from samples that arrive in strictly increasing key order.

    Streams: one sample in memory at a time, no size or count limit. The file is created at
    the first sample, so a shard that receives none writes nothing. Use it as a context manager
    (an exception inside the block discards the shard) or call :meth:`close` / :meth:`abort`.

    Example::

        with ShardFile("out/clips-000007.tar") as shard:
            for sample in samples_in_key_order:
                shard.write(sample)
        info = shard.info

    Args:
        path: final path of the tar (local path or fsspec URL); an existing file is replaced.
        mtime: member mtime in seconds since the epoch.
        fsync: fsync the file and its directory around the rename.
        fs: the fsspec file system of ``path``, if not a plain path or URL.

    Raises:
        ValueError: on a bad mtime.
    """

    def __init__(self, path: str | os.PathLike[str], *, mtime: int = DEFAULT_MTIME, fsync: bool = True,
                 fs: Any = None) -> None:
        self.path = os.fspath(path)
        self.mtime = check_mtime(mtime)
        self.fsync = fsync
        self.fs = fs
        self.info: ShardInfo | None = None
        self._open: _OpenShard | None = None
        self._last_key: str | None = None
        self._closed = False

    def write(self, sample: Mapping[str, Any]) -> None:
        """Validate, encode and append one sample (errors as :meth:`ShardWriter.write`)."""
        key, frames, _ = self._next(sample)
        self._append(key, frames)

    @property
    def num_samples(self) -> int:
        """Samples written so far."""
        return 0 if self._open is None else self._open.num_samples

    def size_with(self, extra: int) -> int:
        """The file's final size if ``extra`` more member bytes (headers and padding) were added."""
        return archive_size(extra) if self._open is None else self._open.size_with(extra)

    def _append(self, key: str, frames: list[tuple[bytes, bytes]]) -> None:
        if self._open is None:
            self._open = _OpenShard(self.path, self.fs, self.fsync)
        try:
            self._open.add(key, frames)
        except BaseException:
            self.abort()
            raise
        self._last_key = key

    def close(self) -> ShardInfo | None:
        """Commit the shard (rename onto its final name).

        Returns:
            Its :class:`ShardInfo` (also in :attr:`info`), or None when no sample came.
        """
        if not self._closed:
            self._closed = True
            shard, self._open = self._open, None
            if shard is not None:
                try:
                    self.info = shard.commit()
                except BaseException:
                    shard.abort()
                    raise
        return self.info

    def abort(self) -> None:
        """Discard the shard (temporary file removed); the final name is left as it was."""
        self._closed = True
        shard, self._open = self._open, None
        if shard is not None:
            shard.abort()


class ShardWriter(_SampleSink):
    """Write samples that arrive in strictly increasing key order into rolling shards.

    Shard ``i`` (counting from ``start_index``) goes to ``pattern % i``. A new shard starts when
    the current one holds ``max_samples`` samples, or when the next sample would make the file
    larger than ``max_bytes`` (exact: headers, padding and end blocks counted). A sample larger
    than ``max_bytes`` on its own goes alone into a shard, which then exceeds the limit.

    Use it as a context manager; :meth:`close` returns the :class:`ShardInfo` of every shard.
    On an exception inside the ``with`` block the open shard is discarded (temporary file
    removed); shards finished before it stay, committed, their hooks already run.

    Example::

        with ShardWriter("out/clips-%06d.tar", max_samples=1000) as sink:
            for sample in sorted_samples:
                sink.write(sample)
        infos = sink.shards
    """

    def __init__(
        self,
        pattern: str | os.PathLike[str],
        *,
        max_samples: int = 10_000,
        max_bytes: int = 1_000_000_000,
        start_index: int = 0,
        mtime: int = DEFAULT_MTIME,
        fsync: bool = True,
        on_shard_done: OnShardDone | None = None,
        fs: Any = None,
    ) -> None:
        """Create the writer; no file is touched until the first sample.

        Args:
            pattern: ``%``-format path with one integer field, e.g. ``"dir/part-%06d.tar"``.
            max_samples: most samples per shard (>= 1).
            max_bytes: most bytes per shard file (> 0), see the class docstring.
            start_index: index of the first shard (resume continues a numbering).
            mtime: member mtime in seconds since the epoch.
            fsync: fsync each file and its directory around the rename.
            on_shard_done: called with each shard's :class:`ShardInfo` after its rename.
            fs: the fsspec file system of ``pattern``, if not a plain path or URL.

        Raises:
            ValueError: on a pattern without one integer field, or bad limits or mtime.
        """
        self.pattern = os.fspath(pattern)
        try:
            distinct = self.pattern % 0 != self.pattern % 1
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"pattern {self.pattern!r} must hold one %-integer field, e.g. %06d: {exc}"
            ) from None
        if not distinct:
            raise ValueError(f"pattern {self.pattern!r} must hold one %-integer field, e.g. %06d")
        for name, value, low in (
            ("max_samples", max_samples, 1),
            ("max_bytes", max_bytes, 1),
            ("start_index", start_index, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.mtime = check_mtime(mtime)
        self.fsync = fsync
        self.fs = fs
        self.on_shard_done = on_shard_done
        self.next_index = start_index
        self.shards: list[ShardInfo] = []
        self._current: ShardFile | None = None
        self._last_key: str | None = None
        self._closed = False

    def write(self, sample: Mapping[str, Any]) -> None:
        """Validate, encode and append one sample, rolling over to a new shard when full.

        Raises:
            ValueError: on an invalid key or extension, or a key not greater than the last one.
            TypeError: on a value that cannot be encoded.
            RuntimeError: after :meth:`close` or :meth:`abort`.
        """
        key, frames, size = self._next(sample)
        shard = self._current
        if shard is not None and (
            shard.num_samples >= self.max_samples or shard.size_with(size) > self.max_bytes
        ):
            self._finish()
        if self._current is None:
            self._current = ShardFile(self.pattern % self.next_index, mtime=self.mtime, fsync=self.fsync,
                                      fs=self.fs)
            self.next_index += 1
        try:
            self._current._append(key, frames)
        except BaseException:
            self.abort()
            raise
        self._last_key = key

    def _finish(self) -> None:
        shard, self._current = self._current, None
        if shard is None:
            return
        info = shard.close()
        assert info is not None  # a ShardFile exists only once it holds a sample
        self.shards.append(info)
        if self.on_shard_done is not None:
            self.on_shard_done(info)

    def close(self) -> list[ShardInfo]:
        """Commit the open shard (if it holds a sample) and return every shard's info.

        Returns:
            The :class:`ShardInfo` of each shard written, in order; empty when no sample came.
        """
        if not self._closed:
            self._closed = True
            self._finish()
        return list(self.shards)

    def abort(self) -> None:
        """Discard the open shard (temporary file removed); finished shards stay."""
        self._closed = True
        shard, self._current = self._current, None
        if shard is not None:
            shard.abort()
