"""The shard commit protocol: a shard is the unit of work and of commit, reused on resume.

One job: write one shard with its records table and its done marker so that a killed run
leaves either a committed shard or nothing a rerun would trust, and tell a rerun whether a
shard it is about to write is already there with the same content.

Files of one shard slot (``ShardSlot(root, "clips", "clips-000007")``)::

    {root}/clips/clips-000007.tar             the shard (shards.writer.ShardFile: sorted, checksummed)
    {root}/clips/clips-000007.parquet         its records as a table (optional; shards.tables)
    {root}/clips/clips-000007.tar.done.json   the done marker: its status, written last

Commit order: tar, then table, then marker, each staged under a temporary name and renamed
(:mod:`shards.atomic`). The **marker is the commit point**: a tar or table without a marker is
an interrupted write, and on object stores, where a rename is a copy, it is still the marker,
written last, that says the shard is whole. The marker (canonical-order JSON, no wall-clock
time) holds::

    {"shard": "clips/clips-000007.tar", "sha256", "num_samples", "num_bytes", "first_key",
     "last_key", "fingerprint", "table": "clips/clips-000007.parquet", "table_sha256", ...extra}

Reuse on resume (:func:`committed`): a slot is reused when its marker exists, names the same
content ``fingerprint`` the caller computed for the samples it would write (:func:`fingerprint`
over keys and records), and the tar's and table's sha256 equal the marker's (each file read once).
Anything else (no marker, another fingerprint, a damaged file) means: write the shard again.

Storage: ``root`` is a local folder or an fsspec URL (``memory://``, ``gs://``, ``s3://``), or a
path of the fsspec file system given as ``fs``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from shards.atomic import remove, resolve, write_json
from shards.tables import write_table
from shards.writer import DEFAULT_MTIME, ShardFile, file_sha256
from schemas.records import canonical_json

__all__ = ["DONE_SUFFIX", "ShardSlot", "commit_shard", "committed", "fingerprint", "remove_stale"]

DONE_SUFFIX = ".done.json"
"""The marker's name is the tar's name plus this."""


@dataclass(frozen=True)
class ShardSlot:
    """Where one shard and its companions live.

    Attributes:
        root: the output root (local folder or fsspec URL).
        folder: the shard's folder relative to ``root`` (``""`` for the root itself).
        stem: the shard's name without ``.tar``.
    """

    root: str
    folder: str
    stem: str

    @classmethod
    def numbered(cls, root: str | os.PathLike[str], prefix: str, index: int, folder: str | None = None) -> ShardSlot:
        """Slot ``{folder}/{prefix}-{index:06d}`` (``folder`` defaults to ``prefix``)."""
        return cls(os.fspath(root), prefix if folder is None else folder, f"{prefix}-{index:06d}")

    def _rel(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name

    @property
    def tar(self) -> str:
        """The tar's path relative to ``root`` (``/``-separated)."""
        return self._rel(f"{self.stem}.tar")

    @property
    def table(self) -> str:
        """The records table's path relative to ``root``."""
        return self._rel(f"{self.stem}.parquet")

    @property
    def done(self) -> str:
        """The done marker's path relative to ``root``."""
        return self._rel(f"{self.stem}.tar{DONE_SUFFIX}")

    def path(self, rel: str) -> str:
        """The full path (or URL) of ``rel``, one of :attr:`tar`, :attr:`table`, :attr:`done`."""
        return _join(self.root, rel)


def _join(root: str, rel: str) -> str:
    return f"{root.rstrip('/')}/{rel}" if root.rstrip("/") else f"/{rel}"


def fingerprint(records: Iterable[tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str]]) -> str:
    """Hash of a shard's content: its keys and their records (and how their members were made), in key order.

    Args:
        records: ``(key, record dict)`` per sample, in any order, or ``(key, record dict, detail)``
            where ``detail`` is one line naming what else decides the member bytes (e.g. how the
            frames were rendered), so that members made anew under the same records rewrite the shard.

    Returns:
        Hex sha256 over ``key\\n canonical JSON of the record\\n [detail\\n]`` per sample, sorted by key.
    """
    h = hashlib.sha256()
    for entry in sorted(records, key=lambda r: r[0]):
        key, record = entry[0], entry[1]
        h.update(key.encode() + b"\n" + canonical_json(record).encode("utf-8") + b"\n")
        if len(entry) > 2:
            h.update((entry[2] + "\n").encode("utf-8"))
    return h.hexdigest()


def _isfile(path: str, fs: Any) -> bool:
    fs, real = resolve(path, fs)
    return os.path.isfile(real) if fs is None else fs.isfile(real)


