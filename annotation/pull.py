"""Pull: Label Studio exports saved as raw, versioned snapshot files, and read back offline.

One job: take a snapshot export of a project (video tracks exported with their interpolated
frames), save the server's bytes unchanged as a new version when something changed since the
last one, and say what changed. Later stages read these files through :func:`load_snapshots` /
:func:`iter_snapshots`, never the live API (not from Beam workers either), so the saved snapshots
alone rebuild everything: the demo and CI run later stages with no server (``--no-labelstudio``).

Layout (one folder per project, named by :func:`annotation.projects.safe_name` of its title)::

    {snapshots_dir}/{safe title}/
        000001-20250101T120000Z.json   raw export: [{id, data, annotations: [...], predictions, ...}]
        000002-20250102T093000Z.json   versions are numbered, never overwritten
        index.json                     {"format": 1, "project": {id, title, url},
                                        "snapshots": [{version, file, sha256, bytes, tasks, annotations,
                                                       created, export_id, changes: {...}}],
                                        "last_pull": {at, version, changed}}

Both files are written to a temporary name and renamed. A pull that finds nothing changed writes
no snapshot: it only records ``last_pull`` (``changed: false``) in ``index.json``.

Changes are found by diffing, never trusted from the server: annotations by (annotation id,
``updated_at``) -> new, updated, deleted; tasks by (task id, ``updated_at``); predictions by
(prediction id, ``updated_at``). Anything in any of them makes a new version.

Export calls (``../shared/reference/labelstudio.md``, "SDK 2.x calls that work"):
``projects.exports.create(id, serialization_options={"interpolate_key_frames": True,
"predictions": {"only_id": False}})`` (full predictions, not just their ids), poll
``exports.get`` until ``completed``, then ``exports.download`` with no export type (the
converters fail on the multi-frame ``valueList`` configs); the export is deleted on the server
afterwards, the snapshot being the record.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from annotation.projects import LabelStudioError, api_errors, base_url, describe_api_error, safe_name
from shards.atomic import write_bytes, write_json

__all__ = ["AnnotationRef", "Changes", "PullResult", "Snapshot", "SnapshotError", "pull", "diff_exports",
           "iter_snapshots", "find_snapshot", "load_snapshots", "snapshot_folder"]

log = logging.getLogger(__name__)

INDEX = "index.json"
FORMAT = 1
_NAME = re.compile(r"^(\d{6})-(\d{8}T\d{6}Z)\.json$")


class SnapshotError(LabelStudioError):
    """A snapshot folder is missing, inconsistent or belongs to another project."""


class AnnotationRef(NamedTuple):
    """One annotation in a diff."""

    task_id: int
    annotation_id: int
    updated_at: str | None


@dataclass
class Changes:
    """What changed between two exports."""

    new: list[AnnotationRef] = field(default_factory=list)
    updated: list[AnnotationRef] = field(default_factory=list)
    deleted: list[AnnotationRef] = field(default_factory=list)
    """Annotations; ``deleted`` carries the previous snapshot's ``updated_at``."""
    tasks_new: list[int] = field(default_factory=list)
    tasks_updated: list[int] = field(default_factory=list)
    tasks_deleted: list[int] = field(default_factory=list)
    predictions_changed: int = 0
    """Predictions new, updated or deleted."""

    def __bool__(self) -> bool:
        return any((self.new, self.updated, self.deleted, self.tasks_new, self.tasks_updated, self.tasks_deleted,
                    self.predictions_changed))

    def counts(self) -> dict[str, int]:
        return {"new": len(self.new), "updated": len(self.updated), "deleted": len(self.deleted),
                "tasks_new": len(self.tasks_new), "tasks_updated": len(self.tasks_updated),
                "tasks_deleted": len(self.tasks_deleted), "predictions_changed": self.predictions_changed}


@dataclass(frozen=True)
class Snapshot:
    """One saved version (an entry of ``index.json``)."""

    version: int
    path: Path
    sha256: str
    tasks: int
    annotations: int
    created: str

    def read(self, verify: bool = True) -> bytes:
        """The saved bytes. Raises SnapshotError when their sha256 is not the recorded one."""
        raw = self.path.read_bytes()
        if verify and hashlib.sha256(raw).hexdigest() != self.sha256:
            raise SnapshotError(f"{self.path}: sha256 differs from {INDEX}; the snapshot was modified")
        return raw

    def load(self, verify: bool = True) -> list[dict[str, Any]]:
        """The export: a list of tasks. Raises SnapshotError when the bytes' sha256 is not the recorded one."""
        return json.loads(self.read(verify))


@dataclass
class PullResult:
    """What a pull did."""

    changed: bool
    version: int
    """The new version, or the latest one when nothing changed (0: none yet)."""
    path: Path | None
    """The new snapshot file, None when nothing changed."""
    changes: Changes
    tasks: int
    annotations: int
    seconds: float


def snapshot_folder(snapshots_dir: str | os.PathLike, project: Any) -> Path:
    """``{snapshots_dir}/{safe title}`` for a project object or a title."""
    title = project if isinstance(project, str) else project.title
    return Path(snapshots_dir) / safe_name(title)


