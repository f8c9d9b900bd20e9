"""Find, pin and hash the inputs of a publish run before the pipeline starts.

One job: turn the command's input paths into ``Inputs``: which files each input holds, the
sha256 of every file read (so the manifest pins exactly what was published), the media shards
of each ingest output (with the sha256 the reader must find), the record files per dataset,
the review decisions and the takedown list. Nothing is decoded here except the small ingest
``shards.json`` listing; records and media are read by the pipeline.

Input kinds (``InputPin.kind``):

* ``ingest``: an ingest output folder (``shards.layout`` names its files):
  ``shards.json``, ``clips.parquet``, ``videos.parquet``, ``imagesets.parquet``, and the shards
  that ``shards.json`` lists (pinned by the sha256 listed there and checked when read);
* ``records``: a folder of records, one file per dataset named ``{Dataset}.parquet`` (written
  by ``schemas.arrow.to_table``) or ``{Dataset}.jsonl``; any ``*.json`` beside them (such as
  the ``normalized.json`` naming the snapshot versions normalize read) is pinned too, as is
  ``review.jsonl`` (tasks held back for a person: counted per dataset as ``under_review``);
  other files (the annotation stage's ``failures.parquet``) are not read;
* ``reviews``: a ``review_decision`` file (``.parquet`` or ``.jsonl``) or a folder of them;
* ``takedown``: a text file of source ids (video ids, image-set ids or image ids), one a line,
  ``#`` starting a comment.

Every path may be local or an fsspec URL.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import fsspec

from schemas.records import DATASETS, canonical_json
from shards.layout import SHARD_PREFIXES, SHARDS_INDEX, table_name

__all__ = [
    "InputError", "InputPin", "MediaShard", "Inputs", "collect_inputs", "sha256_of", "read_takedown",
    "read_rows", "code_version",
]

INGEST_TABLES = tuple(table_name(n) for n in ("clips", "videos", "imagesets"))
_RECORD_SUFFIXES = (".parquet", ".jsonl")


class InputError(ValueError):
    """An input path is missing or is not the kind of input it was given as."""


@dataclass(frozen=True)
class InputPin:
    """One input as the manifest pins it."""

    kind: str
    uri: str
    files: dict[str, str]
    """Relative file name -> sha256 of every file of the input that was read."""

    @property
    def sha256(self) -> str:
        """One hash of the whole input: sha256 of the canonical JSON of ``files``."""
        return hashlib.sha256(canonical_json(self.files).encode()).hexdigest()

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's entry for this input."""
        return {"kind": self.kind, "uri": self.uri, "sha256": self.sha256, "files": dict(sorted(self.files.items()))}


@dataclass(frozen=True)
class MediaShard:
    """A shard of media written by ingest, and what it must hash to."""

    path: str
    sha256: str
    kind: str
    """``clips`` or ``imagesets``."""


@dataclass
class Inputs:
    """Everything a publish run reads, found and pinned."""

    pins: list[InputPin] = field(default_factory=list)
    media_shards: list[MediaShard] = field(default_factory=list)
    videos_tables: list[str] = field(default_factory=list)
    record_files: list[tuple[str, str]] = field(default_factory=list)
    """(dataset, file path) pairs."""
    review_files: list[str] = field(default_factory=list)
    takedown: frozenset[str] = frozenset()
    under_review: dict[str, int] = field(default_factory=dict)
    """Dataset -> tasks the annotation stage held back for a person (``review.jsonl`` rows):
    not records yet, so left out, and counted in ``stats.json``."""

    @property
    def datasets(self) -> list[str]:
        """Datasets that have at least one record file, sorted."""
        return sorted({d for d, _ in self.record_files})


