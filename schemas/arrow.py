"""Arrow schemas derived from the record models, and table round-trip helpers.

One job: turn a record type's pydantic model into a ``pyarrow.Schema`` by walking its field
annotations (never written again by hand), and move validated records in and out of Arrow
tables (and so Parquet). Mapping:

* ``str`` -> ``string``; ``int`` -> ``int64``; ``float`` -> ``float64``; ``bool`` -> ``bool``;
  ``Literal[...]`` -> the type of its values;
* ``Optional[X]`` -> a nullable ``X`` (required fields are non-nullable);
* ``list[X]`` -> ``list<X>``; a nested model -> ``struct``; ``dict[str, X]`` -> ``map<string, X>``.

The schema metadata carries ``molmo2.record_type`` and ``molmo2.schema_version``; field metadata
carries the field's description. ``from_table`` migrates rows written under older versions.
"""
from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal, Union

import pyarrow as pa
from pydantic import BaseModel

from schemas.records import Record, get_record_type, validate

__all__ = [
    "RECORD_TYPE_METADATA",
    "SCHEMA_VERSION_METADATA",
    "arrow_type",
    "arrow_schema",
    "to_table",
    "from_table",
    "table_rows",
]

RECORD_TYPE_METADATA = b"molmo2.record_type"
SCHEMA_VERSION_METADATA = b"molmo2.schema_version"
_SCALARS: dict[Any, pa.DataType] = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``Optional``; return (inner annotation, nullable)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"only Optional[X] unions map to Arrow, got {annotation!r}")
        inner, _ = _unwrap(args[0])
        return inner, True
    return annotation, False


def arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """Arrow type of one field annotation.

    Args:
        annotation: a resolved type annotation (``float``, ``Optional[list[Point]]``, ...).

    Returns:
        ``(arrow type, nullable)``.

    Raises:
        TypeError: for an annotation with no Arrow mapping (a union of two types, a dict with
            non-string keys, an arbitrary class).
    """
    inner, nullable = _unwrap(annotation)
    origin = typing.get_origin(inner)
    if inner in _SCALARS:
        return _SCALARS[inner], nullable
    if origin is Literal:
        kinds = {type(v) for v in typing.get_args(inner)}
        if len(kinds) != 1 or next(iter(kinds)) not in _SCALARS:
            raise TypeError(f"Literal values must share one scalar type, got {inner!r}")
        return _SCALARS[kinds.pop()], nullable
    if origin is list:
        item, item_nullable = arrow_type(typing.get_args(inner)[0])
        return pa.list_(pa.field("item", item, nullable=item_nullable)), nullable
    if origin is dict:
        key_ann, value_ann = typing.get_args(inner)
        if _unwrap(key_ann)[0] is not str:
            raise TypeError(f"only dict[str, X] maps to Arrow, got {inner!r}")
        value, value_nullable = arrow_type(value_ann)
        return pa.map_(pa.string(), pa.field("value", value, nullable=value_nullable)), nullable
    if inspect.isclass(inner) and issubclass(inner, BaseModel):
        return pa.struct(_fields(inner)), nullable
    raise TypeError(f"no Arrow type for annotation {annotation!r}")


def _fields(model: type[BaseModel]) -> list[pa.Field]:
    out = []
    for name, info in model.model_fields.items():
        dtype, nullable = arrow_type(info.annotation)
        meta = {b"description": info.description.encode("utf-8")} if info.description else None
        out.append(pa.field(name, dtype, nullable=nullable, metadata=meta))
    return out


def arrow_schema(record_type_name: str) -> pa.Schema:
    """The Arrow schema of a record type, derived from its model.

    Args:
        record_type_name: registry name (``"VideoPoint"``, ``"clip"``, ...).

    Returns:
        A ``pyarrow.Schema`` whose metadata holds the record type name and schema version.

    Raises:
        schemas.records.UnknownRecordTypeError: for an unknown name.
        TypeError: if a field annotation has no Arrow mapping (a bug in the model).
    """
    cls = get_record_type(record_type_name)
    return pa.schema(_fields(cls), metadata={
        RECORD_TYPE_METADATA: record_type_name.encode("utf-8"),
        SCHEMA_VERSION_METADATA: str(cls.SCHEMA_VERSION).encode("ascii"),
    })


