"""The layout of a published dataset version, how to find committed versions, and ``verify``.

One job: know where the files of ``<root>/<dataset>/<version>/`` are and what makes a version
real. ``pipelines.publish`` writes versions; readers (``shards.dataset``, the trainer, the
``verify``/``list``/``diff`` commands) read them through here only.

Layout of a version folder::

    manifest.json            the commit point, written last; a folder without it is not a version
    {split}-NNNNNN.tar       the samples (``pipelines.publish.samples`` says what one holds)
    index/{split}.parquet    one row per sample: key, shard, position, offset, length, xxh3 (checksum)
    stats.json               counts, exclusions and failures by reason, distributions
    failures.parquet         records left out as failures, with the rule or error (``failure``)
    exclusions.jsonl         records left out on purpose, with the reason (review, takedown, license)
    README.md                dataset card; its YAML header lets ``datasets.load_dataset`` load it
    report.html              plots and previews for a person
    build_info.json          build time and host: not in the manifest (they differ every run)

``manifest.json`` (canonical JSON, so equal versions are equal bytes): ``format``, ``dataset``,
``version``, ``parent_version``, ``inputs`` (kind, uri, sha256, files), ``code``, ``config``,
``splits`` (per split: samples, records, bytes), ``shards`` (per shard: name, split, sha256,
num_samples, num_bytes, first_key, last_key) and ``files`` (every other file but
``build_info.json``: sha256 and bytes).

Storage: ``root`` is a local path or an fsspec URL.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import fsspec

__all__ = [
    "FORMAT", "MANIFEST", "VersionNotFound", "version_dir", "parse_version_dir", "parent_of", "read_manifest",
    "list_versions", "list_datasets",
    "version_key", "manifest_bytes", "read_table", "VerifyResult", "verify_version", "split_spans",
]

FORMAT = "molmo2-data/published-dataset-v1"
MANIFEST = "manifest.json"
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class VersionNotFound(FileNotFoundError):
    """No committed version there (no folder, or a folder without ``manifest.json``)."""


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key of an ``X.Y.Z`` version. Raises ValueError for anything else."""
    match = _VERSION.match(version)
    if not match:
        raise ValueError(f"not a version X.Y.Z: {version!r}")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def join(*parts: str) -> str:
    """Join URL or path parts with ``/``."""
    return "/".join([parts[0].rstrip("/"), *(p.strip("/") for p in parts[1:])])


def version_dir(root: str, dataset: str, version: str) -> str:
    """``<root>/<dataset>/<version>``."""
    return join(root, dataset, version)


def parse_version_dir(url: str) -> tuple[str, str, str]:
    """``<root>/<dataset>/<version>`` -> ``(root, dataset, version)``.

    Raises:
        ValueError: when the last part is not a version ``X.Y.Z`` or there is no dataset part.
    """
    parts = url.rstrip("/").rsplit("/", 2)
    if len(parts) != 3 or not parts[1] or not _VERSION.match(parts[2]):
        raise ValueError(f"{url}: not a version folder <root>/<dataset>/<X.Y.Z>")
    return parts[0] or "/", parts[1], parts[2]


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes a manifest is stored as: sorted keys, one-space indent, UTF-8, newline."""
    return (json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def read_manifest(root: str, dataset: str, version: str) -> dict[str, Any]:
    """The manifest of a committed version.

    Raises:
        VersionNotFound: no such version, or one whose publish never committed.
        ValueError: a manifest that is not this format.
    """
    url = join(version_dir(root, dataset, version), MANIFEST)
    try:
        with fsspec.open(url, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        raise VersionNotFound(f"{dataset} {version} under {root}: no committed version "
                              f"(no {MANIFEST}; an unfinished publish leaves none)") from None
    if data.get("format") != FORMAT:
        raise ValueError(f"{url}: not a {FORMAT} manifest (format {data.get('format')!r})")
    return data


def _children(url: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.isdir(path):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))


def list_versions(root: str, dataset: str) -> list[str]:
    """Committed versions of a dataset (folders with a manifest), lowest first."""
    fs, _ = fsspec.core.url_to_fs(root)
    found = []
    for name in _children(join(root, dataset)):
        if _VERSION.match(name) and fs.isfile(fsspec.core.url_to_fs(join(root, dataset, name, MANIFEST))[1]):
            found.append(name)
    return sorted(found, key=version_key)


def list_datasets(root: str) -> list[str]:
    """Datasets under ``root`` that have at least one committed version."""
    return [name for name in _children(root) if not name.startswith(".") and list_versions(root, name)]


def read_table(url: str, columns: Optional[list[str]] = None) -> Any:
    """A Parquet file (local or fsspec URL) as a ``pyarrow.Table``, read in this thread.

    Read as bytes through fsspec, then ``ParquetFile(...).read(use_threads=False)``: the
    dataset-API reader (``pq.read_table`` on a file object or buffer) leaves pool threads that
    abort the interpreter at exit ("terminate called without an active exception") about half
    the time when torch was imported first, as it is in every trainer.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb") as f:
        data = f.read()
    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns, use_threads=False)


