"""The layout of an ingest output: the one definition of every file and folder name in it.

One job: say where things are in the folder ``molmo2-data ingest --out OUT`` writes, so that ingest
(which writes it), annotation push and normalize, the demo and publish (which read it) agree by
construction instead of each spelling the names::

    OUT/
        clips/clips-NNNNNN.tar            WebDataset shards of clips ({clip_id}.json + {clip_id}.NNN.jpg),
             clips-NNNNNN.parquet         each with its records table and its done marker
             clips-NNNNNN.tar.done.json   (the shard commit protocol of shards.commit)
        imagesets/imagesets-NNNNNN.tar    image sets ({set_id}.json + {set_id}.{i}.jpg|png), likewise
        clips.parquet                     one row per clip (schemas Clip)
        imagesets.parquet                 one row per image set (schemas ImageSet)
        videos.parquet                    one row per kept source video (schemas VideoAsset)
        failures.parquet                  one row per failed or duplicate input (schemas FailureRecord)
        shards.json                       every shard's status (sha256, counts, fingerprint)
        summary.json                      counts by outcome and error, warnings, what a rerun reused
        media/{clip_id}.mp4               constant-frame-rate clips (--cfr-mp4); a Clip's ``mp4`` field
                                          holds this path relative to OUT
        .parts/{videos|failures}-NNNNNN.parquet   the pieces videos/failures.parquet are made of
        .work/                            the work folder (--work-dir puts it elsewhere):
            raw/                          content-addressed raw store (pipelines.ingest.fetch)
            frames/{id[:2]}/...           decoded frames and mp4s, by clip id and rendering
            images/{sha[:2]}/...          checked and re-encoded images
            failed/{digest}.json          failures remembered for reruns
            progress/                     live progress logs of the workers
            ingest.log                    Beam's and the workers' logs (without --verbose)

Record shapes: none; paths only. Everything here is a local folder (``pathlib.Path``); the
relative names (``CLIPS_TABLE``...) serve readers that reach an output through fsspec URLs.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "IngestLayout", "WorkLayout", "SHARD_PREFIXES", "TABLES", "SHARDS_INDEX", "SUMMARY", "MEDIA", "PARTS", "WORK",
    "media_rel", "table_name",
]

SHARD_PREFIXES = {"clips": "clip", "imagesets": "image_set"}
"""Shard folder (and name prefix) -> the record type of its samples and of its tables."""
TABLES = {"clips": "clip", "imagesets": "image_set", "videos": "video", "failures": "failure"}
"""Table name (``{name}.parquet`` in OUT) -> the record type of its rows."""
SHARDS_INDEX = "shards.json"
SUMMARY = "summary.json"
MEDIA = "media"
PARTS = ".parts"
WORK = ".work"


def table_name(name: str) -> str:
    """``{name}.parquet``, a table's file name relative to OUT (for readers that go through URLs).

    Raises:
        KeyError: not a table of an ingest output.
    """
    if name not in TABLES:
        raise KeyError(f"{name!r} is not a table of an ingest output; known: {sorted(TABLES)}")
    return f"{name}.parquet"


def media_rel(clip_id: str) -> str:
    """A clip's constant-frame-rate mp4, relative to OUT (the value of the Clip record's ``mp4``)."""
    return f"{MEDIA}/{clip_id}.mp4"


@dataclass(frozen=True)
class IngestLayout:
    """The paths of one ingest output.

    Args:
        root: the output folder (``--out``).
        work_dir: the work folder (``--work-dir``); ``{root}/.work`` when None.
    """

    root: Path
    work_dir: Path | None = None

    def __init__(self, root: str | os.PathLike[str], work_dir: str | os.PathLike[str] | None = None) -> None:
        object.__setattr__(self, "root", Path(root))
        object.__setattr__(self, "work_dir", None if work_dir is None else Path(work_dir))

    # ------------------------------------------------------------------ outputs
    def table(self, name: str) -> Path:
        """``{root}/{name}.parquet`` for a name of :data:`TABLES`.

        Raises:
            KeyError: not a table of an ingest output.
        """
        return self.root / table_name(name)

    @property
    def clips_table(self) -> Path:
        return self.table("clips")

    @property
    def imagesets_table(self) -> Path:
        return self.table("imagesets")

    @property
    def videos_table(self) -> Path:
        return self.table("videos")

    @property
    def failures_table(self) -> Path:
        return self.table("failures")

    @property
    def shards_index(self) -> Path:
        """``shards.json``: the status of every shard (``shards.commit``)."""
        return self.root / SHARDS_INDEX

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    def shard_folder(self, prefix: str) -> Path:
        """The folder of the ``clips`` or ``imagesets`` shards.

        Raises:
            KeyError: not a shard prefix of an ingest output.
        """
        if prefix not in SHARD_PREFIXES:
            raise KeyError(f"{prefix!r} is not a shard kind of an ingest output; known: {sorted(SHARD_PREFIXES)}")
        return self.root / prefix

    def shard_paths(self, prefix: str) -> list[Path]:
        """The shards of one kind present in the folder, sorted."""
        folder = self.shard_folder(prefix)
        return sorted(folder.glob(f"{prefix}-*.tar")) if folder.is_dir() else []

    def shard_checksums(self, prefix: str) -> tuple[list[str], dict[str, str] | None]:
        """The shards of one kind and their sha256 from ``shards.json``.

        Returns:
            ``(shard paths, {path: sha256})``; the mapping is None when ``shards.json`` is missing
            or does not list every shard present (then nothing can be verified).
        """
        paths = [str(p) for p in self.shard_paths(prefix)]
        if not self.shards_index.is_file():
            return paths, None
        entries: list[dict[str, Any]] = json.loads(self.shards_index.read_text())
        sums = {str(self.root / e["shard"]): e["sha256"] for e in entries}
        return paths, ({p: sums[p] for p in paths} if all(p in sums for p in paths) else None)

    @property
    def media(self) -> Path:
        return self.root / MEDIA

    def media_mp4(self, clip_id: str) -> Path:
        """Where a clip's constant-frame-rate mp4 lies (see :func:`media_rel`)."""
        return self.root / media_rel(clip_id)

    @property
    def parts(self) -> Path:
        return self.root / PARTS

    def part(self, name: str, index: int) -> Path:
        """Part ``index`` of the ``videos`` or ``failures`` table."""
        return self.parts / f"{name}-{index:06d}.parquet"

    # ------------------------------------------------------------------ work folder
    @property
    def work(self) -> WorkLayout:
        """The work folder's layout (``{root}/.work`` unless ``work_dir`` was given)."""
        return WorkLayout(self.root / WORK if self.work_dir is None else self.work_dir)

    def temp_folders(self) -> list[Path]:
        """Every folder where an interrupted run can leave files under temporary names
        (``shards.atomic``'s scheme): the final sweep's list, the work folder's included."""
        outputs = [self.root, *(self.shard_folder(p) for p in SHARD_PREFIXES), self.media, self.parts]
        return outputs + self.work.temp_folders()