def to_table(record_type_name: str, records: Iterable[Record | Mapping[str, Any]]) -> pa.Table:
    """Validate records and gather them into an Arrow table with the derived schema.

    Args:
        record_type_name: registry name of the record type.
        records: model instances of that type, or dicts (older versions are migrated).

    Returns:
        A table (possibly empty) with ``arrow_schema(record_type_name)``, rows in input order.

    Raises:
        RecordValidationError: for the first invalid record.
        TypeError: for a model instance of another record type.
    """
    cls = get_record_type(record_type_name)
    rows = []
    for record in records:
        if isinstance(record, BaseModel):
            if type(record) is not cls:
                raise TypeError(f"expected {cls.__name__} records, got {type(record).__name__}")
            record = record.model_dump()
        rows.append(validate(record_type_name, record).model_dump())
    return pa.Table.from_pylist(rows, schema=arrow_schema(record_type_name))


def _has_map(dtype: pa.DataType) -> bool:
    if pa.types.is_map(dtype):
        return True
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _has_map(dtype.value_type)
    if pa.types.is_struct(dtype):
        return any(_has_map(dtype.field(i).type) for i in range(dtype.num_fields))
    return False


def _maps_to_dicts(dtype: pa.DataType, value: Any) -> Any:
    """Arrow's ``to_pylist`` gives maps as lists of (key, value) pairs; make them dicts."""
    if value is None:
        return None
    if pa.types.is_map(dtype):
        return {k: _maps_to_dicts(dtype.item_type, v) for k, v in value}
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return [_maps_to_dicts(dtype.value_type, v) for v in value]
    if pa.types.is_struct(dtype):
        return {f.name: _maps_to_dicts(f.type, value.get(f.name)) for f in dtype}
    return value


def table_rows(record_type_name: str, table: pa.Table) -> Iterator[dict[str, Any]]:
    """The rows of a table written by ``to_table`` as plain record dicts, not yet validated.

    Maps come back as dicts, and rows without a ``schema_version`` column take the version in
    the table metadata, so each row can go to ``validate`` (which migrates it) on its own: a
    caller that must keep going past a bad row (and record it as a failure) reads this way.

    Args:
        record_type_name: registry name of the record type.
        table: a table written by ``to_table`` (e.g. read back from Parquet).

    Yields:
        One dict per row, in row order.

    Raises:
        ValueError: if the table metadata names another record type.
        UnknownRecordTypeError: for an unknown record type name.
    """
    get_record_type(record_type_name)
    meta = table.schema.metadata or {}
    stored = meta.get(RECORD_TYPE_METADATA)
    if stored is not None and stored.decode("utf-8") != record_type_name:
        raise ValueError(f"table holds {stored.decode('utf-8')!r} records, not {record_type_name!r}")
    meta_version = meta.get(SCHEMA_VERSION_METADATA)
    default_version = int(meta_version) if meta_version is not None and meta_version.isdigit() else None
    map_columns = [f for f in table.schema if _has_map(f.type)]
    for row in table.to_pylist():
        for field in map_columns:
            row[field.name] = _maps_to_dicts(field.type, row[field.name])
        if "schema_version" not in row and default_version is not None:
            row["schema_version"] = default_version
        yield row


def from_table(record_type_name: str, table: pa.Table) -> list[Record]:
    """Read records back from an Arrow table, migrating and validating every row.

    A table written under an older schema version (its columns in the old layout) loads as the
    current version. Rows without a ``schema_version`` column take the version in the table
    metadata.

    Args:
        record_type_name: registry name of the record type.
        table: a table written by ``to_table`` (e.g. read back from Parquet).

    Returns:
        The records, in row order, at the current schema version.

    Raises:
        ValueError: if the table metadata names another record type.
        RecordValidationError: for the first invalid row (or a version newer than this code).
    """
    return [validate(record_type_name, row) for row in table_rows(record_type_name, table)]
