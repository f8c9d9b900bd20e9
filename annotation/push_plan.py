"""Check everything a push needs before anything is created: no empty project, no unusable task.

One job: from an ingest output, a project kind and what to push, decide the tasks a push will
make, or raise :class:`PushCheckError` saying what is wrong and what to do, before a project,
a media file or a task exists. :func:`annotation.push.push` runs :func:`plan_push` first;
``molmo2-data annotate push`` runs it even before it creates the project.

Checked, in this order (all offline, from the ingest output's tables, no media read):

* the kind; the project title gives a media folder name; the media root is a writable folder;
* the ingest folder is an ingest output (``clips.parquet``, ``imagesets.parquet`` for image sets);
  ``video_point`` and ``video_track`` also read ``videos.parquet``: their records hold the source
  video's ``source`` (and VideoPoint its ``duration``), so every clip's video must be there;
* the items: a query for the point and track kinds; every key in the ingest output; well-formed
  predictions; a task key given twice only with the same data (by building every task with
  placeholder media URLs, through the same :func:`annotation.push.build_tasks`);
* video kinds: each clip has its constant-frame-rate mp4 (ingest ``--cfr-mp4``) and the file is there;
* ``video_point``: VideoPoint needs Molmo 2's 0.5 s grid, and a point's time is one of the clip's
  stored sample times, so every sample time of a pushed clip must be on that grid (or the clip's
  last instant: ``schemas.records.point_time_on_grid``). A clip sampled otherwise (an 8 s clip at
  ``sampling.max_frames: 16`` is sampled every 0.533 s; any clip over 63.5 s at the defaults is
  sampled evenly) is refused, naming the clips; with ``skip_off_grid`` the other clips are pushed
  and the skipped ones are named in a warning. Either way nobody labels a frame whose label
  ``annotate normalize`` could not keep.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from annotation import tasks as T
from annotation.projects import safe_name
from schemas.records import point_time_on_grid
from shards.layout import IngestLayout

__all__ = ["PushItem", "PushPlan", "PushCheckError", "plan_push", "read_items", "read_ingest_table",
           "off_grid_clips", "QUERY_KINDS", "VIDEO_KINDS", "SOURCE_KINDS"]

VIDEO_KINDS = ("video_track", "ask_model_anything", "caption")
SOURCE_KINDS = T.SOURCE_KINDS
QUERY_KINDS = ("video_point", "video_track", "multi_image_point")
SHOWN = 5
"""Clips or keys named in one message; the rest are counted."""


class PushCheckError(ValueError):
    """What a push was given cannot make good tasks; the message says what and what to do."""


@dataclass(frozen=True)
class PushItem:
    """One task to push."""

    key: str
    """Clip id (image-set id for multi_image_point and multi_image_qa)."""
    query: str | None = None
    """What annotators look for (the expression for video_track); required by the point and track kinds."""
    label: str | None = None
    """Dataset label written with the answers; defaults to ``query``."""
    predictions: tuple[dict[str, Any], ...] = ()
    """Pre-annotations in Label Studio's format: ``{"model_version": str, "result": [...], "score"?: float}``."""


