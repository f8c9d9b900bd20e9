"""Where publish writes: small atomic writes and removals on local paths or fsspec URLs.

One job: the few storage operations the publish steps need beyond ``shards.writer``, behind one
function each, so local paths, ``gs://``, ``s3://`` and (with the in-memory runner only, since
every worker process has its own) ``memory://`` go through the same code.
"""
from __future__ import annotations

import os
from typing import Any

import fsspec

__all__ = ["write_bytes", "read_bytes", "write_shard_at", "remove", "exists", "listdir"]


def _fs(url: str) -> tuple[Any, str, bool]:
    from fsspec.implementations.local import LocalFileSystem

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path, isinstance(fs, LocalFileSystem)


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` so that readers see nothing or all of it (stage, then rename)."""
    fs, path, local = _fs(url)
    folder = path.rsplit("/", 1)[0]
    fs.makedirs(folder, exist_ok=True)
    if not local:
        fs.pipe_file(path, data)  # one object PUT: visible whole or not at all
        return
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_bytes(url: str) -> bytes:
    """The bytes of ``url``. Raises FileNotFoundError."""
    with fsspec.open(url, "rb") as f:
        return f.read()


def write_shard_at(url: str, samples: list, mtime: int) -> Any:
    """Write one shard with ``shards.writer.write_shard`` at a local path or an fsspec URL.

    Local: written in place (staged and renamed by the writer). Elsewhere: written to a local
    temporary file, then uploaded in one ``put`` (an object appears whole or not at all).

    Returns:
        The writer's ``ShardInfo`` (``path`` is ``url``).
    """
    import dataclasses
    import tempfile

    from shards.writer import write_shard

    fs, path, local = _fs(url)
    if local:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return write_shard(path, samples, mtime=mtime)
    with tempfile.TemporaryDirectory(prefix="publish-shard-") as tmp:
        info = write_shard(os.path.join(tmp, os.path.basename(path)), samples, mtime=mtime, fsync=False)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(info.path, path)
    return dataclasses.replace(info, path=url)


def remove(url: str) -> None:
    """Remove a file or a folder tree; missing is fine."""
    fs, path, _ = _fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def exists(url: str) -> bool:
    """Whether ``url`` exists."""
    fs, path, _ = _fs(url)
    return fs.exists(path)


def listdir(url: str) -> list[str]:
    """Base names in a folder, sorted; empty when it does not exist."""
    fs, path, _ = _fs(url)
    if not fs.isdir(path):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