@dataclass(frozen=True)
class WorkLayout:
    """The paths of an ingest work folder (what a rerun reuses), for steps that know only it.

    Args:
        root: the work folder.
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def raw(self) -> Path:
        """The content-addressed raw store (``pipelines.ingest.fetch``)."""
        return self.root / "raw"

    @property
    def frames(self) -> Path:
        """The frame store: decoded frames and mp4s, by clip id and rendering."""
        return self.root / "frames"

    @property
    def images(self) -> Path:
        """Checked and re-encoded images, by content hash."""
        return self.root / "images"

    @property
    def failed(self) -> Path:
        """Failures remembered for reruns."""
        return self.root / "failed"

    @property
    def progress(self) -> Path:
        """Live progress logs of the workers."""
        return self.root / "progress"

    @property
    def log(self) -> Path:
        """Beam's and the workers' logs (without ``--verbose``)."""
        return self.root / "ingest.log"

    def temp_folders(self) -> list[Path]:
        """The work folders where temporary names can be left; fan-out folders one by one."""
        fanned = [self.frames, self.images, self.raw, self.raw / "sources"]  # {folder}/{xx}/...
        return [self.failed, self.raw / ".tmp"] + [
            sub for folder in fanned if folder.is_dir() for sub in sorted(folder.iterdir())
            if len(sub.name) == 2 and sub.is_dir()]
