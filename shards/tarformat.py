"""The byte layout of this project's tar shards, both ways: member frames out, members in.

One job: what the bytes of a shard are. :mod:`shards.writer` frames members with
:func:`member_frames` and sizes archives with :func:`archive_size`; :mod:`shards.reader` parses
them back with :func:`iter_members`, strictly. Both hash every byte once on its way
(:class:`HashingWriter`, :class:`HashingReader`).

Writing: every member is a ``tarfile.TarInfo`` with every header field set (mtime
:data:`DEFAULT_MTIME` unless configured, uid = gid = 0, empty uname/gname, mode
:data:`MEMBER_MODE`, POSIX.1-2001 PAX format: a plain USTAR header when the name is ASCII and
at most 100 characters, a PAX header carrying the UTF-8 name otherwise), encoded by
``TarInfo.tobuf``; the framing is ``tarfile``'s (data padded to 512 bytes; at the end two zero
blocks and zero padding to a 10240-byte record), written here so each header is encoded once.

Reading: one 512-byte header at a time (a short path for USTAR headers, else
``tarfile.TarInfo.frombuf``), PAX ``path``/``size``
records and GNU long names applied to the next member; a truncated file, a corrupt header, a
non-regular member or anything but zeros after the end-of-archive block raises
:class:`MalformedShardError`. ``tarfile.open`` is not used for reading because it needs to seek
and ends iteration silently at a corrupt header.
"""
from __future__ import annotations

import hashlib
import tarfile
from typing import BinaryIO, Iterator

__all__ = [
    "DEFAULT_MTIME", "MEMBER_MODE", "TAR_FORMAT", "HashingReader", "HashingWriter", "MalformedShardError",
    "ShardChecksumError", "ShardReadError", "archive_size", "check_mtime", "iter_members", "member_frames",
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
_BLOCK = tarfile.BLOCKSIZE
_ZERO_BLOCK = bytes(_BLOCK)
_CHUNK = 1 << 20
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)


class ShardReadError(ValueError):
    """A shard could not be read as a valid shard of this project."""


class MalformedShardError(ShardReadError):
    """The file is not a well-formed tar of ``key.ext`` members."""


class ShardChecksumError(ShardReadError):
    """The file's sha256 is not the expected one."""


def check_mtime(mtime: int) -> int:
    """Return ``mtime`` if a USTAR header holds it (an int in ``[0, 8**11)``).

    Raises:
        ValueError: otherwise.
    """
    if isinstance(mtime, bool) or not isinstance(mtime, int) or not 0 <= mtime < _MAX_MTIME:
        raise ValueError(f"mtime must be an int in [0, 8**11), got {mtime!r}")
    return mtime


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def archive_size(offset: int) -> int:
    """File size of a tar whose members end at ``offset``: end blocks, then record padding."""
    return _round_up(offset + _END_OF_ARCHIVE, tarfile.RECORDSIZE)