def _versions(tasks: list[dict[str, Any]], what: str) -> dict[int, tuple[int, str | None]]:
    out: dict[int, tuple[int, str | None]] = {}
    for task in tasks:
        for item in task.get(what) or []:
            if isinstance(item, dict):  # an export made with only_id lists bare ids
                out[item["id"]] = (task["id"], item.get("updated_at"))
            else:
                out[int(item)] = (task["id"], None)
    return out


def diff_exports(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> Changes:
    """Diff two exports by (annotation id, updated_at), (task id, updated_at), (prediction id, updated_at).

    Args:
        old: the previous export (``[]`` for none).
        new: the current export.

    Returns:
        :class:`Changes`; lists sorted by id.
    """
    changes = Changes()
    before, after = _versions(old, "annotations"), _versions(new, "annotations")
    for aid in sorted(after):
        ref = AnnotationRef(after[aid][0], aid, after[aid][1])
        if aid not in before:
            changes.new.append(ref)
        elif before[aid][1] != after[aid][1]:
            changes.updated.append(ref)
    changes.deleted = [AnnotationRef(before[a][0], a, before[a][1]) for a in sorted(set(before) - set(after))]
    t0 = {t["id"]: t.get("updated_at") for t in old}
    t1 = {t["id"]: t.get("updated_at") for t in new}
    changes.tasks_new = sorted(set(t1) - set(t0))
    changes.tasks_deleted = sorted(set(t0) - set(t1))
    changes.tasks_updated = sorted(t for t in set(t0) & set(t1) if t0[t] != t1[t])
    p0, p1 = _versions(old, "predictions"), _versions(new, "predictions")
    changes.predictions_changed = len(set(p0.items()) ^ set(p1.items()))
    return changes


def _read_index(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / INDEX).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise SnapshotError(f"{folder / INDEX} is not valid JSON ({exc})") from None


def iter_snapshots(snapshots_dir: str | os.PathLike, project: Any) -> Iterator[Snapshot]:
    """Every saved version of a project, oldest first; needs no server.

    Args:
        snapshots_dir: the snapshots root given to :func:`pull`.
        project: a project title or an object with ``.title``.

    Raises:
        SnapshotError: an index that lists a missing file.
    """
    folder = snapshot_folder(snapshots_dir, project)
    index = _read_index(folder) or {"snapshots": []}
    for entry in sorted(index["snapshots"], key=lambda e: e["version"]):
        path = folder / entry["file"]
        if not path.is_file():
            raise SnapshotError(f"{folder / INDEX} lists {entry['file']}, which is missing")
        yield Snapshot(entry["version"], path, entry["sha256"], entry["tasks"], entry["annotations"], entry["created"])


def find_snapshot(snapshots_dir: str | os.PathLike, project: Any, version: int | None = None) -> Snapshot:
    """The latest saved version of a project (or a given version); needs no server.

    Raises:
        SnapshotError: no snapshots folder, no snapshot of the project, or not that version.
    """
    title = project if isinstance(project, str) else project.title
    if not Path(snapshots_dir).is_dir():
        raise SnapshotError(f"the snapshots folder {snapshots_dir} does not exist: pass the --snapshots folder "
                            f"'annotate pull' saved {title!r} into, or run a pull first")
    snaps = list(iter_snapshots(snapshots_dir, project))
    if version is not None:
        found = [s for s in snaps if s.version == version]
        if not found and snaps:
            raise SnapshotError(f"no snapshot version {version} of {title!r} in "
                                f"{snapshot_folder(snapshots_dir, project)}; it has versions {[s.version for s in snaps]}")
        snaps = found
    if not snaps:
        raise SnapshotError(f"no snapshot{'' if version is None else f' version {version}'} of {title!r} in "
                            f"{snapshot_folder(snapshots_dir, project)}; run a pull first")
    return snaps[-1]


def load_snapshots(snapshots_dir: str | os.PathLike, project: Any, version: int | None = None) -> list[dict[str, Any]]:
    """The latest saved export of a project (or a given version), checked against its sha256.

    Every snapshot is a complete export, so the latest one alone is the current state.

    Raises:
        SnapshotError: no snapshot (or not that version), or a modified file.
    """
    return find_snapshot(snapshots_dir, project, version).load()


def _export(client: Any, project_id: int, timeout: float, poll_interval: float) -> tuple[bytes, int]:
    """Create, wait for, download and delete one snapshot export: (raw bytes, export id)."""
    exports = client.projects.exports
    snap = exports.create(project_id, title=f"molmo2-data pull {time.time():.0f}",
                          serialization_options={"interpolate_key_frames": True,
                                                 "predictions": {"only_id": False}})
    deadline = time.monotonic() + timeout
    status = getattr(snap, "status", None)
    while status != "completed":
        if status == "failed":
            raise LabelStudioError(f"export {snap.id} of project {project_id} failed on the server")
        if time.monotonic() > deadline:
            raise LabelStudioError(f"export {snap.id} of project {project_id} not completed after {timeout:.0f} s "
                                   f"(status {status!r})")
        time.sleep(poll_interval)
        status = exports.get(project_id, snap.id).status
    raw = b"".join(exports.download(project_id, snap.id))
    try:
        exports.delete(project_id, snap.id)
    except Exception as exc:  # the snapshot is saved; a leftover export on the server is harmless
        cause = describe_api_error(exc.body) if hasattr(exc, "body") else type(exc).__name__  # never its headers
        log.warning("could not delete export %s of project %d: %s", snap.id, project_id, cause)
    return raw, snap.id


def pull(client: Any, project: Any, snapshots_dir: str | os.PathLike, *, timeout: float = 600.0,
         poll_interval: float = 0.5) -> PullResult:
    """Export a project and save it as a new snapshot version if anything changed since the last.

    Args:
        client: a ``LabelStudio`` client.
        project: the project (``.id``, ``.title``).
        snapshots_dir: root of the snapshot folders (created if missing).
        timeout: seconds to wait for the export to complete.
        poll_interval: seconds between status polls.

    Returns:
        A :class:`PullResult`; ``changes`` compares with the previous snapshot (all new on the first).

    Raises:
        SnapshotError: the folder holds snapshots of another project id with the same title.
        LabelStudioError: the export failed or timed out.
        LabelStudioUnreachable, LabelStudioAuthError: see :func:`annotation.projects.api_errors`.
    """
    start, url = time.perf_counter(), base_url(client)
    _check_folder(snapshots_dir, project, url)
    with api_errors(url, f"export project {project.title!r} (id {project.id})"):
        raw, export_id = _export(client, project.id, timeout, poll_interval)
    return save_snapshot(snapshots_dir, project, raw, url=url, export_id=export_id, started=start)


def _check_folder(snapshots_dir: str | os.PathLike, project: Any, url: str) -> dict[str, Any]:
    folder = snapshot_folder(snapshots_dir, project)
    folder.mkdir(parents=True, exist_ok=True)
    index = _read_index(folder) or {"format": FORMAT, "project": {"id": project.id, "title": project.title,
                                                                   "url": url}, "snapshots": []}
    if index["project"]["id"] != project.id:
        raise SnapshotError(f"{folder} holds snapshots of project id {index['project']['id']}, not {project.id} "
                            f"(same title {project.title!r}); use another snapshots folder or title")
    return index


def save_snapshot(snapshots_dir: str | os.PathLike, project: Any, raw: bytes, *, url: str = "",
                  export_id: int | None = None, started: float | None = None) -> PullResult:
    """Save raw export bytes as the project's next snapshot version, if they differ from the last.

    ``pull`` calls this with what the server exported; an export made elsewhere (e.g. the demo's
    offline simulated annotators) is saved the same way, so every later stage reads one format.

    Args:
        snapshots_dir: root of the snapshot folders.
        project: anything with ``.id`` and ``.title``.
        raw: the export's bytes (a JSON list of tasks).
        url: the server it came from, for the index ("" when none).
        export_id: the server's export id, if any.
        started: ``time.perf_counter()`` at the start of the pull, for ``PullResult.seconds``.

    Raises:
        SnapshotError: the folder holds snapshots of another project id with the same title.
        ValueError: ``raw`` is not a JSON list.
    """
    start = time.perf_counter() if started is None else started
    folder = snapshot_folder(snapshots_dir, project)
    index = _check_folder(snapshots_dir, project, url)
    tasks = json.loads(raw)
    if not isinstance(tasks, list):
        raise ValueError(f"an export is a JSON list of tasks, got {type(tasks).__name__}")
    snaps = list(iter_snapshots(snapshots_dir, project))
    previous = snaps[-1].load() if snaps else []
    changes = diff_exports(previous, tasks)
    n_ann = sum(len(t.get("annotations") or []) for t in tasks)
    now = dt.datetime.now(dt.timezone.utc)
    changed = bool(changes) or not snaps
    version, path = (snaps[-1].version if snaps else 0), None
    if changed:
        on_disk = [int(m.group(1)) for m in map(_NAME.match, os.listdir(folder)) if m]
        version = max([version, *on_disk]) + 1  # a file left by an interrupted pull is never overwritten
        path = folder / f"{version:06d}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
        write_bytes(path, raw, fsync=True)
        index["snapshots"].append({
            "version": version, "file": path.name, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
            "tasks": len(tasks), "annotations": n_ann, "created": now.isoformat(), "export_id": export_id,
            "changes": changes.counts()})
    index["last_pull"] = {"at": now.isoformat(), "version": version, "changed": changed}
    write_json(folder / INDEX, index, indent=1, fsync=True)
    result = PullResult(changed, version, path, changes, len(tasks), n_ann, time.perf_counter() - start)
    log.info("project %s: %s (version %d; %d tasks, %d annotations; %s)", project.id,
             "new snapshot" if changed else "unchanged", version, len(tasks), n_ann, changes.counts())
    return result
