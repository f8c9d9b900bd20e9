"""The demo's annotation stage: Label Studio round trip driven by simulated annotators.

With a server (the default): start Label Studio headless on loopback, push VideoPoint (one task
per clip and label) and VideoTrack (one per clip) projects, let simulated annotators label every
task through the API from the procedural ground truth, pull versioned snapshots, stop the server.
With ``--no-labelstudio``: reuse the snapshots already in the demo folder, or, when there are
none, build the same export offline (tasks as push would build them, results from the same
simulated annotators) and save it as a snapshot. Either way the records are then normalized from
the snapshots alone and checked against the ground truth.
"""
from __future__ import annotations

import json
import types
from pathlib import Path

PROJECTS = {"video_point": "demo VideoPoint", "video_track": "demo VideoTrack"}


def _items(clips: list[dict], scenes: dict) -> dict[str, list]:
    from annotation.push import PushItem

    points = [PushItem(c["key"], query=f"every {label}", label=label)
              for c in clips for label in sorted(scenes[c["video_id"]].counts)]
    tracks = [PushItem(c["key"], query="every moving shape", label="object") for c in clips]
    return {"video_point": points, "video_track": tracks}


def _with_server(out: Path, ingest: Path, items: dict, scenes: dict, snapshots: Path) -> None:
    from annotation.projects import connect, ensure_project
    from annotation.pull import pull
    from annotation.push import push
    from annotation.server import load_credentials, start, stop
    from pipelines.procedural.simulated_annotators import simulate

    data_dir = out / "labelstudio"
    info = start(data_dir, media_root=out / "labelstudio-media")
    try:
        client = connect(*load_credentials(data_dir))
        for kind, title in PROJECTS.items():
            project = ensure_project(client, kind, title)
            result = push(client, project, ingest, info.media_root, items[kind], kind=kind)
            done = 0
            for task in client.tasks.list(project=project.id, fields="all", page_size=500):
                if task.annotations:
                    continue  # a rerun keeps what was labeled before
                data = task.data
                client.annotations.create(task.id, result=simulate(kind, data, scenes[data["video_id"]]))
                done += 1
            pulled = pull(client, project, snapshots)
            print(f"  {title}: {result.created} tasks pushed ({result.existing} already there), "
                  f"{done} annotated, snapshot version {pulled.version}"
                  f"{'' if pulled.changed else ' (unchanged)'}")
    finally:
        print(f"  {stop(data_dir)}")


def _offline(out: Path, ingest: Path, items: dict, scenes: dict, snapshots: Path) -> None:
    from annotation.pull import iter_snapshots, save_snapshot
    from annotation.push import build_tasks, materialize
    from pipelines.procedural.simulated_annotators import simulate

    for kind, title in PROJECTS.items():
        project = types.SimpleNamespace(id=0, title=title)
        if list(iter_snapshots(snapshots, project)) if (snapshots).exists() else []:
            print(f"  {title}: using the saved snapshots")
            continue
        keys = sorted({i.key for i in items[kind]})
        sources = materialize(ingest, kind, keys, out / "offline-media", title)
        tasks = []
        for n, payload in enumerate(build_tasks(kind, sources, items[kind]), start=1):
            data = payload["data"]
            result = simulate(kind, data, scenes[data["video_id"]])
            tasks.append({"id": n, "data": data, "predictions": [], "annotations": [{
                "id": n, "completed_by": 1, "result": result, "was_cancelled": False, "lead_time": 0.0,
                "created_at": "1970-01-01T00:00:00Z", "updated_at": "1970-01-01T00:00:00Z"}]})
        raw = json.dumps(tasks, sort_keys=True).encode()
        saved = save_snapshot(snapshots, project, raw)
        print(f"  {title}: no server; {len(tasks)} simulated annotations saved as snapshot {saved.version}")


def count_mismatches(records: list[dict], known: dict[str, dict], scenes: dict) -> list[str]:
    """VideoPoint records whose count differs from the ground truth: one line each, naming both."""
    lines = []
    for r in records:
        clip = known[r["clip_id"]]
        truth = scenes[clip["video_id"]]
        expected = len({s.object_id for t in clip["timestamps"]
                        for s in truth.ground_truth_at(clip["start"] + t).visible_objects if s.label == r["label"]})
        if r["count"] != expected:
            lines.append(f"{r['key']} ({r['label']!r} on clip {r['clip_id']}): count {r['count']}, "
                         f"ground truth {expected}")
    return lines


def run_annotation(out: Path, ingest: Path, truths: dict[str, Path], use_labelstudio: bool) -> dict:
    """Label, snapshot and normalize; return record counts.

    Raises:
        CheckFailed: an annotation failed to normalize, or a record differs from the ground truth
            (the message lists every difference).
    """
    import pyarrow.parquet as pq

    from annotation.normalize import normalize_export
    from annotation.pull import load_snapshots
    from molmo2_data.demo import CheckFailed
    from pipelines.procedural.scenes import load_ground_truth
    from schemas.arrow import to_table

    clips = pq.read_table(ingest / "clips.parquet").to_pylist()
    scenes = {vid: load_ground_truth(path.read_text()) for vid, path in truths.items()}
    clips = [c for c in clips if c["video_id"] in scenes]
    items = _items(clips, scenes)
    snapshots = out / "snapshots"
    (_with_server if use_labelstudio else _offline)(out, ingest, items, scenes, snapshots)

    records_dir = out / "annotations"
    records_dir.mkdir(exist_ok=True)
    known = {c["key"]: c for c in clips}
    counts, problems = {}, []
    for kind, title in PROJECTS.items():
        project = types.SimpleNamespace(title=title)
        result = normalize_export(load_snapshots(snapshots, project), known_clips=known)
        problems += [f"{title}: {f['key']}: [{f['stage']}/{f['error_type']}] {f['message']}"
                     for f in result.failures]
        for dataset, records in result.records.items():
            pq.write_table(to_table(dataset, records), records_dir / f"{dataset}.parquet")
            counts[dataset] = len(records)
            if dataset == "VideoPoint":
                problems += count_mismatches(records, known, scenes)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckFailed(f"{len(problems)} annotation result(s) differ from the ground truth:\n  {shown}")
    return counts
