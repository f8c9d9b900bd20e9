"""Record schemas: the one authoritative, versioned definition of every record the engine writes.

One job: define each record type as a strict pydantic model (assets, clips, the nine Molmo 2
datasets, failures), register them by name, and validate dicts against them with errors that
name the record key, the field path and the rule broken. The pyarrow schema
(``schemas.arrow``) and the migrations (``schemas.migrations``) are derived from / keyed by
these definitions.

Conventions shared by every record:

* ``key``: the record's id, letters/digits/``_``/``-`` only (it becomes a WebDataset key, and
  WebDataset splits keys at the first dot); ``schema_version``: the version it was written
  under (defaults to the current one when built in Python).
* Coordinates are normalized to [0, 1]; times are seconds >= 0, relative to the clip start,
  except ``Clip.start``/``end`` and ``clip_start``/``clip_end``, which are source-video seconds.
* Validation is strict: no coercion (``"1.5"`` is not a number), no unknown fields.

The model classes live in ``schemas.record_types`` (bases, assets, failures),
``schemas.dataset_types`` (the nine datasets) and ``schemas.provenance`` (how a dataset record
was made); this module re-exports them.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable, NamedTuple

from pydantic import BaseModel, ValidationError

from schemas import migrations
from schemas.dataset_types import (
    MIN_NEGATIVE_ANSWERS,
    AskModelAnything,
    Cap,
    CapQA,
    DatasetRecord,
    MultiImagePoint,
    MultiImageQA,
    MultiImageRecord,
    SubtitleQA,
    SynMultiImageQA,
    VideoAnnotation,
    VideoPoint,
    VideoTrack,
)
from schemas.provenance import Provenance, generated_provenance, human_provenance
from schemas.record_types import (
    KEY_PATTERN,
    MAX_SET_IMAGES,
    MIN_SET_IMAGES,
    SHA256_PATTERN,
    Clip,
    FailureRecord,
    ImageInfo,
    ImagePoint,
    ImageSet,
    Point,
    QAPair,
    Record,
    SubtitleCue,
    TimedPoint,
    TrackObject,
    TrackPoint,
    VideoAsset,
    point_time_on_grid,
)
from schemas.review import ReviewDecision

__all__ = [
    "AskModelAnything", "Cap", "CapQA", "Clip", "DatasetRecord", "FailureRecord", "ImageInfo", "ImagePoint",
    "ImageSet", "MultiImagePoint", "MultiImageQA", "MultiImageRecord", "Point", "QAPair",
    "Record", "ReviewDecision", "SubtitleCue", "SubtitleQA", "SynMultiImageQA", "TimedPoint", "TrackObject",
    "TrackPoint", "Provenance", "human_provenance", "generated_provenance", "MIN_SET_IMAGES", "MAX_SET_IMAGES",
    "MIN_NEGATIVE_ANSWERS", "VideoAnnotation", "VideoAsset", "VideoPoint", "VideoTrack",
    "DATASETS", "RECORD_TYPES", "FieldError", "RecordValidationError", "UnknownRecordTypeError",
    "get_record_type", "validate", "migrate", "canonical_json", "record_to_json",
    "record_from_json", "point_time_on_grid",
]

DATASETS: Mapping[str, type[Record]] = MappingProxyType({
    cls.RECORD_NAME: cls
    for cls in (Cap, AskModelAnything, CapQA, SubtitleQA, VideoPoint, VideoTrack,
                MultiImageQA, MultiImagePoint, SynMultiImageQA)
})
"""The nine Molmo 2 datasets, by name."""

RECORD_TYPES: Mapping[str, type[Record]] = MappingProxyType({
    **{cls.RECORD_NAME: cls for cls in (VideoAsset, Clip, ImageSet, FailureRecord, ReviewDecision)},
    **DATASETS,
})
"""Every record type by name: ``"video"``, ``"clip"``, ``"image_set"``, ``"failure"``,
``"review_decision"`` and the datasets."""


class FieldError(NamedTuple):
    """One broken rule: where (``points[2].x``), what rule, and the offending value."""

    path: str
    rule: str
    value: Any


class RecordValidationError(ValueError):
    """A record broke its schema.

    The message names the record key, each field path and the rule broken, e.g.
    ``VideoPoint record 'vp-1' is invalid: points[2].x: must be <= 1, got 1.2``.

    Attributes:
        record_type: the record type name asked for.
        key: the record's ``key`` when it had a string one, else None.
        errors: list of ``FieldError(path, rule, value)``.
    """

    def __init__(self, record_type: str, key: str | None, errors: list[FieldError]):
        self.record_type = record_type
        self.key = key
        self.errors = list(errors)
        who = f"{record_type} record {key!r}" if key is not None else f"{record_type} record (no key)"
        lines = "; ".join(f"{e.path}: {e.rule}" for e in self.errors)
        super().__init__(f"{who} is invalid: {lines}")


class UnknownRecordTypeError(RecordValidationError):
    """The record type (dataset) name is not registered; the message lists the known ones."""

    def __init__(self, record_type: str, key: str | None = None):
        known = ", ".join(sorted(RECORD_TYPES))
        rule = f"unknown record type {record_type!r}; known types: {known}"
        super().__init__(record_type, key, [FieldError("<record type>", rule, record_type)])


def get_record_type(name: str) -> type[Record]:
    """Look up a record type by registry name.

    Args:
        name: ``"Cap"``, ``"VideoPoint"``, ``"clip"``, ``"failure"``, ... (see ``RECORD_TYPES``).

    Returns:
        The model class.

    Raises:
        UnknownRecordTypeError: (a ``ValueError``) naming the unknown name and the known ones.
    """
    try:
        return RECORD_TYPES[name]
    except (KeyError, TypeError):
        raise UnknownRecordTypeError(str(name)) from None


def migrate(name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade a stored record dict to the current version of its type, step by step.

    Args:
        name: registry name of the record type.
        data: the record as stored (any version from 1 to current).

    Returns:
        A new dict at the type's current ``SCHEMA_VERSION`` (not yet validated).

    Raises:
        UnknownRecordTypeError: for an unknown type name.
        schemas.migrations.MigrationError: for a version newer than this code knows, or one
            with no registered path to the current version.
    """
    return migrations.upgrade(name, data, get_record_type(name).SCHEMA_VERSION)


