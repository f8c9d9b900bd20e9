"""Inputs for the synth tests: procedural scenes as clips and as normalized annotation records.

``scene_inputs(folder, specs)`` writes, for each scene, a ``Clip`` record (no video is encoded:
the clip's sample times, frame map and subtitle cues come from the scene's ground truth) and its
``VideoAsset`` into ``{folder}/ingest/clips.parquet`` and ``videos.parquet``, and the records a careful annotator would make into
``{folder}/records/``: tasks built by ``annotation.tasks`` exactly as push builds them, results
from ``pipelines.procedural.simulated_annotators``, the export normalized by
``annotation.normalize.normalize_export`` (VideoPoint per label, plus one label no object has;
VideoTrack per label; a Cap caption). So the generators read what the annotation stage writes.
``write_clip_shard`` adds the clips' frames as a shard, for tests that push them to Label Studio.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from annotation.normalize import Origin, normalize_export
from annotation.tasks import clip_video_task, video_point_task, video_track_task
from pipelines.procedural.scene_model import PALETTE, SHAPES
from pipelines.procedural.scenes import SceneSpec, make_scene
from pipelines.procedural.simulated_annotators import simulate
from schemas.arrow import to_table
from schemas.records import validate
from schemas.sampling import sample_times

SPECS = (
    SceneSpec(seed=11, n_objects=4, duration=5.0, fps=10.0, labels=("red circle", "blue square", "green diamond",
                                                                     "yellow circle")),
    SceneSpec(seed=12, n_objects=5, duration=4.0, fps=8.0),
    SceneSpec(seed=13, n_objects=3, duration=6.0, fps=10.0, occluder=False),
    SceneSpec(seed=14, n_objects=4, duration=4.5, fps=12.0),
)


def scene_clip(scene, key: str, video_id: str) -> dict:
    """The Clip record ingest would write for the whole scene (constant frame rate, from 0)."""
    times = sample_times(scene.duration)
    n = len(scene.frames)
    return validate("clip", {
        "key": key, "video_id": video_id, "start": 0.0, "end": scene.duration, "timestamps": times,
        "frame_indices": [scene.frame_index_at(t) for t in times], "frame_width": scene.spec.width,
        "frame_height": scene.spec.height, "max_frames": 128, "max_fps": 2.0,
        "subtitles": [{"start": c.start, "end": c.end, "text": c.text} for c in scene.cues if c.end <= scene.duration],
        "split": "train", "mp4": f"media/{key}.mp4", "mp4_fps": scene.spec.fps,
        "mp4_frame_indices": list(range(n)),
    }).model_dump()


def scene_video(scene, video_id: str) -> dict:
    """The VideoAsset record ingest would write for the scene's video (its source, license, duration)."""
    import hashlib

    return validate("video", {
        "key": video_id, "uri": f"procedural://{video_id}", "sha256": hashlib.sha256(scene.to_json().encode()).hexdigest(),
        "duration": scene.duration, "fps": scene.spec.fps, "num_frames": len(scene.frames), "width": scene.spec.width,
        "height": scene.spec.height, "rotation": 0, "license": "CC0-1.0", "source": "procedural", "split": "train",
    }).model_dump()


def _absent_label(scene) -> str:
    return sorted(f"{c} {s}" for c in PALETTE for s in SHAPES if f"{c} {s}" not in scene.counts)[0]


def simulated_export(scenes: dict, clips: dict) -> list[dict]:
    """A Label Studio export of VideoPoint, VideoTrack and caption tasks, annotated from the scenes."""
    tasks = []
    for key, clip in sorted(clips.items()):
        scene = scenes[key]
        url = f"/data/local-files/?d=proj/video/{key}.mp4"
        datas = [video_point_task(clip, f"every {label}", label, lambda i, k=key: f"/data/local-files/?d=proj/frames/{k}/{i:03d}.jpg")
                 for label in sorted(scene.counts) + [_absent_label(scene)]]
        datas += [video_track_task(clip, label, label, url) for label in sorted(scene.counts)]
        datas.append(clip_video_task("caption", clip, url))
        for data in datas:
            n = len(tasks) + 1
            tasks.append({"id": n, "data": data, "predictions": [], "annotations": [{
                "id": 1000 + n, "completed_by": 1, "result": simulate(data["kind"], data, scene),
                "was_cancelled": False, "lead_time": 1.0, "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z"}]})
    return tasks


def write_clip_shard(ingest: Path, clips: dict, scenes: dict) -> Path:
    """The clips' sampled frames (JPEG, drawn from the scenes) as an ingest clip shard + shards.json,
    so push can materialize them."""
    import io
    import json

    from PIL import Image

    from pipelines.procedural.scenes import draw_frame
    from shards.writer import write_shard

    samples = []
    for key, clip in sorted(clips.items()):
        sample = {"__key__": key, "json": clip}
        for i, t in enumerate(clip["timestamps"]):
            buf = io.BytesIO()
            Image.fromarray(draw_frame(scenes[key], scenes[key].frame_index_at(t))).save(buf, format="JPEG", quality=90)
            sample[f"{i:03d}.jpg"] = buf.getvalue()
        samples.append(sample)
    (ingest / "clips").mkdir(parents=True, exist_ok=True)
    info = write_shard(ingest / "clips" / "clips-000000.tar", samples)
    (ingest / "shards.json").write_text(json.dumps([{"shard": "clips/clips-000000.tar", "sha256": info.sha256,
                                                     "num_samples": info.num_samples}]))
    return ingest


def scene_inputs(folder: Path, specs=SPECS) -> tuple[Path, Path, dict]:
    """Write clips and records for ``specs``; return (ingest folder, records folder, {clip key: scene})."""
    scenes, clips, videos = {}, {}, {}
    for i, spec in enumerate(specs):
        key = f"clip-{i}"
        scenes[key] = make_scene(spec)
        clips[key] = scene_clip(scenes[key], key, f"vid-{i}")
        videos[f"vid-{i}"] = scene_video(scenes[key], f"vid-{i}")
    ingest, records = folder / "ingest", folder / "records"
    ingest.mkdir(parents=True, exist_ok=True)
    records.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table("clip", list(clips.values())), ingest / "clips.parquet")
    pq.write_table(to_table("video", list(videos.values())), ingest / "videos.parquet")
    result = normalize_export(simulated_export(scenes, clips), known_clips=clips, origin=Origin("synth test", 1),
                              known_videos=videos)
    assert not result.failures, result.failures[:3]
    for dataset, recs in result.records.items():
        pq.write_table(to_table(dataset, recs), records / f"{dataset}.parquet")
    return ingest, records, scenes