def split_spans(root: str, dataset: str, version: str, split: str) -> list[dict[str, Any]]:
    """The index rows of one split (key, shard, position, offset, length, xxh3), in position order."""
    return read_table(join(version_dir(root, dataset, version), "index", f"{split}.parquet")).to_pylist()


@dataclass
class VerifyResult:
    """What ``verify_version`` found; ``ok`` when ``problems`` is empty."""

    dataset: str
    version: str
    shards: int = 0
    samples: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256(url: str) -> tuple[str, int]:
    import hashlib

    digest, size = hashlib.sha256(), 0
    with fsspec.open(url, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def verify_version(root: str, dataset: str, version: str, deep: bool = True) -> VerifyResult:
    """Check a committed version against its manifest.

    Every shard: sha256 and size as listed, and (``deep``) every sample read back at its indexed
    span (tar headers parsed, names checked, checksum verified) and counted; every listed file's
    sha256; the index's sample counts per shard; no tar in the folder that the manifest does not
    list.

    Raises:
        VersionNotFound: no committed version there.
    """
    from shards.index import SampleSpan, iter_spans
    from shards.reader import ShardReadError

    manifest = read_manifest(root, dataset, version)
    where = version_dir(root, dataset, version)
    result = VerifyResult(dataset, version)
    for name, want in sorted(manifest["files"].items()):
        try:
            got = _sha256(join(where, name))
        except FileNotFoundError:
            result.problems.append(f"{name}: missing")
            continue
        if got != (want["sha256"], want["bytes"]):
            result.problems.append(f"{name}: sha256 {got[0]} ({got[1]} bytes), the manifest says "
                                   f"{want['sha256']} ({want['bytes']} bytes)")
    indexed: dict[str, list] = {}
    for split in manifest["splits"]:
        try:
            for row in split_spans(root, dataset, version, split):
                indexed.setdefault(row["shard"], []).append(
                    SampleSpan(row["key"], row["offset"], row["length"], row["xxh3"]))
        except FileNotFoundError:
            result.problems.append(f"index/{split}.parquet: missing")
    for shard in manifest["shards"]:
        name, url = shard["name"], join(where, shard["name"])
        result.shards += 1
        try:
            sha, size = _sha256(url)
        except FileNotFoundError:
            result.problems.append(f"{name}: missing")
            continue
        result.bytes += size
        if (sha, size) != (shard["sha256"], shard["num_bytes"]):
            result.problems.append(f"{name}: sha256 {sha} ({size} bytes), the manifest says {shard['sha256']} "
                                   f"({shard['num_bytes']} bytes)")
            continue
        spans = indexed.get(name, [])
        count = len(spans)
        if deep:
            try:
                count = sum(1 for _ in iter_spans(url, spans))
            except ShardReadError as exc:
                result.problems.append(f"{name}: {exc}")
                continue
        if count != shard["num_samples"] or len(spans) != shard["num_samples"]:
            result.problems.append(f"{name}: {count} samples read, {len(spans)} indexed, the manifest "
                                   f"says {shard['num_samples']}")
        result.samples += count
    listed = {s["name"] for s in manifest["shards"]}
    for name in _children(where):
        if name.endswith(".tar") and name not in listed:
            result.problems.append(f"{name}: a shard the manifest does not list")
    return result


def parent_of(root: str, dataset: str, version: str) -> Optional[str]:
    """The highest committed version of ``dataset`` below ``version``, or None."""
    below = [v for v in list_versions(root, dataset) if version_key(v) < version_key(version)]
    return below[-1] if below else None