def _key_of(data: Any) -> str | None:
    key = data.get("key") if isinstance(data, Mapping) else None
    return key if isinstance(key, str) else None


def _path(loc: tuple[Any, ...], extra: str = "") -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if extra:
        out += extra if (extra.startswith("[") or not out) else f".{extra}"
    return out or "<record>"


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


_TYPE_WORDS = {
    "float_type": "a number", "int_type": "an integer", "string_type": "a string",
    "bool_type": "true or false", "list_type": "a list", "dict_type": "an object",
    "model_type": "an object", "model_attributes_type": "an object",
}


def _rule(err: Mapping[str, Any]) -> tuple[str, str, Any]:
    """Translate one pydantic error into (path, rule, value)."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    loc = tuple(err["loc"])
    if kind == "record_rule":
        return _path(loc, ctx["path"]), ctx["rule"], ctx.get("value")
    if kind == "missing":
        return _path(loc), "is required", None
    if kind == "extra_forbidden":
        return _path(loc), "is not a field of this record type", value
    if kind in _TYPE_WORDS:
        rule = f"must be {_TYPE_WORDS[kind]}, got {type(value).__name__} {_fmt(value)}"
    elif kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        op, bound = {"less_than_equal": ("<=", "le"), "greater_than_equal": (">=", "ge"),
                     "less_than": ("<", "lt"), "greater_than": (">", "gt")}[kind]
        rule = f"must be {op} {_fmt(ctx[bound])}, got {_fmt(value)}"
    elif kind == "finite_number":
        rule = f"must be a finite number, got {_fmt(value)}"
    elif kind == "literal_error":
        rule = f"must be one of {ctx['expected']}, got {value!r}"
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") == KEY_PATTERN:
        rule = f"must be a key of letters, digits, '_' or '-' only (no dots), got {value!r}"
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") == SHA256_PATTERN:
        rule = f"must be 64 lowercase hex digits, got {value!r}"
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        rule = "must not be empty"
    elif kind in ("too_short", "too_long"):
        bound = ("at least", ctx.get("min_length")) if kind == "too_short" else ("at most", ctx.get("max_length"))
        got = ctx.get("actual_length")
        rule = f"must have {bound[0]} {bound[1]} items, got {got if got is not None else 'more'}"
    elif kind in ("string_too_short", "string_too_long"):
        rule = err["msg"].replace("Value should", "must").replace("String should", "must")
        rule = rule.replace("List should", "must")
    else:
        rule = f"{err['msg']} (got {_fmt(value)})"
    return _path(loc), rule, value


def validate(record_type_name: str, data: Mapping[str, Any]) -> Record:
    """Validate a record dict, migrating it first if it was written under an older version.

    Args:
        record_type_name: registry name (``"VideoPoint"``, ``"clip"``, ...).
        data: the record as a dict of plain Python values (JSON- or Arrow-decoded).

    Returns:
        The model instance, at the current schema version.

    Raises:
        RecordValidationError: (a ``ValueError``) naming the key, each field path and the rule
            broken; ``UnknownRecordTypeError`` (a subclass) for an unknown type name.
    """
    key = _key_of(data)
    try:
        cls = get_record_type(record_type_name)
    except UnknownRecordTypeError:
        raise UnknownRecordTypeError(str(record_type_name), key) from None
    if not isinstance(data, Mapping):
        raise RecordValidationError(
            record_type_name, None,
            [FieldError("<record>", f"must be an object, got {type(data).__name__}", data)],
        )
    try:
        current = migrate(record_type_name, data)
    except migrations.MigrationError as exc:
        rule = str(exc).removeprefix("schema_version ")
        raise RecordValidationError(
            record_type_name, key, [FieldError("schema_version", rule, exc.version)]
        ) from None
    try:
        return cls.model_validate(current)
    except ValidationError as exc:
        errors = [FieldError(*_rule(e)) for e in exc.errors(include_url=False)]
        raise RecordValidationError(record_type_name, key, errors) from None


def canonical_json(value: Any, *, default: Callable[[Any], Any] | None = None, allow_nan: bool = False) -> str:
    """Serialize JSON-compatible data canonically: sorted keys, no whitespace, UTF-8 text.

    The project's one canonical JSON: records, shard members (``.encode("utf-8")`` for bytes),
    fingerprints and ids. Equal data gives identical text (and bytes), so shards built from it
    are byte-reproducible.

    Args:
        value: dicts, lists, strings, numbers, booleans and None.
        default: turns a value JSON cannot hold into one it can (``str`` for raw input rows
            that may carry dates); None refuses such values.
        allow_nan: write NaN and infinity as ``NaN``/``Infinity`` (not JSON; only for hashing
            raw inputs that may hold them) instead of refusing them.

    Returns:
        The JSON text; non-ASCII characters are written as themselves, not escaped.

    Raises:
        ValueError: on NaN or infinity (unless ``allow_nan``). TypeError: on a value JSON cannot hold.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan,
                      default=default)


def record_to_json(record: BaseModel) -> str:
    """Canonical JSON text of a record, every field included (None for unset optionals).

    Args:
        record: a model instance from this module.

    Returns:
        The canonical JSON text (see ``canonical_json``).
    """
    return canonical_json(record.model_dump(mode="json"))


def record_from_json(record_type_name: str, text: str | bytes) -> Record:
    """Parse and validate a record from JSON text (older versions are migrated).

    Args:
        record_type_name: registry name of the record type.
        text: JSON text or UTF-8 bytes of one object.

    Returns:
        The model instance.

    Raises:
        RecordValidationError: on invalid JSON (path ``<json>``) or an invalid record.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        error = FieldError("<json>", f"is not valid JSON: {exc}", None)
        raise RecordValidationError(record_type_name, None, [error]) from None
    return validate(record_type_name, data)
