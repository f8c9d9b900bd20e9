"""Write one project's normalized annotations into a folder of its own, atomically, with a manifest.

One job: put what :func:`annotation.normalize.normalize_export` returned for one project where a
later stage (publish) can find it, pin it and hash it. Layout, one folder per project under the
output root, named by :func:`annotation.projects.safe_name` of the project title (two projects of
one kind never share a file)::

    {out}/{safe title}/
        {Dataset}.parquet     records of each dataset the export gave (VideoPoint.parquet, ...)
        failures.parquet      failure records (schemas ``failure``), possibly none
        agreements.jsonl      one agreement per task with two or more usable annotations
        review.jsonl          tasks held back for a person, with every annotator's record
        normalized.json       the manifest, written last:
            {"format": 1, "project": title,
             "snapshots": [{"version", "file", "path", "sha256", "bytes", "tasks", "annotations"}],
             "inputs": {"clips"|"videos": {"path", "sha256", "bytes"}} (the ingest tables read, if any),
             "outputs": {file name: {"sha256", "bytes", "rows"}},
             "counts": {"records": {dataset: n}, "failures": {error type: n}, "review": n,
                        "agreements": n, "unannotated": n}}

The folder is built under a temporary name and renamed into place, an older folder of the same
project moved aside first and removed after (``shards.atomic.atomic_dir``), so a reader sees the
old outputs or the new ones, never a mix. Leftovers of a run that died are removed by the next
(``shards.atomic.sweep`` of this project's temporary names whose process is gone).
A folder of that name that has no ``normalized.json`` is not ours and is never replaced. The
manifest holds no time stamp: the same snapshot gives byte-identical files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

from annotation.projects import safe_name
from shards.atomic import atomic_dir, sweep
from schemas.arrow import to_table

__all__ = ["MANIFEST", "OutputError", "file_digest", "write_outputs", "read_manifest"]

MANIFEST = "normalized.json"
FORMAT = 1


class OutputError(RuntimeError):
    """The output folder cannot be written as asked (the message says why and what to do)."""


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` of a file, read in 1 MiB blocks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"path": str(Path(path).resolve()), "sha256": h.hexdigest(), "bytes": size}


def _jsonl(path: Path, items: list) -> int:
    with open(path, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(dataclasses.asdict(item), sort_keys=True, default=str) + "\n")
    return len(items)


def _stage(folder: Path, result: Any) -> dict[str, dict[str, Any]]:
    """Write every output file into ``folder``; return ``{file name: {"rows"}}``."""
    import pyarrow.parquet as pq

    rows: dict[str, dict[str, Any]] = {}
    for dataset, records in sorted(result.records.items()):
        pq.write_table(to_table(dataset, records), folder / f"{dataset}.parquet")
        rows[f"{dataset}.parquet"] = {"rows": len(records)}
    pq.write_table(to_table("failure", result.failures), folder / "failures.parquet")
    rows["failures.parquet"] = {"rows": len(result.failures)}
    rows["agreements.jsonl"] = {"rows": _jsonl(folder / "agreements.jsonl", result.agreements)}
    rows["review.jsonl"] = {"rows": _jsonl(folder / "review.jsonl", result.review)}
    return rows


def write_outputs(out_root: str | os.PathLike, project: str, result: Any, snapshots: list[dict[str, Any]],
                  inputs: Optional[dict[str, dict[str, Any]]] = None) -> Path:
    """Write a project's normalized outputs to ``{out_root}/{safe title}/`` (layout in the module doc).

    Args:
        out_root: the output root (created if missing).
        project: the project title.
        result: a ``NormalizedExport``.
        snapshots: the snapshot versions read: ``{"version", "file", "path", "sha256", "bytes", ...}`` each.
        inputs: other inputs read, by role (``{"clips": file_digest(clips.parquet)}``).

    Returns:
        The project's output folder.

    Raises:
        OutputError: the output root is not a writable folder, or the project's folder exists and
            is not a normalize output.
    """
    root, name = Path(out_root), safe_name(project)
    if root.exists() and not root.is_dir():
        raise OutputError(f"--out {root} is a file, not a folder: pass a folder for the normalized outputs")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {root} cannot be created: {exc.strerror or exc}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise OutputError(f"--out {root} is not writable: pass a folder you can write to")
    final = root / name
    if final.exists() and not (final / MANIFEST).is_file():
        raise OutputError(f"{final} exists and is not a normalize output (no {MANIFEST}); it is left alone: "
                          f"pass another --out")
    sweep(root, name=name, only_dead=True)  # what runs that died left of this project
    with atomic_dir(final, replace=True) as staged:
        staging = Path(staged)
        outputs = _stage(staging, result)
        for file_name, entry in outputs.items():
            digest = file_digest(staging / file_name)
            entry.update(sha256=digest["sha256"], bytes=digest["bytes"])
        manifest = {
            "format": FORMAT, "project": project, "snapshots": snapshots, "inputs": inputs or {},
            "outputs": outputs,
            "counts": {"records": {k: len(v) for k, v in sorted(result.records.items())},
                       "failures": result.failure_counts(), "review": len(result.review),
                       "agreements": len(result.agreements), "unannotated": len(result.unannotated)},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return final


def read_manifest(folder: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """The manifest of a project's normalized folder, its outputs checked against their sha256.

    Raises:
        OutputError: no manifest, or an output file missing or changed since it was written.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{folder} is not a normalize output (no {MANIFEST}); run 'annotate normalize'") from None
    if verify:
        for file_name, entry in manifest["outputs"].items():
            path = folder / file_name
            if not path.is_file() or file_digest(path)["sha256"] != entry["sha256"]:
                raise OutputError(f"{path} is missing or changed since normalize wrote it; run it again")
    return manifest
