"""Small, exact inputs for the publish tests: an ingest output and record folders, made here.

``make_ingest(folder, clips, image_sets)`` writes the files an ingest run leaves (the layout of
``pipelines/ingest/pipeline.py``): ``clips/clips-000000.tar`` (``{clip}.json`` + ``{clip}.NNN.jpg``),
``imagesets/imagesets-000000.tar`` (``{set}.json`` + ``{set}.{i}.png``), ``clips.parquet``,
``videos.parquet``, ``imagesets.parquet`` and ``shards.json``, every record validated by
``schemas``. Frames are small real JPEGs, images real PNGs (line art), with a drawn marker so a
preview shows something. ``ClipSpec`` and ``SetSpec`` say what to make; the record builders
return valid records about those clips and sets.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from schemas.arrow import to_table
from schemas.provenance import human_provenance
from schemas.records import validate
from schemas.sampling import sample_times
from shards.writer import write_shard

SHA = "0" * 64


@dataclass(frozen=True)
class ClipSpec:
    key: str
    video_id: str
    duration: float = 2.0
    start: float = 0.0
    split: str = "train"
    license: str = "CC-BY-4.0"
    source: str = "testsource"


@dataclass(frozen=True)
class SetSpec:
    key: str
    images: int = 3
    split: str = "train"
    license: str = "CC0-1.0"
    source: str = "procedural"


def _jpeg(i: int, w: int = 64, h: int = 48) -> bytes:
    image = Image.new("RGB", (w, h), (40 + 20 * (i % 10), 90, 140))
    ImageDraw.Draw(image).rectangle([4 + i, 4, 14 + i, 14], fill=(250, 250, 0))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _png(i: int, w: int = 40, h: int = 40) -> bytes:
    image = Image.new("RGB", (w, h), (255, 255, 255))
    ImageDraw.Draw(image).line([0, i, w, h - i], fill=(0, 0, 0), width=2)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def clip_record(spec: ClipSpec) -> dict:
    times = sample_times(spec.duration)
    return validate("clip", {
        "key": spec.key, "video_id": spec.video_id, "start": spec.start, "end": spec.start + spec.duration,
        "timestamps": times, "frame_indices": [round(t * 10) for t in times], "frame_width": 64,
        "frame_height": 48, "max_frames": 128, "max_fps": 2.0, "subtitles": None, "split": spec.split,
    }).model_dump(mode="json")


def set_record(spec: SetSpec) -> dict:
    return validate("image_set", {
        "key": spec.key, "license": spec.license, "source": spec.source, "split": spec.split,
        "images": [{"image_id": f"{spec.key}_img{i}", "uri": f"/data/{spec.key}/{i}.png", "sha256": SHA,
                    "width": 40, "height": 40} for i in range(spec.images)],
    }).model_dump(mode="json")


def make_ingest(folder: Path, clips: list[ClipSpec], sets: list[SetSpec] = ()) -> Path:
    """Write an ingest output with these clips and image sets; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    listing = []
    clip_rows, set_rows = [clip_record(c) for c in clips], [set_record(s) for s in sets]
    videos = {}
    for c in clips:
        videos[c.video_id] = validate("video", {
            "key": c.video_id, "uri": f"/videos/{c.video_id}.mp4", "sha256": SHA, "duration": 60.0, "fps": 10.0,
            "num_frames": 600, "width": 64, "height": 48, "rotation": 0, "license": c.license,
            "source": c.source, "split": c.split}).model_dump(mode="json")
    for kind, rows, member in (("clips", clip_rows, None), ("imagesets", set_rows, None)):
        if not rows:
            continue
        (folder / kind).mkdir(exist_ok=True)
        samples = []
        for r in rows:
            sample = {"__key__": r["key"], "json": r}
            if kind == "clips":
                sample.update({f"{i:03d}.jpg": _jpeg(i) for i in range(len(r["timestamps"]))})
            else:
                sample.update({f"{i}.png": _png(i) for i in range(len(r["images"]))})
            samples.append(sample)
        info = write_shard(folder / kind / f"{kind}-000000.tar", samples)
        listing.append({"shard": f"{kind}/{kind}-000000.tar", "sha256": info.sha256, "num_samples": info.num_samples,
                        "num_bytes": info.num_bytes})
    pq.write_table(to_table("clip", clip_rows), folder / "clips.parquet")
    pq.write_table(to_table("image_set", set_rows), folder / "imagesets.parquet")
    pq.write_table(to_table("video", list(videos.values())), folder / "videos.parquet")
    (folder / "shards.json").write_text(json.dumps(listing, indent=1, sort_keys=True))
    return folder


def provenance(n: int = 1) -> dict:
    """One annotator's record from a Label Studio task (``schemas.provenance``)."""
    return human_provenance("test project", 1, n, [(n, "annotator@example.org")])


def video_base(key: str, clip: ClipSpec) -> dict:
    return {"key": key, "video_id": clip.video_id, "clip_id": clip.key, "clip_start": clip.start,
            "clip_end": clip.start + clip.duration, "provenance": provenance()}


def video_point(key: str, clip: ClipSpec, times: list[float], label: str = "dot") -> dict:
    points = [{"time": t, "x": 0.2 + 0.1 * i, "y": 0.3} for i, t in enumerate(times)]
    return {**video_base(key, clip), "source": clip.source, "duration": 60.0, "label": label,
            "question": f"Point to every {label}.", "count": len(points), "points": points,
            "category": "object", "annotator_unsure": False}


def video_track(key: str, clip: ClipSpec) -> dict:
    times = sample_times(clip.duration)
    return {**video_base(key, clip), "source": clip.source, "expression": "the yellow square", "fps": 2.0,
            "width": 64, "height": 48, "start_frame": 0, "end_frame": len(times) - 1, "timestamps": times,
            "objects": [{"object_id": 1, "points": [{"x": 0.1 + 0.05 * i, "y": 0.2} if i % 3 else None
                                                     for i in range(len(times))]}]}


def cap_qa(key: str, clip: ClipSpec, answer: str = "Yellow", negatives: Optional[list[str]] = None) -> dict:
    return {**video_base(key, clip), "question": "What colour is the square?", "answer": answer,
            "negative_answers": negatives or ["Red", "Blue", "Green"], "category": "attribute"}


def multi_image_point(key: str, s: SetSpec, count: int = 2) -> dict:
    ids = [f"{s.key}_img{i}" for i in range(s.images)]
    return {"key": key, "image_set_id": s.key, "image_ids": ids, "label": "line", "question": "Point to every line.",
            "count": count, "points": [{"image_index": i % s.images, "x": 0.5, "y": 0.5} for i in range(count)],
            "provenance": provenance()}


def write_records(folder: Path, records: dict[str, list[dict]], fmt: str = "parquet") -> Path:
    """Write ``{Dataset}.parquet`` (validated) or ``{Dataset}.jsonl`` (as given) files."""
    folder.mkdir(parents=True, exist_ok=True)
    for dataset, rows in records.items():
        if fmt == "parquet":
            pq.write_table(to_table(dataset, rows), folder / f"{dataset}.parquet")
        else:
            (folder / f"{dataset}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