class HashingWriter:
    """Frames members into a file, hashing and counting every byte on its way.

    Attributes:
        digest: sha256 of the bytes written so far.
        count: bytes written so far.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.count = 0

    def add(self, frames: list[tuple[bytes, bytes]]) -> None:
        """Write members from :func:`member_frames`: header, data, zero padding to a block."""
        for header, data in frames:
            self.write(header)
            self.write(data)
            pad = -len(data) % _BLOCK
            if pad:
                self.write(tarfile.NUL * pad)

    def finish(self) -> None:
        """Write the end of the archive: two zero blocks, then zero padding to a record."""
        self.write(tarfile.NUL * (archive_size(self.count) - self.count))

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.raw.write(data)


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


def member_frames(key: str, members: list[tuple[str, bytes]], mtime: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """Headers and data of a sample's members, and the bytes they take in the archive.

    Args:
        key: the sample key (validated by the caller).
        members: ``(extension, data)`` in the order to store.
        mtime: member mtime.

    Returns:
        ``([(header bytes, data), ...], archive bytes of those members with padding)``.
    """
    frames = [(_member_header(key, ext, len(data), mtime), data) for ext, data in members]
    return frames, sum(len(h) + _round_up(len(d), tarfile.BLOCKSIZE) for h, d in frames)


class HashingReader:
    """Reads a file front to back in large chunks, hashing every chunk as it is read.

    Each 1 MiB chunk is hashed once, when read (a helper thread for the hashing was measured
    slower here: the hand-over costs more than ``hashlib`` takes on a chunk).

    Attributes:
        offset: bytes handed out so far.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self._digest = hashlib.sha256()
        self.buf = b""
        self.pos = 0  # position in buf
        self.offset = 0  # bytes of the file handed out so far

    def hexdigest(self) -> str:
        """The sha256 of every byte read from the file so far."""
        return self._digest.hexdigest()

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the file).

        Only the ``n`` bytes handed out are copied: a chunk that crosses the end of a read stays
        the buffer (not joined with what is left of the previous one).
        """
        buf, pos = self.buf, self.pos
        if len(buf) - pos >= n:
            out = buf[pos:pos + n]
            self.pos = pos + n
        else:
            parts, need = [buf[pos:]], n - (len(buf) - pos)
            self.buf, self.pos = b"", 0
            while need > 0:
                chunk = self.raw.read(max(_CHUNK, need))
                if not chunk:
                    break
                self._digest.update(chunk)
                if len(chunk) > need:
                    parts.append(chunk[:need])
                    self.buf, self.pos = chunk, need
                    break
                parts.append(chunk)
                need -= len(chunk)
            out = b"".join(parts)
        self.offset += len(out)
        return out

    def rest_is_zeros(self) -> tuple[bool, int]:
        """Read to the end of the file: (whether every remaining byte is zero, how many there were)."""
        count, zeros = 0, True
        while chunk := self.read(_CHUNK):
            count += len(chunk)
            zeros = zeros and chunk.count(0) == len(chunk)
        return zeros, count


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    """``"%d %s=%s\\n"`` records of a PAX extended header."""
    out, pos = {}, 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise MalformedShardError(f"{where}: malformed PAX header") from None
        record = data[space + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise MalformedShardError(f"{where}: malformed PAX header")
        name, _, value = record[:-1].partition(b"=")
        out[name.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _octal(field: bytes) -> int:
    """A NUL/space-terminated octal header field; -1 when it is not one."""
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        return -1


def _header(block: bytes, path: str, at: int) -> tuple[str, int, bytes]:
    """(name, size, type) of one header block.

    The USTAR headers this project writes are read by a short path (checksum, octal size, name
    and prefix); anything else (GNU headers, base-256 sizes, a checksum that only tarfile's
    signed sum explains) goes through ``tarfile.TarInfo.frombuf``, which also words the errors.

    Raises:
        MalformedShardError: a header ``tarfile`` refuses (bad checksum, empty, truncated).
    """
    if block[257:263] == b"ustar\0" and not block[124] & 0x80:
        stored, size = _octal(block[148:156]), _octal(block[124:136])
        if size >= 0 and stored == sum(block) - sum(block[148:156]) + 8 * 32:
            name = block[:100].split(b"\0", 1)[0]
            prefix = block[345:500].split(b"\0", 1)[0]
            text = (prefix + b"/" + name if prefix else name).decode("utf-8", "surrogateescape")
            kind = block[156:157]
            if kind == tarfile.AREGTYPE and text.endswith("/"):  # old-style directory
                kind = tarfile.DIRTYPE
            return text, size, kind
    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        raise MalformedShardError(f"{path}: corrupt tar header at byte {at}: {exc}") from None
    return info.name, info.size, info.type


def iter_members(path: str, reader: HashingReader) -> Iterator[tuple[str, bytes]]:
    """(member name, data) of each regular member, in file order, then the end of the archive checked.

    When the iteration ends, every byte of the file has passed through ``reader``.

    Args:
        path: names the shard in errors.
        reader: the shard's bytes.

    Raises:
        MalformedShardError: truncated, corrupt header, non-regular member, unclean end.
    """
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        at = reader.offset
        block = reader.read(_BLOCK)
        if len(block) < _BLOCK:
            what = "empty file" if at == 0 and not block else f"truncated at byte {at + len(block)}"
            raise MalformedShardError(f"{path}: not a complete tar ({what}; no end-of-archive blocks)")
        if block == _ZERO_BLOCK:
            zeros, count = reader.rest_is_zeros()
            if not zeros or count < _BLOCK:
                raise MalformedShardError(
                    f"{path}: no clean end of archive at byte {at} (truncated, corrupt header, or trailing data)"
                )
            return
        header_name, size, kind = _header(block, path, at)
        if kind in _REGULAR and "size" in pax:
            size = int(pax["size"])
        data = reader.read(size)
        pad = reader.read(-size % _BLOCK)
        if len(data) < size or len(pad) < -size % _BLOCK:
            raise MalformedShardError(f"{path}: truncated inside member {header_name!r} (header at byte {at})")
        if kind == tarfile.XHDTYPE:
            pax = _pax_records(data, f"{path} (header at byte {at})")
            continue
        if kind == tarfile.GNUTYPE_LONGNAME:
            long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        name = pax.get("path", long_name or header_name)
        pax, long_name = {}, None
        if kind not in _REGULAR:
            raise MalformedShardError(f"{path}: member {name!r} is not a regular file")
        yield name, data
