"""The one way this project writes a WebDataset tar shard: deterministic, validated, atomic.

The ingest pipeline and the publishing step both write through it: one layout, one set of rules.

Record shape in: a sample ``{"__key__": str, "<ext>": bytes | str | dict | list, ...}``, as in
WebDataset. ``bytes`` are stored as is, ``str`` as UTF-8, and a ``dict``/``list`` under an
extension ``json`` (or ``*.json``) as canonical JSON (:func:`canonical_json`). Entries named
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

Atomic commit. A shard is written to ``.{name}.tmp-{pid}`` in its final directory, hashed
while written, fsynced, then ``os.replace``d onto its final name (and the directory fsynced).
A writer that received no sample writes nothing. On an exception the temporary file is
removed and no final file appears. ``on_shard_done(ShardInfo)`` runs after each rename: the
place to write a per-shard status file that marks the shard done for resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO, Callable, Iterable, Mapping

from shards.keys import canonical_json, encode_sample, validate_extension, validate_key  # noqa: F401 (re-exported)

__all__ = [
    "DEFAULT_MTIME",
    "MEMBER_MODE",
    "TAR_FORMAT",
    "ShardInfo",
    "ShardWriter",
    "canonical_json",
    "encode_sample",
    "file_sha256",
    "validate_extension",
    "validate_key",
    "write_shard",
]

DEFAULT_MTIME = 0
"""Member mtime: 0 seconds, 1970-01-01T00:00:00Z."""
MEMBER_MODE = 0o444
"""Member permission bits: read-only for everyone."""
TAR_FORMAT = tarfile.PAX_FORMAT
"""POSIX.1-2001 (PAX); see the module docstring."""
_ENCODING = "utf-8"
_MAX_MTIME = 8**11  # largest value a ustar mtime field holds without a PAX header
_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE

OnShardDone = Callable[["ShardInfo"], Any]


@dataclass(frozen=True)
class ShardInfo:
    """What was committed: one finished shard.

    Attributes:
        path: final path of the shard, as given (``os.fspath``).
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
        return canonical_json(self.to_dict()).decode(_ENCODING)

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


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _check_mtime(mtime: int) -> int:
    if isinstance(mtime, bool) or not isinstance(mtime, int) or not 0 <= mtime < _MAX_MTIME:
        raise ValueError(f"mtime must be an int in [0, 8**11), got {mtime!r}")
    return mtime


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def _archive_size(offset: int) -> int:
    """File size of a tar whose members end at ``offset``: end blocks, then record padding."""
    return _round_up(offset + _END_OF_ARCHIVE, tarfile.RECORDSIZE)


class _HashingFile:
    """File-like sink that hashes and counts every byte on its way to the real file."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.raw.write(data)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms that cannot open a directory (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _member_header(key: str, ext: str, size: int, mtime: int) -> bytes:
    """The tar header block(s) of member ``key.ext``: every field set, encoded by ``tarfile``."""
    info = tarfile.TarInfo(f"{key}.{ext}")
    info.size = size
    info.mtime = mtime
    info.mode = MEMBER_MODE
    info.type = tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(TAR_FORMAT, _ENCODING, "strict")


def _frames(key: str, members: list[tuple[str, bytes]], mtime: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """Headers and data of a sample's members, and the bytes they take in the archive."""
    frames = [(_member_header(key, ext, len(data), mtime), data) for ext, data in members]
    return frames, sum(len(h) + _round_up(len(d), tarfile.BLOCKSIZE) for h, d in frames)


