"""What changed between two published versions of a dataset, sample by sample, and why.

One job: compare two committed versions by their indexes (key -> split and checksum of the
sample's bytes) and explain each removed sample from the newer version's own records of what it
left out: ``exclusions.jsonl`` (takedown, license filter, review rejection: by media key) and
``failures.parquet`` (records that broke a rule, whose input names its media). A sample that no
longer appears and has no such entry is "no records" (its records are gone from the inputs).

Result shape: ``{"added": [key], "removed": {key: reason}, "changed": [key], "moved": {key:
"a -> b"}, "unchanged": n, "a": version, "b": version}``.
"""
from __future__ import annotations

import json
from typing import Any

from shards.published import join, read_manifest, read_table, split_spans, version_dir

__all__ = ["diff_versions", "removal_reasons"]


def _samples(root: str, dataset: str, version: str) -> dict[str, tuple[str, str]]:
    manifest = read_manifest(root, dataset, version)
    out = {}
    for split in manifest["splits"]:
        for row in split_spans(root, dataset, version, split):
            out[row["key"]] = (split, row["xxh3"])
    return out


def removal_reasons(root: str, dataset: str, version: str) -> dict[str, str]:
    """Media key -> why records of that media were left out of ``version`` (reasons joined)."""
    import fsspec

    where = version_dir(root, dataset, version)
    reasons: dict[str, set[str]] = {}
    with fsspec.open(join(where, "exclusions.jsonl"), "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if row.get("media_key"):
                    reasons.setdefault(row["media_key"], set()).add(row["reason"])
    for row in read_table(join(where, "failures.parquet"), ["input", "error_type"]).to_pylist():
        try:
            record = json.loads(row["input"])
        except ValueError:
            continue
        media = record.get("clip_id") or record.get("image_set_id") if isinstance(record, dict) else None
        if media:
            reasons.setdefault(media, set()).add(f"failed: {row['error_type']}")
    return {k: ", ".join(sorted(v)) for k, v in reasons.items()}


def diff_versions(root_a: str, dataset: str, a: str, b: str, root_b: str | None = None) -> dict[str, Any]:
    """Samples added, removed (with the reason), changed and moved between versions ``a`` and ``b``.

    Raises:
        VersionNotFound: either version is not committed.
    """
    root_b = root_b or root_a
    old, new = _samples(root_a, dataset, a), _samples(root_b, dataset, b)
    why = removal_reasons(root_b, dataset, b)
    removed = {k: why.get(k, "no records in the inputs of the newer version") for k in sorted(set(old) - set(new))}
    common = sorted(set(old) & set(new))
    return {
        "dataset": dataset, "a": a, "b": b,
        "added": sorted(set(new) - set(old)),
        "removed": removed,
        "changed": [k for k in common if old[k][1] != new[k][1]],
        "moved": {k: f"{old[k][0]} -> {new[k][0]}" for k in common if old[k][0] != new[k][0]},
        "unchanged": sum(1 for k in common if old[k] == new[k]),
    }