def committed(slot: ShardSlot, content_fingerprint: str, *, table: bool = True, fs: Any = None) -> dict | None:
    """The marker's status when the slot already holds this content, committed; else None.

    Args:
        slot: the shard slot.
        content_fingerprint: :func:`fingerprint` of the samples the caller would write.
        table: the caller wants a records table too (a slot without one is not reused).
        fs: the fsspec file system of ``slot.root``, if not a plain path or URL.

    Returns:
        The status dict read from the marker, or None (then write the shard).
    """
    done, tar = slot.path(slot.done), slot.path(slot.tar)
    if not (_isfile(done, fs) and _isfile(tar, fs)):
        return None
    fsys, real = resolve(done, fs)
    try:
        with open(real, "rb") if fsys is None else fsys.open(real, "rb") as f:
            status = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or status.get("fingerprint") != content_fingerprint:
        return None
    if table:
        path = slot.path(slot.table)
        if "table_sha256" not in status or not _isfile(path, fs):
            return None
        if status["table_sha256"] != file_sha256(path, fs=fs):
            return None
    if status.get("sha256") != file_sha256(tar, fs=fs):
        return None
    return status


def commit_shard(slot: ShardSlot, samples: Iterable[Mapping[str, Any]], *, content_fingerprint: str,
                 table: tuple[str, list[Mapping[str, Any]]] | None = None, extra: Mapping[str, Any] | None = None,
                 fs: Any = None, mtime: int = DEFAULT_MTIME, fsync: bool = True) -> dict:
    """Write the shard, then its table, then its marker (the commit point); return the status.

    Args:
        slot: where the shard goes; an earlier shard, table or marker there is replaced (the
            old marker is removed first, so no moment shows new files under an old marker).
        samples: sample dicts in strictly increasing key order (see :class:`shards.writer.ShardFile`);
            streamed, one in memory at a time.
        content_fingerprint: :func:`fingerprint` of the samples, stored for :func:`committed`.
        table: ``(record type, records)`` to store as the shard's Parquet table, or None.
        extra: more fields for the status (JSON values; must not reuse the protocol's names).
        fs: the fsspec file system of ``slot.root``, if not a plain path or URL.
        mtime: member mtime of the tar.
        fsync: flush each file to disk before its rename.

    Returns:
        The status written to the marker (see the module docstring).

    Raises:
        ValueError: no sample, an invalid sample, or ``extra`` reusing a protocol field.
        TypeError: a sample value that cannot be encoded.
    """
    done = slot.path(slot.done)
    remove(done, fs=fs)
    with ShardFile(slot.path(slot.tar), mtime=mtime, fsync=fsync, fs=fs) as shard:
        for sample in samples:
            shard.write(sample)
    info = shard.info
    if info is None:
        raise ValueError(f"{slot.tar}: a shard needs at least one sample")
    status: dict[str, Any] = {
        "shard": slot.tar, "fingerprint": content_fingerprint, "sha256": info.sha256,
        "num_samples": info.num_samples, "num_bytes": info.num_bytes,
        "first_key": info.first_key, "last_key": info.last_key,
    }
    if table is not None:
        record_type, records = table
        status["table"] = slot.table
        status["table_sha256"] = write_table(slot.path(slot.table), record_type, records, fs=fs, fsync=fsync)
    for name, value in (extra or {}).items():
        if name in status:
            raise ValueError(f"extra status field {name!r} would overwrite the protocol's own")
        status[name] = value
    write_json(done, status, fs=fs, fsync=fsync)
    return status


def remove_stale(root: str | os.PathLike[str], folder: str, prefix: str, keep: Iterable[str], *,
                 fs: Any = None) -> list[str]:
    """Remove the slots ``{folder}/{prefix}-*.tar`` whose tar is not in ``keep``, with their companions.

    For a rerun that writes fewer shards than an earlier run did.

    Args:
        root: the output root.
        folder: the shards' folder relative to ``root``.
        prefix: the shards' name prefix.
        keep: relative tar paths (``status["shard"]``) of the shards of this run.
        fs: the fsspec file system of ``root``, if not a plain path or URL.

    Returns:
        The relative tar paths removed, sorted.
    """
    keep = set(keep)
    fsys, directory = resolve(_join(os.fspath(root), folder) if folder else root, fs)
    if fsys is None:
        names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    else:
        names = sorted(p.rpartition("/")[2] for p in fsys.ls(directory, detail=False)) if fsys.isdir(directory) else []
    removed = []
    for name in names:
        if not (name.startswith(f"{prefix}-") and name.endswith(".tar")):
            continue
        slot = ShardSlot(os.fspath(root), folder, name[: -len(".tar")])
        if slot.tar in keep:
            continue
        for rel in (slot.done, slot.table, slot.tar):
            remove(slot.path(rel), fs=fs)
        removed.append(slot.tar)
    return removed