@dataclass
class PushPlan:
    """What a push will do, decided before anything is created."""

    kind: str
    ingest_dir: Path
    items: list[PushItem]
    """The items to push (off-grid clips already left out when ``skip_off_grid``)."""
    records: dict[str, dict[str, Any]]
    """Key -> the clip (or image set) row of the ingest table, for every item."""
    skipped: list[str] = field(default_factory=list)
    """Clip ids left out because their sample times are off the grid."""
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Video id -> its ``videos.parquet`` row, for the clips of video_point and video_track items."""
    warnings: list[str] = field(default_factory=list)


def _clips(n: int) -> str:
    return f"{n} clip{'' if n == 1 else 's'}"


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def read_ingest_table(ingest_dir: str | os.PathLike, table: str, flag: str = "--ingest") -> tuple[Path, list[dict]]:
    """The rows of one table of an ingest output, or a clear error about the folder.

    Args:
        ingest_dir: what the user gave as the ingest output.
        table: ``"clips"``, ``"imagesets"`` or ``"videos"``.
        flag: the option that named the folder, for messages.

    Returns:
        ``(path of the table, rows as dicts)``.

    Raises:
        PushCheckError: the folder does not exist, is not an ingest output, or its table is unreadable.
    """
    import pyarrow.parquet as pq

    folder = Path(ingest_dir)
    path = IngestLayout(folder).table(table)
    name = path.name
    run = f"run 'molmo2-data ingest --manifest ... --out {folder}' first, or pass the --out folder of an ingest run"
    if not folder.is_dir():
        raise PushCheckError(f"{flag} {folder} {'is a file' if folder.exists() else 'does not exist'}: {run}")
    if not path.is_file():
        raise PushCheckError(f"{flag} {folder} is not an ingest output (no {name}): {run}")
    try:
        return path, pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - any unreadable table is the same problem for the user
        raise PushCheckError(f"{path} cannot be read ({type(exc).__name__}: {exc}); rerun the ingest into "
                             f"{folder}") from None


def read_items(path: str | os.PathLike) -> list[PushItem]:
    """Items from a JSONL file: one ``{key, query?, label?, predictions?}`` object per line.

    Raises:
        PushCheckError: a missing or unreadable file, a line that is not such an object.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PushCheckError(f"--items {path} does not exist: pass a JSONL file of {{\"key\": clip id, "
                             f"\"query\": ...}} lines") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PushCheckError(f"--items {path} cannot be read: {exc}") from None
    items = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise PushCheckError(f"--items {path} line {n} is not JSON ({exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("key"), str) or not row["key"]:
            raise PushCheckError(f"--items {path} line {n} must be an object with a \"key\" (a clip or image-set "
                                 f"id), got {line.strip()[:80]}")
        for name in ("query", "label"):
            if row.get(name) is not None and not isinstance(row[name], str):
                raise PushCheckError(f"--items {path} line {n}: \"{name}\" must be text, got {row[name]!r}")
        predictions = row.get("predictions", [])
        if not isinstance(predictions, list):
            raise PushCheckError(f"--items {path} line {n}: \"predictions\" must be a list")
        items.append(PushItem(row["key"], row.get("query"), row.get("label"), tuple(predictions)))
    if not items:
        raise PushCheckError(f"--items {path} holds no items")
    return items


def off_grid_clips(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Clip id -> a description, for each clip whose sample times are not all on VideoPoint's 0.5 s grid."""
    out = {}
    for record in records:
        duration = record["end"] - record["start"]
        times = record["timestamps"]
        if not all(point_time_on_grid(t, duration) for t in times):
            step = times[1] - times[0] if len(times) > 1 else 0.0
            out[record["key"]] = (f"{record['key']} ({duration:g} s, {len(times)} frames every {step:.4g} s; "
                                  f"sampling max_frames {record.get('max_frames')}, max_fps {record.get('max_fps')})")
    return out


def _placeholder_media(kind: str, key: str, record: dict[str, Any]) -> tuple[str, ...]:
    if kind == "video_point":
        return tuple(f"frames/{key}/{i:03d}.jpg" for i in range(len(record["timestamps"])))
    if kind in T.IMAGE_SET_KINDS:
        return tuple(f"images/{key}/{i}" for i in range(len(record["images"])))
    return (f"video/{key}.mp4",)


def _check_media_root(media_root: str | os.PathLike) -> None:
    root = Path(media_root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise PushCheckError(f"the media root {root} {what}: pass Label Studio's document root "
                             f"(--media-root; 'annotate server start' prints it as 'media root')")
    if not os.access(root, os.W_OK | os.X_OK):
        raise PushCheckError(f"the media root {root} is not writable: push copies the media annotators see there")


def plan_push(ingest_dir: str | os.PathLike, kind: str, items: Iterable[PushItem] | None = None, *,
              query: str | None = None, label: str | None = None, title: str | None = None,
              media_root: str | os.PathLike | None = None, skip_off_grid: bool = False) -> PushPlan:
    """Check a push and decide its items (see the module docstring); creates nothing.

    Args:
        ingest_dir: the ingest output folder.
        kind: the project kind.
        items: what to push; None: every clip (image set) of the ingest output, with ``query`` and
            ``label`` when given.
        query, label: for ``items=None``.
        title: the project title, when known (its media folder name is checked).
        media_root: Label Studio's document root, when media will be copied there.
        skip_off_grid: ``video_point`` only: push the clips on the grid and leave out the others
            (named in ``PushPlan.warnings``) instead of refusing.

    Returns:
        A :class:`PushPlan`.

    Raises:
        PushCheckError: anything that would make the push fail or make tasks whose labels
            cannot become records.
    """
    from annotation.push import Source, build_tasks

    if kind not in T.KINDS:
        raise PushCheckError(f"unknown project kind {kind!r}; known: {sorted(T.KINDS)}")
    if title is not None:
        try:
            safe_name(title)
        except ValueError as exc:
            raise PushCheckError(str(exc)) from None
    if media_root is not None:
        _check_media_root(media_root)
    ingest = Path(ingest_dir)
    _, rows = read_ingest_table(ingest, "imagesets" if kind in T.IMAGE_SET_KINDS else "clips")
    table = {r["key"]: r for r in rows}
    if items is None:
        if kind in QUERY_KINDS and not query:
            raise PushCheckError(f"{kind} tasks need a query: pass --query (every clip) or --items (a JSONL file)")
        items = [PushItem(key, query, label) for key in sorted(table)]
    items = list(items)
    missing = sorted({i.key for i in items} - set(table))
    if missing:
        raise PushCheckError(f"{len(missing)} of the keys to push {'is' if len(missing) == 1 else 'are'} not in "
                             f"{ingest}: {_named(missing)}")
    if kind in VIDEO_KINDS:
        no_mp4 = sorted({i.key for i in items if not table[i.key].get("mp4")})
        if no_mp4:
            raise PushCheckError(f"{_clips(len(no_mp4))} without a constant-frame-rate mp4, which {kind} tasks need: "
                                 f"{_named(no_mp4)}; rerun ingest with --cfr-mp4 (the clips keep their ids)")
        gone = sorted({i.key for i in items if not (ingest / table[i.key]["mp4"]).is_file()})
        if gone:
            raise PushCheckError(f"the mp4 of {_clips(len(gone))} is missing from {ingest}: {_named(gone)}; "
                                 f"rerun the ingest into {ingest} to restore them")
    plan = PushPlan(kind, ingest, items, {i.key: table[i.key] for i in items})
    if kind in SOURCE_KINDS:
        plan.videos = _videos(ingest, plan.records)
    if kind == "video_point":
        _check_grid(plan, skip_off_grid)
    sources = {key: Source(key, record, _placeholder_media(kind, key, record)) for key, record in plan.records.items()}
    try:
        build_tasks(kind, sources, plan.items, url_for=str, videos=plan.videos)
    except ValueError as exc:
        raise PushCheckError(str(exc)) from None
    return plan


def _videos(ingest: Path, records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``videos.parquet`` rows of the clips' videos; every one must be there."""
    _, rows = read_ingest_table(ingest, "videos")
    by_id = {r["key"]: r for r in rows}
    missing = sorted({r["video_id"] for r in records.values()} - set(by_id))
    if missing:
        raise PushCheckError(f"{len(missing)} video{'' if len(missing) == 1 else 's'} of the clips to push "
                             f"{'is' if len(missing) == 1 else 'are'} not in {IngestLayout(ingest).videos_table}: "
                             f"{_named(missing)}; their records need the video's source and duration. Rerun the "
                             f"ingest into {ingest}")
    return {vid: by_id[vid] for vid in sorted({r["video_id"] for r in records.values()})}


def _check_grid(plan: PushPlan, skip_off_grid: bool) -> None:
    off = off_grid_clips(plan.records[key] for key in sorted(plan.records))
    if not off:
        return
    said = _named(list(off.values()))
    advice = ("re-ingest these videos so clips are sampled at 2 fps: clips of at most 63.5 s (--window 63) with "
              "sampling.max_fps 2 and sampling.max_frames 128 (the defaults)")
    if not skip_off_grid:
        raise PushCheckError(f"{_clips(len(off))} not sampled on Molmo 2's 0.5 s grid, which VideoPoint needs "
                             f"(a point's time is one of the clip's sample times): {said}. To fix: {advice}; "
                             f"or pass --skip-off-grid to push only the other {_clips(len(plan.records) - len(off))}")
    if len(off) == len(plan.records):
        raise PushCheckError(f"none of the {len(off)} clips is sampled on Molmo 2's 0.5 s grid, which VideoPoint "
                             f"needs: {said}; nothing to push. To fix: {advice}")
    plan.skipped = sorted(off)
    plan.items = [i for i in plan.items if i.key not in off]
    plan.records = {k: v for k, v in plan.records.items() if k not in off}
    plan.warnings.append(f"left out {_clips(len(off))} not sampled on Molmo 2's 0.5 s grid: {said}; to label "
                         f"them, {advice}")