def _fs(uri: str) -> tuple[Any, str]:
    return fsspec.core.url_to_fs(uri)


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def sha256_of(uri: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, streamed (local path or fsspec URL)."""
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _require_dir(uri: str, what: str) -> tuple[Any, str]:
    fs, path = _fs(uri)
    if not fs.isdir(path):
        raise InputError(f"{what} {uri}: not a folder")
    return fs, path


def _pin_ingest(uri: str, inputs: Inputs) -> InputPin:
    fs, path = _require_dir(uri, "ingest output")
    listing = _join(uri, SHARDS_INDEX)
    if not fs.isfile(_join(path, SHARDS_INDEX)):
        raise InputError(f"ingest output {uri}: no {SHARDS_INDEX} (not an ingest output, or an unfinished one)")
    files = {SHARDS_INDEX: sha256_of(listing)}
    with fsspec.open(listing, "rt") as f:
        try:
            shards = json.load(f)
        except ValueError as exc:
            raise InputError(f"ingest output {uri}: {SHARDS_INDEX} is not JSON ({exc})") from None
    for entry in shards:
        kind = entry["shard"].split("/", 1)[0]
        if kind not in SHARD_PREFIXES:
            raise InputError(f"ingest output {uri}: {SHARDS_INDEX} lists {entry['shard']!r}, "
                             f"not under {'/ or '.join(SHARD_PREFIXES)}/")
        files[entry["shard"]] = entry["sha256"]
        inputs.media_shards.append(MediaShard(_join(uri, entry["shard"]), entry["sha256"], kind))
    for name in INGEST_TABLES:
        if fs.isfile(_join(path, name)):
            files[name] = sha256_of(_join(uri, name))
    videos = table_name("videos")
    if videos not in files and any(entry["shard"].split("/", 1)[0] == "clips" for entry in shards):  # this input's
        raise InputError(f"ingest output {uri}: clips but no {videos} (their sources and licenses)")
    if videos in files:
        inputs.videos_tables.append(_join(uri, videos))
    return InputPin("ingest", uri, files)


def _record_files(uri: str) -> Iterator[tuple[str, str]]:
    fs, path = _require_dir(uri, "records folder")
    for full in sorted(fs.ls(path, detail=False)):
        name = full.rstrip("/").rsplit("/", 1)[-1]
        stem, dot, suffix = name.partition(".")
        yield name, stem if f".{suffix}" in _RECORD_SUFFIXES else ""


def _pin_records(uri: str, inputs: Inputs) -> InputPin:
    files = {}
    for name, stem in _record_files(uri):
        if stem in DATASETS:
            inputs.record_files.append((stem, _join(uri, name)))
        elif name == "review.jsonl":
            for row in read_rows(_join(uri, name), "review"):
                dataset = row.get("dataset", "?")
                inputs.under_review[dataset] = inputs.under_review.get(dataset, 0) + 1
        elif not name.endswith(".json"):
            continue  # e.g. the annotation stage's own failures.parquet: not records to publish
        files[name] = sha256_of(_join(uri, name))
    if not any(name.partition(".")[0] in DATASETS for name in files):
        raise InputError(f"records folder {uri}: no {{Dataset}}.parquet or {{Dataset}}.jsonl file in it")
    return InputPin("records", uri, files)


def _pin_reviews(uri: str, inputs: Inputs) -> InputPin:
    fs, path = _fs(uri)
    if fs.isdir(path):
        names = [n for n, _ in _record_files(uri) if n.endswith(_RECORD_SUFFIXES)]
        paths = {n: _join(uri, n) for n in names}
    elif fs.isfile(path) and uri.endswith(_RECORD_SUFFIXES):
        paths = {uri.rstrip("/").rsplit("/", 1)[-1]: uri}
    else:
        raise InputError(f"review decisions {uri}: not a .parquet/.jsonl file or a folder of them")
    inputs.review_files.extend(paths.values())
    return InputPin("reviews", uri, {n: sha256_of(p) for n, p in paths.items()})


def read_takedown(uri: str) -> frozenset[str]:
    """The source ids of a takedown list: one per line, blank lines and ``#`` comments ignored."""
    with fsspec.open(uri, "rt", encoding="utf-8") as f:
        ids = {line.split("#", 1)[0].strip() for line in f}
    return frozenset(i for i in ids if i)


def collect_inputs(ingest: list[str], records: list[str], reviews: list[str] = (),
                   takedown: Optional[str] = None) -> Inputs:
    """Find and pin every input of a publish run.

    Args:
        ingest: ingest output folders (local or fsspec URLs).
        records: record folders.
        reviews: review-decision files or folders.
        takedown: a takedown list file, or None.

    Returns:
        The pinned ``Inputs`` (pins in argument order).

    Raises:
        InputError: naming the input that is missing or malformed.
    """
    inputs = Inputs()
    if not ingest or not records:
        raise InputError("publish needs at least one ingest output (--ingest) and one records folder (--records)")
    for uri in ingest:
        inputs.pins.append(_pin_ingest(_clean(uri), inputs))
    for uri in records:
        inputs.pins.append(_pin_records(_clean(uri), inputs))
    for uri in reviews:
        inputs.pins.append(_pin_reviews(_clean(uri), inputs))
    if takedown:
        uri = _clean(takedown)
        fs, path = _fs(uri)
        if not fs.isfile(path):
            raise InputError(f"takedown list {uri}: not a file")
        inputs.takedown = read_takedown(uri)
        inputs.pins.append(InputPin("takedown", uri, {uri.rsplit("/", 1)[-1]: sha256_of(uri)}))
    return inputs


def _clean(uri: str) -> str:
    """Local paths absolute and without a trailing slash; URLs as given."""
    uri = os.fspath(uri)
    return uri.rstrip("/") if "://" in uri else os.path.abspath(uri)


def read_rows(uri: str, record_type: str) -> Iterator[dict[str, Any]]:
    """The records of a ``.parquet`` or ``.jsonl`` file as plain dicts, not validated.

    A line of a ``.jsonl`` file that is not a JSON object comes out as
    ``{"__unreadable__": "<line number>: <why>"}``, so the caller records a failure for it.
    """
    if uri.endswith(".parquet"):
        from schemas.arrow import table_rows
        from shards.published import read_table

        yield from table_rows(record_type, read_table(uri))
        return
    with fsspec.open(uri, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                yield {"__unreadable__": f"line {n}: not JSON ({exc})"}
                continue
            yield row if isinstance(row, dict) else {"__unreadable__": f"line {n}: not a JSON object"}


def code_version() -> dict[str, str]:
    """The code that shapes published bytes: package version and one sha256 over the sources of
    ``schemas``, ``shards`` and ``pipelines.publish`` (file paths and bytes, sorted)."""
    from importlib.metadata import PackageNotFoundError, version

    import pipelines.publish
    import schemas
    import shards

    digest = hashlib.sha256()
    for package in (schemas, shards, pipelines.publish):
        root = os.path.dirname(package.__file__)
        base = os.path.dirname(os.path.dirname(root)) if package is pipelines.publish else os.path.dirname(root)
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(n for n in names if n.endswith((".py", ".jinja", ".yaml"))):
                full = os.path.join(folder, name)
                digest.update(os.path.relpath(full, base).replace(os.sep, "/").encode() + b"\0")
                with open(full, "rb") as f:
                    digest.update(hashlib.sha256(f.read()).digest())
    try:
        package = version("molmo2-data")
    except PackageNotFoundError:  # running from a checkout that is not installed
        package = "unknown"
    return {"package": package, "sources_sha256": digest.hexdigest()}
