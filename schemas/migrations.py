"""Schema migrations: upgrade a stored record dict, one version at a time, to the current one.

One job: keep records written under an older ``schema_version`` loadable. Each change to a
record type's fields bumps that type's ``SCHEMA_VERSION`` (in ``schemas.records``) and adds a
function here, registered with ``@register_migration(type_name, from_version)``, that turns a
version ``n`` dict into a version ``n + 1`` dict. ``upgrade`` chains them.

This module works on plain dicts and imports nothing from ``schemas.records`` (which imports
it), so the current version is passed in by the caller: use ``schemas.records.migrate``.

History of record versions
--------------------------
* ``VideoPoint`` v1 -> v2: v1 stored point coordinates on the 0-100 percent scale that Molmo v1
  (PixMo, ``<point x="10.5" y="20.3">``) used; v2 stores them normalized to [0, 1] like every
  other record and like the html-v2 point text. The migration divides ``x`` and ``y`` by 100.
  Nothing else changed.
* ``video`` v1 -> v2 and ``image_set`` v1 -> v2: an optional ``given_id`` (the id as written in
  the manifest, which the key-safe ``key`` may differ from; also on each image of a set). v1
  records did not keep it: it becomes None.
* The data contract of issue 8 ([5/9]):

  - every dataset gains ``provenance`` (``schemas.provenance``): ``VideoPoint`` v2 -> v3 and the
    other eight datasets v1 -> v2. Older records did not say how they were made; they get
    ``{"method": "unrecorded"}``, which publishing can tell from a human or generated record.
    ``VideoPoint`` records written by the normalizer before v3 hold ``source`` "labelstudio"
    (or the configured default) and, without a video duration in the task, ``duration`` = the
    clip end: a dict cannot know the real values, so they are kept as they are (re-normalize the
    snapshot to get them).
  - ``VideoTrack`` v1 -> v2: a track point is visible, occluded (``occluded: true``: there but
    hidden) or absent (None: out of view). v1 had only a point or None, and Label Studio's box
    track only on/off, so v1 points are visible (``occluded: false``) and v1 None stays None:
    "off = absent".
  - ``CapQA`` and ``SubtitleQA`` v1 -> v2 also need at least three wrong answers, distinct from
    each other and from the answer after normalizing case, spaces and punctuation; ``image_set``
    v2 -> v3 and the multi-image datasets hold 2 to 5 images. These are rules, not shapes: a
    record that meets them upgrades unchanged, one that does not is rejected by validation with
    the field path named (nothing is invented to make it pass).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from schemas.provenance import UNRECORDED

__all__ = [
    "MigrationError",
    "MigrationFn",
    "register_migration",
    "registered_migrations",
    "upgrade",
]

MigrationFn = Callable[[dict[str, Any]], dict[str, Any]]

# (record type name, from_version) -> function turning a from_version dict into from_version + 1.
_MIGRATIONS: dict[tuple[str, int], MigrationFn] = {}


class MigrationError(ValueError):
    """A record's ``schema_version`` cannot be brought to the current version.

    Attributes:
        record_type: the record type name.
        version: the version found in the record.
        current: the version this code reads.
    """

    def __init__(self, message: str, record_type: str, version: Any, current: int):
        super().__init__(message)
        self.record_type = record_type
        self.version = version
        self.current = current


def register_migration(record_type: str, from_version: int) -> Callable[[MigrationFn], MigrationFn]:
    """Register a function upgrading ``record_type`` dicts from ``from_version`` to the next.

    The function receives a private deep copy of the record and returns the upgraded dict;
    ``upgrade`` sets ``schema_version`` to ``from_version + 1`` afterwards.

    Args:
        record_type: registry name of the record type (``"VideoPoint"``, ``"clip"``, ...).
        from_version: the version the function reads; >= 1.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ValueError: if a migration for that type and version is already registered.
    """
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
        raise ValueError(f"from_version must be an integer >= 1, got {from_version!r}")

    def decorator(fn: MigrationFn) -> MigrationFn:
        if (record_type, from_version) in _MIGRATIONS:
            raise ValueError(f"a {record_type} migration from version {from_version} is already registered")
        _MIGRATIONS[(record_type, from_version)] = fn
        return fn

    return decorator


def registered_migrations() -> list[tuple[str, int]]:
    """List the registered migrations.

    Returns:
        Sorted ``(record type, from_version)`` pairs.
    """
    return sorted(_MIGRATIONS)


def upgrade(record_type: str, data: Mapping[str, Any], current_version: int) -> dict[str, Any]:
    """Bring a record dict up to ``current_version``, applying the registered steps in order.

    A dict without ``schema_version`` is taken to be current. A ``schema_version`` that is not
    an integer is left for validation to report. The input is never modified.

    Args:
        record_type: registry name of the record type.
        data: the stored record.
        current_version: the version the caller reads (the type's ``SCHEMA_VERSION``).

    Returns:
        A new dict at ``current_version`` (a shallow copy when no step was needed).

    Raises:
        MigrationError: if the record is newer than ``current_version``, older than 1, or a
            step between its version and the current one is not registered.
    """
    version = data.get("schema_version", current_version)
    if isinstance(version, bool) or not isinstance(version, int):
        return dict(data)
    if version > current_version:
        raise MigrationError(
            f"schema_version {version} is newer than the newest {record_type} version this code "
            f"reads ({current_version}); upgrade molmo2-data to read it",
            record_type, version, current_version,
        )
    if version < 1:
        raise MigrationError(
            f"schema_version must be >= 1, got {version}", record_type, version, current_version
        )
    out: dict[str, Any] = copy.deepcopy(dict(data))
    while version < current_version:
        step = _MIGRATIONS.get((record_type, version))
        if step is None:
            raise MigrationError(
                f"no {record_type} migration registered from schema_version {version} "
                f"(current is {current_version})",
                record_type, version, current_version,
            )
        out = step(out)
        version += 1
        out["schema_version"] = version
    return out


def _percent_to_unit(value: Any) -> Any:
    """Divide a 0-100 coordinate by 100; leave a non-number for validation to report."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 100.0
    return value


@register_migration("VideoPoint", 1)
def _video_point_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """VideoPoint v1 -> v2: point ``x``/``y`` from the 0-100 percent scale to [0, 1]."""
    points = data.get("points")
    if isinstance(points, list):
        for point in points:
            if isinstance(point, dict):
                for axis in ("x", "y"):
                    if axis in point:
                        point[axis] = _percent_to_unit(point[axis])
    return data


@register_migration("video", 1)
def _video_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """video v1 -> v2: ``given_id`` added (unknown for v1 records: None)."""
    data.setdefault("given_id", None)
    return data


@register_migration("image_set", 1)
def _image_set_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """image_set v1 -> v2: ``given_id`` added to the set and to each image (None for v1 records)."""
    data.setdefault("given_id", None)
    for image in data.get("images") or []:
        if isinstance(image, dict):
            image.setdefault("given_id", None)
    return data


def _add_unrecorded_provenance(data: dict[str, Any]) -> dict[str, Any]:
    """A record written before provenance: ``{"method": "unrecorded"}`` (an existing value is kept)."""
    data.setdefault("provenance", dict(UNRECORDED))
    return data


for _name, _from in (("Cap", 1), ("AskModelAnything", 1), ("CapQA", 1), ("SubtitleQA", 1), ("VideoPoint", 2),
                     ("MultiImageQA", 1), ("MultiImagePoint", 1), ("SynMultiImageQA", 1)):
    register_migration(_name, _from)(_add_unrecorded_provenance)


@register_migration("VideoTrack", 1)
def _video_track_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """VideoTrack v1 -> v2: provenance added; every v1 point is visible, every None absent ("off = absent")."""
    _add_unrecorded_provenance(data)
    for obj in data.get("objects") or []:
        points = obj.get("points") if isinstance(obj, dict) else None
        for point in points if isinstance(points, list) else []:
            if isinstance(point, dict):
                point.setdefault("occluded", False)
    return data


@register_migration("image_set", 2)
def _image_set_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """image_set v2 -> v3: 2 to 5 images (a rule; the shape is unchanged)."""
    return data
