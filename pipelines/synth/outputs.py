"""The record folder a generator writes: records and failures in parts, then one folder, atomically.

One job: put a generator's outputs where ``publish`` takes them as it takes normalized
annotations (``--records DIR``)::

    {out}/
        {Dataset}.parquet     the generated records (CapQA, SubtitleQA or SynMultiImageQA), by part
        failures.parquet      failure records (``schemas`` ``failure``, stage ``synth``)
        synth.json            the manifest, written last:
            {"format": 1, "generator", "dataset", "config" (every setting, no secret),
             "prompt": {"version", "sha256"|null}, "inputs": [{"role", "path", "sha256", "bytes"}],
             "outputs": {file: {"sha256", "bytes", "rows"}}, "counts": {...}}

Workers write parts (``.parts/{name}-NNNNNN.parquet``, records sorted by key, a part per hash of
the key) into the staging folder ``{parent}/.{name}.staging``; ``finalize`` concatenates the
parts in part order into the two tables, writes ``synth.json`` and renames the staging folder
into place (an older folder moved aside first and removed after), so a reader sees the old
outputs or the new ones. The manifest holds no time and no run figure (cache hits, seconds):
the same inputs and settings give byte-identical files, whatever the cache held.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from annotation.outputs import file_digest

__all__ = ["MANIFEST", "OutputError", "staging_dir", "prepare", "write_part", "finalize", "file_digest", "input_digest"]

MANIFEST = "synth.json"
FORMAT = 1


class OutputError(RuntimeError):
    """The output folder cannot be written as asked (the message says why)."""


def staging_dir(out: str | os.PathLike) -> Path:
    """Where a run builds ``out`` before renaming it into place."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.staging"


def prepare(out: str | os.PathLike, manifest: str = MANIFEST) -> Path:
    """Check ``out`` may be (re)written and start an empty staging folder; return it.

    Args:
        out: the folder a run will write.
        manifest: the file that marks a folder as this kind of output (a folder without it is
            never replaced).

    Raises:
        OutputError: ``out`` is a file, or a non-empty folder without ``manifest``.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / manifest).is_file():
        raise OutputError(f"{out} exists and is not a synth output (no {manifest}); it is left alone")
    staging = staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / ".parts").mkdir(parents=True)
    return staging


def write_part(staging: str | os.PathLike, name: str, record_type: str, index: int,
               records: Iterable[dict]) -> dict[str, Any]:
    """Write one part (records sorted by key) atomically; return ``{"name", "part", "rows"}``.

    The part goes to ``{staging}/.parts/{name}-{index:06d}.parquet`` (``shards.tables``).
    """
    from shards.tables import write_table

    rows = sorted(records, key=lambda r: r["key"])
    path = Path(staging) / ".parts" / f"{name}-{index:06d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(path, record_type, rows)
    return {"name": name, "part": path.name, "rows": len(rows)}


def finalize(out: str | os.PathLike, dataset: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Concatenate the parts, write the manifest, and rename the staging folder to ``out``.

    Args:
        out: the final record folder.
        dataset: the dataset of the records (names the table and its record type).
        manifest: the manifest's fields besides ``format``, ``dataset`` and ``outputs``
            (``generator``, ``config``, ``prompt``, ``inputs``, ``counts``).

    Returns:
        The manifest as written.
    """
    import pyarrow.parquet as pq

    from shards.atomic import write_json
    from shards.tables import concat_tables

    out = Path(out).resolve()
    staging = staging_dir(out)
    parts = staging / ".parts"
    outputs: dict[str, Any] = {}
    for file_name, name, record_type in ((f"{dataset}.parquet", "records", dataset),
                                          ("failures.parquet", "failures", "failure")):
        listed = sorted(parts.glob(f"{name}-*.parquet"))
        concat_tables(staging / file_name, record_type, listed)
        rows = pq.read_metadata(staging / file_name).num_rows
        digest = file_digest(staging / file_name)
        outputs[file_name] = {"sha256": digest["sha256"], "bytes": digest["bytes"], "rows": rows}
    shutil.rmtree(parts)
    data = {"format": FORMAT, "dataset": dataset, **manifest, "outputs": outputs}
    write_json(staging / MANIFEST, data, indent=1, newline=True)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)
    return data


def input_digest(role: str, path: str | os.PathLike) -> dict[str, Any]:
    """An input as the manifest names it: ``{"role", "path", "sha256", "bytes"}``."""
    return {"role": role, **file_digest(path)}
