"""Read an ingest manifest (JSONL, CSV or Parquet) into rows or row failures, one per row, streaming.

A manifest row names one input; its ``kind`` follows from the fields it gives:

* ``video``: exactly one of ``url`` (an absolute URL with a scheme: a file URL, ``gs://``, ``s3://``
  or a web page for yt-dlp) or ``path`` (a file path); optional ``subtitle`` (URL or path),
  ``start`` / ``end`` (source seconds; ``start`` defaults to 0, ``end`` to the end).
* ``image_set``: ``images``, a list of 2-5 distinct URLs/paths (in CSV a ``|``-separated string or
  a JSON list), optional ``set_id`` (an alias of ``id``).
* ``image``: one ``image`` plus a ``group`` label. Image rows sharing a group form one image set
  (``pipelines.ingest.images.group_images``: 2-5 images per set; a group whose rows disagree on
  ``license``, ``source`` or ``split`` fails as ``conflicting_group_field``).

A relative ``path``, ``subtitle``, ``images`` entry or ``image`` is resolved against the folder of
the manifest itself (a local folder or an fsspec URL such as ``memory://`` or ``gs://``), never
against the working directory, so a manifest kept beside its media works from anywhere.

Every kind takes optional ``id``, ``source``, ``license`` and ``split`` (train/validation/test);
other columns are kept in ``extra`` as canonical JSON. Missing values, ``null``, NaN and blank
strings all mean "not given" (so the three formats agree); strings are stripped.

Ids (``input_id``) are WebDataset-safe keys (letters, digits, ``_``, ``-``; no dots), made by the
project's one key rule, ``schemas.record_types.make_key``:

* a given ``id`` that is already such a key (at most 128 chars) is used as is;
* any other given id (dots, slashes, spaces, non-ASCII...) becomes ``<ascii slug>-<8 hex of
  sha256(id)>``, e.g. ``clip.01`` -> ``clip_01-<hash>``; the original is kept in ``given_id``;
* with no id, the first 16 hex of the sha256 of the canonical JSON of what the input *is*
  (kind, url/path/images/image *as written*, clip range, group), not its metadata: stable across
  formats, runs and the manifest's location. Two rows asking for the same clip get the same id.

Messages name a row as a person finds it (``ManifestRow.where``): ``line N`` in JSONL and CSV
(1-based physical lines; blank lines count; a CSV's header is line 1 and a record spanning lines
is named by its first), ``row index N`` in Parquet (0-based, as pandas and pyarrow show it).

The second and later rows with an id already seen fail with ``duplicate_id`` (the reader keeps one
dict entry per row, about 100 bytes each). Row failures never stop the read; a file that cannot be
read at all (missing, not Parquet, CSV without a header or any location column) raises up front.
"""
from __future__ import annotations

import csv
import datetime
import decimal
import hashlib
import json
import math
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.common.errors import InputError
from pipelines.common.guard import InputGuard
from schemas.record_types import MAX_SET_IMAGES, MIN_SET_IMAGES, make_key
from schemas.records import canonical_json

__all__ = [
    "KINDS", "SPLITS", "FORMATS", "ManifestRow", "ManifestFailure", "read_manifest", "parse_row",
    "manifest_format", "ManifestError", "ManifestNotFoundError",
    "manifest_base", "resolve_location", "count_rows",
]

