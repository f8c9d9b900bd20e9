"""Parquet tables of records, written atomically through fsspec: from records, or from parts.

One job: the project's way to put records of one ``schemas`` record type into a Parquet file
(a shard's table, a pipeline's output table) so that the same records always give the same
bytes, the file appears whole or not at all (:mod:`shards.atomic`), and a table of any size is
concatenated from parts one part in memory at a time.

Record shape in: validated record dicts (or models) of one record type, in the order they are
to be stored; the Arrow schema comes from :func:`schemas.arrow.arrow_schema`. Out: a Parquet
file (pyarrow's defaults; the bytes do not depend on where the file is written).
"""
from __future__ import annotations

import hashlib
import io
import os
from typing import Any, Iterable, Mapping

from shards.atomic import atomic_open, resolve, write_bytes

__all__ = ["concat_tables", "table_bytes", "write_arrow", "write_table"]


def table_bytes(record_type: str, records: Iterable[Mapping[str, Any]]) -> bytes:
    """The Parquet bytes of ``records`` as a table of ``record_type``.

    Raises:
        KeyError: an unknown record type.
        ValueError: a record that does not fit the record type's Arrow schema.
    """
    import pyarrow.parquet as pq

    from schemas.arrow import to_table

    buf = io.BytesIO()
    pq.write_table(to_table(record_type, records), buf)
    return buf.getvalue()


def write_table(path: str | os.PathLike[str], record_type: str, records: Iterable[Mapping[str, Any]], *,
                fs: Any = None, fsync: bool = False) -> str:
    """Write ``records`` as a Parquet table atomically; return the file's sha256.

    Args:
        path: the table's final path (local path or fsspec URL).
        record_type: the ``schemas`` record type of every record.
        records: the rows, in the order to store.
        fs: the fsspec file system of ``path``, if not a plain path or URL.
        fsync: flush the file to disk before the rename.

    Returns:
        The hex sha256 of the written bytes.
    """
    data = table_bytes(record_type, records)
    write_bytes(path, data, fs=fs, fsync=fsync)
    return hashlib.sha256(data).hexdigest()


def write_arrow(path: str | os.PathLike[str], table: Any, *, fs: Any = None, fsync: bool = False) -> None:
    """Write a ``pyarrow.Table`` as Parquet atomically (for tables built elsewhere)."""
    import pyarrow.parquet as pq

    with atomic_open(path, "wb", fs=fs, fsync=fsync) as f:
        pq.write_table(table, f)


def concat_tables(path: str | os.PathLike[str], record_type: str, parts: Iterable[str | os.PathLike[str]], *,
                  fs: Any = None, fsync: bool = False) -> None:
    """Concatenate Parquet parts of one record type, in the given order, into one table.

    One part is in memory at a time; no part at all gives an empty table with the schema.

    Args:
        path: the final path of the whole table.
        record_type: the ``schemas`` record type of the parts.
        parts: part paths (in the same file system as ``path``), in the order to store.
        fs: the fsspec file system of ``path`` and the parts, if not plain paths or URLs.
        fsync: flush the file to disk before the rename.
    """
    import pyarrow.parquet as pq

    from schemas.arrow import arrow_schema

    schema = arrow_schema(record_type)
    with atomic_open(path, "wb", fs=fs, fsync=fsync) as f, pq.ParquetWriter(f, schema) as writer:
        for part in parts:
            part_fs, part_path = resolve(part, fs)
            if part_fs is None:
                writer.write_table(pq.read_table(part_path, schema=schema))
            else:
                with part_fs.open(part_path, "rb") as src:
                    writer.write_table(pq.read_table(src, schema=schema))
