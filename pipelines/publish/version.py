"""Run a publish and commit each dataset's version: ``manifest.json`` written last.

One job: decide per dataset whether to publish (new version), skip (the same version exists:
no-op) or refuse (a different version exists under that number: say what differs), run
``PublishDatasets`` for the new ones, and assemble, from what the run staged, each version's
final files in a fixed order that ends with the manifest, the commit point.

A version folder without ``manifest.json`` is an unfinished publish: readers ignore it and the
next publish of that version deletes it first, so ``kill -9`` at any moment followed by the same
command gives the same version. The comparison with an existing version needs no run: its
manifest's head (inputs with their hashes, code version, config, parent) decides the rest
(outputs are a deterministic function of it; the tests check byte-identical reruns).
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from pipelines.publish import storage
from pipelines.publish.config import PublishConfig
from pipelines.publish.inputs import Inputs, InputPin, code_version, collect_inputs
from shards.published import (
    FORMAT, MANIFEST, VersionNotFound, join, manifest_bytes, parent_of, read_manifest, version_dir,
)

__all__ = ["PublishResult", "VersionConflict", "publish", "manifest_head", "differences"]

_HEAD = ("format", "dataset", "version", "parent_version", "inputs", "code", "config")


class VersionConflict(ValueError):
    """A version exists under that number with different inputs, code or config."""


@dataclass
class PublishResult:
    """What a publish did, per dataset."""

    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Dataset -> its new manifest."""
    unchanged: list[str] = field(default_factory=list)
    """Datasets whose identical version already existed (no-op)."""
    blocked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Dataset -> the dataset rules it broke (nothing committed)."""
    seconds: float = 0.0


def _pins_for(dataset: str, pins: list[InputPin], record_files: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The inputs that shape one dataset: all media, its own record files, reviews, takedown."""
    out = []
    for pin in pins:
        if pin.kind == "records":
            names = {p.rsplit("/", 1)[-1] for d, p in record_files if d == dataset and p.startswith(pin.uri + "/")}
            if not names:
                continue
            files = {n: h for n, h in pin.files.items() if n in names or n.endswith((".json", "review.jsonl"))}
            pin = InputPin(pin.kind, pin.uri, files)
        out.append(pin.to_manifest())
    return out


def manifest_head(dataset: str, config: PublishConfig, inputs: Inputs, root: str,
                  code: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The part of a manifest known before running: what the version is made from."""
    return {
        "format": FORMAT,
        "dataset": dataset,
        "version": config.version,
        "parent_version": config.parent_version or parent_of(root, dataset, config.version),
        "inputs": _pins_for(dataset, inputs.pins, inputs.record_files),
        "code": code or code_version(),
        "config": config.to_manifest(),
    }


def differences(old: Any, new: Any, path: str = "", limit: int = 12) -> list[str]:
    """Readable differences between two JSON values (``config.shard_max_bytes: 1 -> 2``)."""
    out: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            where = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append(f"{where}: added")
            elif k not in new:
                out.append(f"{where}: removed")
            else:
                out.extend(differences(old[k], new[k], where, limit))
    elif isinstance(old, list) and isinstance(new, list) and all(isinstance(x, dict) for x in old + new):
        if len(old) != len(new):
            out.append(f"{path}: {len(old)} entries -> {len(new)}")
        for i, (a, b) in enumerate(zip(old, new)):
            out.extend(differences(a, b, f"{path}[{i}]", limit))
    elif old != new:
        show = lambda v: json.dumps(v)[:80]  # noqa: E731
        out.append(f"{path}: {show(old)} -> {show(new)}")
    return out[:limit]


def _plan(datasets: list[str], config: PublishConfig, inputs: Inputs, root: str) -> tuple[list, list, dict]:
    code = code_version()
    todo, same, heads, conflicts = [], [], {}, []
    for dataset in datasets:
        head = manifest_head(dataset, config, inputs, root, code)
        try:
            existing = read_manifest(root, dataset, config.version)
        except VersionNotFound:
            todo.append(dataset)
            heads[dataset] = head
            continue
        diff = differences({k: existing.get(k) for k in _HEAD}, head)
        if diff:
            conflicts.append(f"{dataset} {config.version} exists with other " + "; ".join(diff))
        else:
            same.append(dataset)
    if conflicts:
        raise VersionConflict("refusing to publish over an existing version (published versions are immutable; "
                              "pick a new version number): " + " | ".join(conflicts))
    return todo, same, heads


def publish(root: str, ingest: list[str], records: list[str], config: PublishConfig, reviews: list[str] = (),
            takedown: Optional[str] = None, beam_args: Optional[list[str]] = None,
            test_pipeline: Any = None) -> PublishResult:
    """Publish ``config.version`` of every selected dataset under ``root``.

    Args:
        root: the published tree (local path or fsspec URL; ``memory://`` only with the in-memory runner).
        ingest, records, reviews, takedown: the inputs (see ``pipelines.publish.inputs``).
        config: the settings.
        beam_args: Beam pipeline options (default: FnApiRunner in memory).
        test_pipeline: a pipeline to run on instead of a new one.

    Returns:
        The ``PublishResult``.

    Raises:
        InputError: a missing or malformed input. VersionConflict: an existing version differs.
        PublishConfigError: a dataset asked for that no record folder holds.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from pipelines.publish.config import PublishConfigError
    from pipelines.publish.pipeline import PublishDatasets

    started = time.monotonic()
    inputs = collect_inputs(list(ingest), list(records), list(reviews), takedown)
    datasets = list(config.datasets or inputs.datasets)
    missing = sorted(set(datasets) - set(inputs.datasets))
    if missing:
        raise PublishConfigError(f"no records folder holds {', '.join(missing)} (found: {', '.join(inputs.datasets)})")
    todo, same, heads = _plan(datasets, config, inputs, root)
    result = PublishResult(unchanged=same)
    for dataset in same:  # a run killed after its commit may have left its staging behind
        storage.remove(join(version_dir(root, dataset, config.version), ".publish"))
    if todo:
        for dataset in todo:  # no manifest: whatever is there is an unfinished publish
            storage.remove(version_dir(root, dataset, config.version))
        options = PipelineOptions(beam_args or [])
        runner = options.view_as(StandardOptions).runner
        if runner is None:
            from apache_beam.runners.portability.fn_api_runner import FnApiRunner

            runner = FnApiRunner()
        pipeline = test_pipeline or beam.Pipeline(runner=runner, options=options)
        with pipeline as p:
            _ = p | "Publish" >> PublishDatasets(inputs, config, root, todo)
        from pipelines.publish.finalize import finalize

        for dataset in todo:
            manifest, violations = finalize(root, dataset, config, heads[dataset],
                                            under_review=inputs.under_review.get(dataset, 0))
            if violations:
                result.blocked[dataset] = violations
            else:
                result.published[dataset] = manifest
    result.seconds = time.monotonic() - started
    return result


def build_info() -> dict[str, Any]:
    """When and where a version was built (kept out of the manifest)."""
    return {"built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
            "python": platform.python_version()}


def write_manifest(root: str, dataset: str, version: str, manifest: dict[str, Any]) -> None:
    """Commit a version: write its manifest (the last file written)."""
    storage.write_bytes(join(version_dir(root, dataset, version), MANIFEST), manifest_bytes(manifest))