KINDS = ("video", "image_set", "image")
SPLITS = ("train", "validation", "test")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
_LOCATION_FIELDS = ("url", "path", "images", "image")
_KNOWN = {"id", "url", "path", "subtitle", "start", "end", "split", "source", "license",
          "images", "set_id", "image", "group"}
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (not one row's fault): the run's input error."""


class ManifestNotFoundError(ManifestError, FileNotFoundError):
    """The manifest file does not exist."""


def _bad(error_type: str, message: str) -> InputError:
    return InputError("manifest", error_type, message)


def _canonical(obj: Any) -> str:
    """Canonical JSON of raw row content, which may hold dates (as text) and NaN (Parquet, CSV)."""
    return canonical_json(obj, default=str, allow_nan=True)


def _digest(obj: Any) -> str:
    return hashlib.sha256(_canonical(obj).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ManifestRow:
    """One readable manifest row. Picklable; equal rows compare equal."""

    row_number: int
    """0-based index of the row among the file's data rows (JSONL blank lines are not rows): its
    order. Messages name the row by ``where`` instead."""
    input_id: str
    """WebDataset-safe key of this input."""
    kind: str
    """One of ``KINDS``."""
    url: str | None = None
    path: str | None = None
    images: tuple[str, ...] = ()
    """``image_set``: its 2-5 images in order; ``image``: the one image."""
    group: str | None = None
    """``image`` rows only: the label rows are grouped by."""
    subtitle: str | None = None
    start: float = 0.0
    """Video clip start, source seconds."""
    end: float | None = None
    """Video clip end, source seconds; None for the end of the video."""
    split: str | None = None
    source: str | None = None
    license: str | None = None
    extra: str = "{}"
    """Unknown columns as canonical JSON (sorted keys)."""
    given_id: str | None = None
    """The ``id`` (or ``set_id``) as written in the manifest, if any."""
    where: str = field(default="", compare=False)
    """The row as a person finds it: ``line N`` (JSONL, CSV; 1-based, a CSV's header is line 1)
    or ``row index N`` (Parquet; 0-based, as pandas and pyarrow show it)."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (``images`` as a list)."""
        d = asdict(self)
        d["images"] = list(self.images)
        return d

    def to_manifest_dict(self) -> dict[str, Any]:
        """A manifest row (JSON object) that reads back to this row; used to retry inputs."""
        out: dict[str, Any] = dict(json.loads(self.extra))
        if self.given_id is not None:
            out["id"] = self.given_id
        if self.kind == "video":
            out["url" if self.url is not None else "path"] = self.url if self.url is not None else self.path
            out["start"] = self.start
            for name in ("end", "subtitle"):
                if getattr(self, name) is not None:
                    out[name] = getattr(self, name)
        elif self.kind == "image_set":
            out["images"] = list(self.images)
        else:
            out["image"], out["group"] = self.images[0], self.group
        for name in ("split", "source", "license"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class ManifestFailure:
    """A manifest row that makes no sense; becomes a failure record at stage ``manifest``."""

    row_number: int
    input_id: str
    """The row's id made key-safe when it gave one, else a hash of the raw row (best effort)."""
    error_type: str
    message: str
    """Names the row number and the field, e.g. ``row 7: 'end' (3.0) must be greater than ...``."""
    raw: str
    """The row as JSON text (a JSON string for a line that is not JSON), so it can be retried."""
    stage: str = "manifest"
    where: str = field(default="", compare=False)
    """As ``ManifestRow.where``."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict."""
        return asdict(self)


def _given(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The row's given values: strings stripped; None, NaN and blank strings left out."""
    row = {}
    for key, value in raw.items():
        if isinstance(value, str):
            value = value.strip()
            if value:
                row[str(key)] = value
        elif value is not None and not (isinstance(value, float) and math.isnan(value)):
            row[str(key)] = value
    return row


def _text(row: Mapping[str, Any], key: str, n: str, allow_int: bool = False) -> str | None:
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _bad("invalid_field", f"{n}: {key!r} must be a string, got {value!r}")


def _seconds(row: Mapping[str, Any], key: str, n: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, datetime.timedelta):
            value = value.total_seconds()
        seconds = float(value)
    except (TypeError, ValueError, decimal.InvalidOperation):
        seconds = math.nan
    if not math.isfinite(seconds):
        raise _bad("invalid_time", f"{n}: {key!r} must be a number of seconds, got {value!r}")
    return seconds


def _image_list(row: Mapping[str, Any], n: str) -> tuple[str, ...]:
    value = row["images"]
    if isinstance(value, str):
        if value.startswith("["):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise _bad("invalid_field", f"{n}: 'images' is not a JSON list ({exc})") from None
        else:
            value = [part.strip() for part in value.split("|")]
    if not isinstance(value, (list, tuple)):
        raise _bad("invalid_field", f"{n}: 'images' must be a list or a '|'-separated string, "
                   f"got {value!r}")
    images: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _bad("invalid_field", f"{n}: 'images'[{i}] must be a non-empty string, got {item!r}")
        if item.strip() in images:
            raise _bad("duplicate_image", f"{n}: 'images' lists {item.strip()!r} twice")
        images.append(item.strip())
    if not MIN_SET_IMAGES <= len(images) <= MAX_SET_IMAGES:
        raise _bad("bad_image_count", f"{n}: 'images' has {len(images)} image(s); an image set "
                   f"needs {MIN_SET_IMAGES} to {MAX_SET_IMAGES}")
    return tuple(images)


def _not_allowed(row: Mapping[str, Any], n: str, kind: str, names: Sequence[str]) -> None:
    for name in names:
        if name in row:
            raise _bad("field_not_allowed", f"{n}: {name!r} does not apply to a {kind} row")


def _kind(row: Mapping[str, Any], n: str) -> str:
    if "url" in row and "path" in row:
        raise _bad("url_and_path", f"{n}: give 'url' or 'path', not both")
    present = [name for name in _LOCATION_FIELDS if name in row]
    if not present:
        raise _bad("missing_location", f"{n}: needs 'url' or 'path' (video), 'images' (image set) "
                   f"or 'image' + 'group' (image); fields given: {sorted(row)}")
    if len(present) > 1:
        raise _bad("ambiguous_kind", f"{n}: {present[0]!r} and {present[1]!r} cannot be in one row "
                   "(a row is one video, one image set or one image)")
    return {"url": "video", "path": "video", "images": "image_set", "image": "image"}[present[0]]


def _video_fields(row: Mapping[str, Any], n: str) -> dict[str, Any]:
    _not_allowed(row, n, "video", ("set_id", "group"))
    url, path = _text(row, "url", n), _text(row, "path", n)
    if url is not None and "://" not in url:
        raise _bad("invalid_url", f"{n}: 'url' must be an absolute URL with a scheme (e.g. "
                   f"https://...), got {url!r}; use 'path' for files")
    start, end = _seconds(row, "start", n), _seconds(row, "end", n)
    start = 0.0 if start is None else start + 0.0  # + 0.0 turns -0.0 into 0.0
    if start < 0:
        raise _bad("negative_start", f"{n}: 'start' ({start!r}) must be >= 0")
    if end is not None and end <= start:
        raise _bad("end_before_start", f"{n}: 'end' ({end!r}) must be greater than 'start' ({start!r})")
    return dict(url=url, path=path, start=start, end=end, subtitle=_text(row, "subtitle", n))


def _parse(raw: Mapping[str, Any], row_number: int, n: str, base: str | None) -> ManifestRow:
    row = _given(raw)
    ids = {k: _text(row, k, n, allow_int=True) for k in ("id", "set_id")}
    if None not in ids.values() and ids["id"] != ids["set_id"]:
        raise _bad("conflicting_id", f"{n}: 'id' ({ids['id']!r}) and 'set_id' ({ids['set_id']!r}) differ")
    given_id = ids["id"] if ids["id"] is not None else ids["set_id"]
    kind = _kind(row, n)
    split = _text(row, "split", n)
    if split is not None and split not in SPLITS:
        raise _bad("unknown_split", f"{n}: 'split' must be one of {', '.join(SPLITS)}; got {split!r}")
    fields: dict[str, Any] = dict(split=split, source=_text(row, "source", n), license=_text(row, "license", n))
    if kind == "video":
        fields.update(_video_fields(row, n))
        content = {k: fields[k] for k in ("url", "path", "start", "end")}
    elif kind == "image_set":
        _not_allowed(row, n, kind, ("start", "end", "subtitle", "group"))
        fields["images"] = _image_list(row, n)
        content = {"images": list(fields["images"])}
    else:
        _not_allowed(row, n, kind, ("start", "end", "subtitle", "set_id"))
        group = _text(row, "group", n, allow_int=True)
        if group is None:
            raise _bad("missing_group", f"{n}: 'group' is required with 'image' (rows sharing a group "
                       "form one image set)")
        fields.update(images=(_text(row, "image", n),), group=group)
        content = {"image": fields["images"][0], "group": group}
    extra = {k: v for k, v in row.items() if k not in _KNOWN}
    input_id = make_key(given_id) if given_id is not None else _digest({"kind": kind, **content})
    if base is not None:  # the id above is from the locations as written; the row holds them resolved
        fields.update({k: resolve_location(fields[k], base) for k in ("path", "subtitle") if fields.get(k)})
        if fields.get("images"):
            fields["images"] = tuple(resolve_location(i, base) for i in fields["images"])
    return ManifestRow(row_number=row_number, input_id=input_id, kind=kind, extra=_canonical(extra),
                       given_id=given_id, where=n, **fields)


def manifest_base(path: str) -> str:
    """The folder relative locations in the manifest at ``path`` are resolved against.

    A local manifest's absolute folder; for an fsspec URL (``memory://``, ``gs://``...) the URL of
    its parent folder; ``file://`` URLs are local.
    """
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    fs, local = fsspec.core.url_to_fs(str(path))
    if isinstance(fs, LocalFileSystem):
        return os.path.dirname(os.path.abspath(local))
    return fs.unstrip_protocol(posixpath.dirname(local.rstrip("/")))


def resolve_location(location: str, base: str) -> str:
    """A manifest's ``path``/``subtitle``/``images``/``image`` resolved against the manifest's folder.

    URLs (``scheme://``, ``file:``), absolute paths and ``~`` paths are kept; a relative path is
    joined to ``base`` (``manifest_base``) and normalized (``..`` allowed).
    """
    if _SCHEME_RE.match(location) or location.lower().startswith("file:") or location.startswith("~"):
        return location
    if os.path.isabs(location):
        return location
    match = _SCHEME_RE.match(base)
    if match:
        prefix, folder = base[:match.end()], base[match.end():]
        return prefix + posixpath.normpath(posixpath.join(folder, location))
    return os.path.normpath(os.path.join(base, location))


_GUARD = InputGuard()  # a row's parse touches no file: only MemoryError is the run's


def _best_effort_id(raw: Any, raw_json: str) -> str:
    if isinstance(raw, Mapping):
        for key in ("id", "set_id"):
            value = raw.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and value.strip():
                return make_key(value.strip())
    return _digest(raw_json)


def parse_row(raw: Any, row_number: int, where: str | None = None,
              base: str | None = None) -> ManifestRow | ManifestFailure:
    """Parse one manifest row (a dict from any format). Stateless: no duplicate check.

    Guarded (``pipelines.common.guard``): anything unforeseen while parsing is this row's
    ``internal_error``, never the reader's end.

    Args:
        raw: the row as read (JSON object, CSV dict of strings, Parquet row dict).
        row_number: its 0-based row number (its order among the rows).
        where: how messages name the row (``line 3``, ``row index 2``); default ``row {row_number}``.
        base: resolve relative locations against this folder or URL (``manifest_base``); None keeps them.

    Returns:
        A ``ManifestRow``, or a ``ManifestFailure`` saying what is wrong with the row.
    """
    where = where or f"row {row_number}"
    given = raw.get("id") if isinstance(raw, Mapping) else None
    try:
        with _GUARD.step("manifest", where, str(given)):
            if not isinstance(raw, Mapping):
                raise _bad("not_an_object", f"{where}: must be a JSON object, got {type(raw).__name__}")
            if None in raw:  # csv.DictReader puts cells beyond the header under None
                raise _bad("invalid_csv_row", f"{where}: has more cells than the header has columns "
                           f"(extra cells: {raw[None]!r})")
            return _parse(raw, row_number, where, base)
    except InputError as exc:
        raw_json = _canonical_raw(raw)
        return ManifestFailure(row_number, _best_effort_id(raw, raw_json), exc.error_type, exc.message, raw_json,
                               where=where)


def _canonical_raw(raw: Any) -> str:
    if isinstance(raw, Mapping):
        raw = {str(k): v for k, v in raw.items()}
    return json.dumps(raw, ensure_ascii=False, default=str)


def manifest_format(path: str) -> str:
    """The format of a manifest from its name: ``jsonl``, ``csv`` or ``parquet``.

    Raises:
        ManifestError: the extension is none of ``.jsonl``, ``.ndjson``, ``.csv``, ``.parquet``
            (JSONL and CSV may also end in ``.gz``, ``.bz2`` or ``.xz``).
    """
    name = str(path).lower()
    compressed = name.endswith(_COMPRESSION_SUFFIXES)
    if compressed:
        name = name.rsplit(".", 1)[0]
    for suffix, fmt in FORMATS.items():
        if name.endswith(suffix) and not (compressed and fmt == "parquet"):
            return fmt
    raise ManifestError(f"manifest {path}: cannot tell its format from the name; use .jsonl, .ndjson, .csv "
                     "or .parquet (JSONL/CSV may be .gz, .bz2 or .xz compressed)")


def _open(path: str, mode: str, **kwargs: Any) -> Any:  # an fsspec OpenFile (a context manager)
    import fsspec

    return fsspec.open(path, mode, compression="infer", **kwargs)


def _check_columns(path: str, columns: Iterable[str]) -> None:
    columns = list(columns)
    if not set(columns) & set(_LOCATION_FIELDS):
        raise ManifestError(f"manifest {path}: no {', '.join(map(repr, _LOCATION_FIELDS))} column "
                         f"(columns: {columns}); check the header and the delimiter")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ManifestError(f"manifest {path}: duplicate column name(s) {duplicated}")


def _raw_jsonl(path: str) -> Iterator[tuple[str, Any, InputError | None]]:
    # bytes lines -> ("line N", decoded JSON value, None) or ("line N", the line's text, error)
    # per non-blank line (blank lines are not rows but count as lines)
    with _open(path, "rb") as f:
        for line_number, line in enumerate(f, start=1):
            if line_number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            where = f"line {line_number}"
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield where, line.decode("utf-8", "replace").rstrip("\r\n"), _bad(
                    "invalid_json", f"not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            try:
                yield where, json.loads(text), None
            except ValueError as exc:
                yield where, text.rstrip("\r\n"), _bad("invalid_json", f"not JSON ({exc})")


def _raw_csv(path: str) -> Iterator[tuple[str, Any, None]]:
    # text -> ("line N", dict of strings, None) per data row; N is the line the record starts on
    # (the header is line 1; a quoted cell may span lines); blank lines are skipped
    with _open(path, "rt", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
            while True:
                start = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                if not cells:
                    continue
                row: dict[Any, Any] = dict(zip(header, cells))
                if len(cells) > len(header):
                    row[None] = cells[len(header):]
                for name in header[len(cells):]:
                    row[name] = None
                yield f"line {start}", row, None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest {path}: CSV error near line {reader.line_num}: {exc}") from None


def _raw_parquet(path: str, batch_size: int) -> Iterator[tuple[str, Any, None]]:
    # record batches of at most batch_size rows -> ("row index N", row dict, None) per row
    import pyarrow.parquet as pq

    index = 0
    with _open(path, "rb") as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                yield f"row index {index}", row, None
                index += 1


def _check_readable(path: str, fmt: str) -> None:
    import fsspec

    fs, local = fsspec.core.url_to_fs(path)
    if not fs.exists(local):
        raise ManifestNotFoundError(f"manifest not found: {path}")
    if fs.isdir(local):
        raise ManifestError(f"manifest {path} is a directory, not a file")
    if fmt == "csv":
        with _open(path, "rt", encoding="utf-8-sig", newline="") as f:
            try:
                header = next(csv.reader(f), None)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ManifestError(f"manifest {path}: cannot read the CSV header ({exc})") from None
        if not header:
            raise ManifestError(f"manifest {path}: empty CSV file (a header row is required)")
        _check_columns(path, header)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with _open(path, "rb") as f:
                names = pq.ParquetFile(f).schema_arrow.names
        except (pa.ArrowException, OSError) as exc:
            raise ManifestError(f"manifest {path}: not a readable Parquet file ({exc})") from None
        _check_columns(path, names)


def read_manifest(
    path: str | os.PathLike[str], fmt: str | None = None, *, batch_size: int = 8192, resolve: bool = True
) -> Iterator[ManifestRow | ManifestFailure]:
    """Stream a manifest: exactly one ``ManifestRow`` or ``ManifestFailure`` per row, in file order.

    Relative locations (``path``, ``subtitle``, ``images``, ``image``) are resolved against the
    manifest's own folder (``manifest_base``), not the working directory; messages name a row
    by its line (JSONL, CSV) or row index (Parquet), see ``ManifestRow.where``.

    JSONL and CSV are read line by line, Parquet by record batches, so memory does not grow with
    the file (except the set of ids seen, for ``duplicate_id``). Deterministic.

    Args:
        path: a local path or an fsspec URL (``gs://``, ``s3://``, ``file://``...).
        fmt: ``jsonl``, ``csv`` or ``parquet``; None to choose by extension (``manifest_format``).
        batch_size: Parquet rows decoded at a time.
        resolve: resolve relative locations (False keeps them as written).

    Returns:
        An iterator over the outcomes; the file is checked before this returns.

    Raises:
        ManifestNotFoundError: the file does not exist (a ``FileNotFoundError``).
        ManifestError: unknown format, or the file cannot be read as a whole (not Parquet, a CSV
            without a header or without any of the url/path/images/image columns, a CSV syntax
            error while streaming).
    """
    path = str(path)
    fmt = manifest_format(path) if fmt is None else fmt
    if fmt not in ("jsonl", "csv", "parquet"):
        raise ManifestError(f"unknown manifest format {fmt!r}; known: jsonl, csv, parquet")
    _check_readable(path, fmt)
    if fmt == "jsonl":
        raws = _raw_jsonl(path)
    elif fmt == "csv":
        raws = _raw_csv(path)
    else:
        raws = _raw_parquet(path, batch_size)
    return _outcomes(raws, manifest_base(path) if resolve else None)


def count_rows(path: str | os.PathLike[str], fmt: str | None = None) -> int:
    """How many rows ``read_manifest`` will yield, read cheaply (for progress estimates).

    JSONL: non-blank lines; CSV: records after the header (blank lines skipped); Parquet: the
    footer's row count. The file must have passed ``read_manifest``'s checks.

    Raises:
        ManifestError: a CSV syntax error (said before any work starts).
    """
    path = str(path)
    fmt = manifest_format(path) if fmt is None else fmt
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with _open(path, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    if fmt == "csv":
        return sum(1 for _ in _raw_csv(path))
    with _open(path, "rb") as f:
        return sum(1 for line in f if line.strip() and line.strip() != b"\xef\xbb\xbf")


def _outcomes(raws: Iterator[tuple[str, Any, InputError | None]], base: str | None
              ) -> Iterator[ManifestRow | ManifestFailure]:
    # (where, raw row, read error) -> one outcome per row; ids seen so far -> duplicate_id
    seen: dict[str, str] = {}
    for n, (where, raw, error) in enumerate(raws):
        if error is not None:
            yield ManifestFailure(n, _digest(raw), error.error_type, f"{where}: {error.message}",
                                  json.dumps(raw, ensure_ascii=False), where=where)
            continue
        outcome = parse_row(raw, n, where, base)
        if isinstance(outcome, ManifestRow):
            first = seen.setdefault(outcome.input_id, where)
            if first != where:
                what = (f"'id' {outcome.given_id!r} (key {outcome.input_id!r})" if outcome.given_id is not None
                        else f"the input (same kind, location and clip range; id {outcome.input_id!r})")
                outcome = ManifestFailure(n, outcome.input_id, "duplicate_id", f"{where}: {what} is already "
                                          f"used by {first}", _canonical_raw(raw), where=where)
        yield outcome
