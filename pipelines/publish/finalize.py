"""Assemble one dataset's version from what the publish run staged, and commit it.

One job: read ``<version>/.publish/`` (shard infos and spans, failures, exclusions, tallies,
histograms, member names, violations, previews), then write, in this order, ``index/{split}.parquet``,
``failures.parquet``, ``exclusions.jsonl``, ``stats.json``, ``README.md``, ``report.html``,
``build_info.json``, remove the staging folder, and write ``manifest.json`` last. A dataset that
broke a dataset rule (or has no sample) gets nothing: its version folder is removed.

Every file but ``build_info.json`` is a pure function of the staged results, so reruns give the
same bytes.
"""
from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Optional

from pipelines.publish import storage
from pipelines.publish.config import PublishConfig
from shards.published import join, version_dir

__all__ = ["finalize", "read_staged"]


def _json(url: str, default: Any) -> Any:
    try:
        return json.loads(storage.read_bytes(url))
    except FileNotFoundError:
        return default


def read_staged(root: str, dataset: str, version: str) -> dict[str, Any]:
    """Everything a run staged for one dataset, as plain data."""
    from pipelines.publish.pipeline import staging_dir

    where = staging_dir(root, dataset, version)
    shards = [_json(join(where, "shards", n), None)
              for n in storage.listdir(join(where, "shards")) if n.endswith(".json")]
    previews = []
    for name in storage.listdir(join(where, "preview")):
        if name.endswith(".png"):
            key = name[:-4]
            caption = _json(join(where, "preview", key + ".json"), {}).get("caption", key)
            previews.append({"key": key, "png": storage.read_bytes(join(where, "preview", name)), "caption": caption})
    return {
        "shards": sorted(shards, key=lambda s: (s["split"], s["number"])),
        "failures": _json(join(where, "failures.json"), []),
        "exclusions": _json(join(where, "exclusions.json"), []),
        "tallies": {(g, n): c for g, n, c in _json(join(where, "tallies.json"), [])},
        "histograms": _hist(_json(join(where, "histograms.json"), [])),
        "members": _json(join(where, "members.json"), []),
        "violations": _json(join(where, "violations.json"), []),
        "previews": sorted(previews, key=lambda p: p["key"]),
    }


def _hist(rows: list) -> dict[str, dict[Any, int]]:
    out: dict[str, dict[Any, int]] = {}
    for metric, value, n in rows:
        out.setdefault(metric, {})[value] = n
    return out


def _index_parquet(split: str, shards: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"key": [], "shard": [], "position": [], "offset": [], "length": [], "xxh3": []}
    position = 0
    for shard in shards:
        if shard["split"] != split:
            continue
        for key, offset, length, sha in shard["spans"]:
            for name, value in zip(rows, (key, shard["name"], position, offset, length, sha)):
                rows[name].append(value)
            position += 1
    schema = pa.schema([("key", pa.string()), ("shard", pa.string()), ("position", pa.int64()),
                        ("offset", pa.int64()), ("length", pa.int64()), ("xxh3", pa.string())])
    out = io.BytesIO()
    pq.write_table(pa.table(rows, schema=schema), out)
    return out.getvalue()


def _failures_parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow.parquet as pq

    from schemas.arrow import to_table

    out = io.BytesIO()
    pq.write_table(to_table("failure", rows), out)
    return out.getvalue()


def finalize(root: str, dataset: str, config: PublishConfig, head: dict[str, Any],
             under_review: int = 0) -> tuple[Optional[dict[str, Any]], list[dict[str, Any]]]:
    """Write a dataset's version from its staged results and commit it.

    Args:
        under_review: tasks of this dataset the annotation stage held back (counted in stats).

    Returns:
        ``(manifest, [])`` when committed, ``(None, violations)`` when a dataset rule blocked it.
    """
    from pipelines.publish.card import render_card
    from pipelines.publish.report import render_report
    from pipelines.publish.stats import build_stats
    from pipelines.publish.version import build_info, write_manifest

    version = config.version
    where = version_dir(root, dataset, version)
    staged = read_staged(root, dataset, version)
    violations = staged["violations"]
    if not violations and not staged["shards"]:
        violations = [{"rule": "empty", "message": "no sample to publish (every record failed or was excluded)",
                       "keys": [], "count": 0}]
    if violations:
        storage.remove(where)
        return None, violations
    shards = [{k: s[k] for k in ("name", "split", "sha256", "num_samples", "num_bytes", "first_key", "last_key")}
              for s in staged["shards"]]
    if under_review:
        staged["tallies"][("review", "under_review")] = under_review
    stats = build_stats(dataset, version, staged["tallies"], staged["histograms"], shards)
    files: dict[str, bytes] = {}
    for split in stats["splits"]:
        files[f"index/{split}.parquet"] = _index_parquet(split, staged["shards"])
    files["failures.parquet"] = _failures_parquet(staged["failures"])
    files["exclusions.jsonl"] = "".join(json.dumps(x, sort_keys=True, ensure_ascii=False) + "\n"
                                        for x in staged["exclusions"]).encode()
    files["stats.json"] = (json.dumps(stats, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
    manifest = {**head,
                "splits": {s: {"samples": v["samples"], "records": v["records"], "bytes": v["bytes"]}
                           for s, v in stats["splits"].items()},
                "shards": shards}
    files["README.md"] = render_card(manifest, stats, staged["members"]).encode()
    files["report.html"] = render_report(manifest, stats, staged["previews"], staged["failures"]).encode()
    for name, data in sorted(files.items()):
        storage.write_bytes(join(where, name), data)
    storage.write_bytes(join(where, "build_info.json"), (json.dumps(build_info(), sort_keys=True) + "\n").encode())
    from pipelines.publish.pipeline import STAGING

    storage.remove(join(where, STAGING))
    manifest["files"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                         for name, data in sorted(files.items())}
    from pipelines.common.inject import maybe_fail

    maybe_fail("publish_commit", dataset)  # tests: a crash after every file but the manifest
    write_manifest(root, dataset, version, manifest)
    return manifest, []