class _OpenShard:
    """One shard being written to its temporary name; ``commit`` or ``abort`` ends it.

    Framing is ``tarfile``'s, written here so that each header is encoded once (it is also
    needed to know a sample's size before writing it): header, data, zero padding to a
    512-byte block; at the end two zero blocks and zero padding to a 10240-byte record.
    """

    def __init__(self, path: str, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        directory, name = os.path.split(path)
        self.directory = directory or "."
        self.tmp_path = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
        self.raw = open(self.tmp_path, "wb")
        self.sink = _HashingFile(self.raw)
        self.num_samples = 0
        self.first_key = ""
        self.last_key = ""

    def size_with(self, extra: int) -> int:
        """Final file size if ``extra`` more member bytes were added."""
        return _archive_size(self.sink.count + extra)

    def add(self, key: str, frames: list[tuple[bytes, bytes]]) -> None:
        for header, data in frames:
            self.sink.write(header)
            self.sink.write(data)
            pad = -len(data) % tarfile.BLOCKSIZE
            if pad:
                self.sink.write(tarfile.NUL * pad)
        if self.num_samples == 0:
            self.first_key = key
        self.last_key = key
        self.num_samples += 1

    def commit(self) -> ShardInfo:
        end = _archive_size(self.sink.count) - self.sink.count
        self.sink.write(tarfile.NUL * end)
        self.raw.flush()
        if self.fsync:
            os.fsync(self.raw.fileno())
        self.raw.close()
        os.replace(self.tmp_path, self.path)
        if self.fsync:
            _fsync_dir(self.directory)
        return ShardInfo(
            path=self.path,
            sha256=self.sink.digest.hexdigest(),
            num_samples=self.num_samples,
            num_bytes=self.sink.count,
            first_key=self.first_key,
            last_key=self.last_key,
        )

    def abort(self) -> None:
        try:
            self.raw.close()
        finally:
            try:
                os.unlink(self.tmp_path)
            except FileNotFoundError:
                pass


def write_shard(
    path: str | os.PathLike[str],
    samples: Iterable[Mapping[str, Any]],
    *,
    mtime: int = DEFAULT_MTIME,
    fsync: bool = True,
    on_shard_done: OnShardDone | None = None,
) -> ShardInfo | None:
    """Write one shard from samples in any order (sorted in memory).

    Every sample is validated and encoded before the file is opened.

    Args:
        path: final path of the tar; its directory must exist. An existing file is replaced.
        samples: sample dicts; keys must be unique.
        mtime: member mtime in seconds since the epoch.
        fsync: fsync the file and its directory around the rename (turn off only for scratch).
        on_shard_done: called with the :class:`ShardInfo` after the rename.

    Returns:
        The :class:`ShardInfo`, or None when there was no sample (then nothing is written).

    Raises:
        ValueError: on an invalid or duplicate key, an invalid extension or a bad mtime.
        TypeError: on a value that cannot be encoded.
    """
    _check_mtime(mtime)
    encoded = [encode_sample(sample) for sample in samples]
    if not encoded:
        return None
    encoded.sort(key=lambda item: item[0])
    for (prev, _), (key, _) in zip(encoded, encoded[1:]):
        if key == prev:
            raise ValueError(f"sample key {key!r}: duplicate key within shard {os.fspath(path)!r}")
    shard = _OpenShard(os.fspath(path), fsync)
    try:
        for key, members in encoded:
            shard.add(key, _frames(key, members, mtime)[0])
        info = shard.commit()
    except BaseException:
        shard.abort()
        raise
    if on_shard_done is not None:
        on_shard_done(info)
    return info


class ShardWriter:
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
        self.mtime = _check_mtime(mtime)
        self.fsync = fsync
        self.on_shard_done = on_shard_done
        self.next_index = start_index
        self.shards: list[ShardInfo] = []
        self._current: _OpenShard | None = None
        self._last_key: str | None = None
        self._closed = False

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, sample: Mapping[str, Any]) -> None:
        """Validate, encode and append one sample, rolling over to a new shard when full.

        Raises:
            ValueError: on an invalid key or extension, or a key not greater than the last one.
            TypeError: on a value that cannot be encoded.
            RuntimeError: after :meth:`close` or :meth:`abort`.
        """
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        key, members = encode_sample(sample)
        if self._last_key is not None and key <= self._last_key:
            raise ValueError(
                f"sample key {key!r}: keys must arrive in strictly increasing order, "
                f"but the previous key was {self._last_key!r}"
            )
        frames, size = _frames(key, members, self.mtime)
        shard = self._current
        if shard is not None and (
            shard.num_samples >= self.max_samples or shard.size_with(size) > self.max_bytes
        ):
            self._finish()
        if self._current is None:
            self._current = _OpenShard(self.pattern % self.next_index, self.fsync)
            self.next_index += 1
        try:
            self._current.add(key, frames)
        except BaseException:
            self.abort()
            raise
        self._last_key = key

    def _finish(self) -> None:
        shard, self._current = self._current, None
        if shard is None:
            return
        try:
            info = shard.commit()
        except BaseException:
            shard.abort()
            raise
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
