"""The demo's annotation stage: every human-made dataset through Label Studio, by simulated annotators.

With a server (the default): start Label Studio headless on loopback and push six projects, one
per human-made dataset: VideoPoint (one task per clip and label), VideoTrack (one per clip, hidden
frames marked ``occluded``), Cap and AskModelAnything (one per clip), MultiImagePoint (one per
image set and point query) and MultiImageQA (one per image set, with a model draft shown as a
prediction). Simulated annotators (``pipelines.procedural.simulated_annotators``) label every task
through the API from the procedural ground truth and its templated text; versioned snapshots
are pulled and the server is stopped. With ``--no-labelstudio``: reuse the snapshots already in
the demo folder, or, when a project has none, build the same export offline (tasks planned and
built as push builds them, results from the same simulated annotators) and save it as a snapshot.

Either way the records are then normalized from the snapshots alone (with the project title
and snapshot version as provenance, and the ingest's ``videos.parquet`` for the source videos'
real source and duration) and checked against the ground truth; any difference ends the demo
(``CheckFailed``) naming every record that differs.
"""
from __future__ import annotations

import json
import types
from pathlib import Path

from molmo2_data.demo_checks import RATING, check_records, qa_pairs
from shards.layout import IngestLayout

PROJECTS = {"video_point": "demo VideoPoint", "video_track": "demo VideoTrack", "caption": "demo Cap",
            "ask_model_anything": "demo AskModelAnything", "multi_image_point": "demo MultiImagePoint",
            "multi_image_qa": "demo MultiImageQA"}
"""Project kind -> title, in push order."""


def _draft(pairs: list[tuple[str, str]]) -> dict:
    """A model draft of a MultiImageQA task: the first question with a wrong answer, for the annotator to fix."""
    question, answer = pairs[0]
    result = [{"id": f"draft_{name}", "from_name": name, "to_name": "images", "type": "textarea",
               "value": {"text": [text]}} for name, text in (("question_1", question), ("answer_1", f"not {answer}"))]
    return {"model_version": "demo-draft-v1", "score": 0.2, "result": result}


def _items(clips: list[dict], scenes: dict, sets: dict) -> dict[str, list]:
    from annotation.push import PushItem

    points = [PushItem(c["key"], query=f"every {label}", label=label)
              for c in clips for label in sorted(scenes[c["video_id"]].counts)]
    tracks = [PushItem(c["key"], query="every moving shape", label="object") for c in clips]
    image_points = [PushItem(key, query=q.question, label=q.label) for key in sorted(sets)
                    for q in sets[key].point_queries]
    image_qa = [PushItem(key, predictions=(_draft(qa_pairs(sets[key])),)) for key in sorted(sets) if sets[key].qa]
    return {"video_point": points, "video_track": tracks, "caption": [PushItem(c["key"]) for c in clips],
            "ask_model_anything": [PushItem(c["key"]) for c in clips], "multi_image_point": image_points,
            "multi_image_qa": image_qa}


def _annotate(kind: str, data: dict, scenes: dict, sets: dict) -> list[dict]:
    """The simulated annotator's result for one task."""
    from pipelines.procedural.simulated_annotators import simulate

    if kind == "multi_image_point":
        query = sets[data["set_id"]].query(data["label"])
        points = [{} for _ in data["image_ids"]]
        for n, p in enumerate(query.points):
            points[p.image_index][n] = (p.x, p.y)
        return simulate(kind, data, points=points)
    if kind == "multi_image_qa":
        return simulate(kind, data, pairs=qa_pairs(sets[data["set_id"]]))
    return simulate(kind, data, scenes[data["video_id"]], **({"rating": RATING} if kind == "caption" else {}))


def _with_server(out: Path, ingest: Path, items: dict, scenes: dict, sets: dict, snapshots: Path) -> None:
    from annotation.projects import connect, ensure_project
    from annotation.pull import pull
    from annotation.push import push
    from annotation.server import load_credentials, start, stop

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
                client.annotations.create(task.id, result=_annotate(kind, task.data, scenes, sets))
                done += 1
            pulled = pull(client, project, snapshots)
            print(f"  {title}: {result.created} tasks pushed ({result.existing} already there), "
                  f"{done} annotated, snapshot version {pulled.version}"
                  f"{'' if pulled.changed else ' (unchanged)'}")
    finally:
        print(f"  {stop(data_dir)}")


def _offline(out: Path, ingest: Path, items: dict, scenes: dict, sets: dict, snapshots: Path) -> None:
    from annotation.pull import iter_snapshots, save_snapshot
    from annotation.push import build_tasks, materialize, plan_push

    for kind, title in PROJECTS.items():
        project = types.SimpleNamespace(id=0, title=title)
        if list(iter_snapshots(snapshots, project)) if snapshots.exists() else []:
            print(f"  {title}: using the saved snapshots")
            continue
        plan = plan_push(ingest, kind, items[kind], title=title)
        sources = materialize(ingest, kind, sorted({i.key for i in plan.items}), out / "offline-media", title)
        tasks = []
        for n, payload in enumerate(build_tasks(kind, sources, plan.items, videos=plan.videos), start=1):
            predictions = [{**p, "id": n * 100 + k, "updated_at": "1970-01-01T00:00:00Z"}  # as an export has them
                           for k, p in enumerate(payload.get("predictions", []))]
            tasks.append({"id": n, "data": payload["data"], "predictions": predictions,
                          "annotations": [{"id": n, "completed_by": 1, "was_cancelled": False, "lead_time": 0.0,
                                           "result": _annotate(kind, payload["data"], scenes, sets),
                                           "created_at": "1970-01-01T00:00:00Z",
                                           "updated_at": "1970-01-01T00:00:00Z"}]})
        saved = save_snapshot(snapshots, project, json.dumps(tasks, sort_keys=True).encode())
        print(f"  {title}: no server; {len(tasks)} simulated annotations saved as snapshot {saved.version}")


def run_annotation(out: Path, ingest: Path, truths: dict[str, Path], use_labelstudio: bool,
                   set_truths: dict[str, Path]) -> dict:
    """Label, snapshot and normalize every project; return the record count per dataset.

    Args:
        out: the demo folder (snapshots go to ``out/snapshots``, records to ``out/annotations``).
        ingest: the ingest output.
        truths: scene ground truth file per video id.
        use_labelstudio: run the server, or work from saved / offline snapshots.
        set_truths: image-set ground truth file per image-set key.

    Raises:
        CheckFailed: an annotation failed to normalize, or a record differs from the ground truth
            (the message lists every difference).
    """
    import pyarrow.parquet as pq

    from annotation.normalize import Origin, normalize_export
    from annotation.pull import find_snapshot
    from molmo2_data.demo import CheckFailed
    from pipelines.procedural.image_sets import load_ground_truth as load_set
    from pipelines.procedural.scenes import load_ground_truth
    from schemas.arrow import to_table

    layout = IngestLayout(ingest)
    clips = pq.read_table(layout.clips_table).to_pylist()
    videos = {v["key"]: v for v in pq.read_table(layout.videos_table).to_pylist()}
    scenes = {vid: load_ground_truth(path.read_text()) for vid, path in truths.items()}
    sets = {key: load_set(path.read_text()) for key, path in set_truths.items()}
    clips = [c for c in clips if c["video_id"] in scenes]
    items = _items(clips, scenes, sets)
    snapshots = out / "snapshots"
    (_with_server if use_labelstudio else _offline)(out, ingest, items, scenes, sets, snapshots)

    records_dir = out / "annotations"
    records_dir.mkdir(exist_ok=True)
    known = {c["key"]: c for c in clips}
    image_sets = {r["key"]: r for r in pq.read_table(ingest / "imagesets.parquet").to_pylist()}
    counts, problems = {}, []
    for kind, title in PROJECTS.items():
        snapshot = find_snapshot(snapshots, title)
        result = normalize_export(snapshot.load(), known_clips=known, origin=Origin(title, snapshot.version),
                                  known_videos=videos)
        problems += [f"{title}: {f['key']}: [{f['stage']}/{f['error_type']}] {f['message']}"
                     for f in result.failures]
        problems += [f"{title}: task {r.task_id} held for review: {'; '.join(r.reasons)}" for r in result.review]
        for dataset, records in result.records.items():
            pq.write_table(to_table(dataset, records), records_dir / f"{dataset}.parquet")
            counts[dataset] = len(records)
            problems += check_records(dataset, records, known, scenes, image_sets, sets, videos)
        expected = len(items[kind])
        if sum(len(r) for r in result.records.values()) != expected:
            problems.append(f"{title}: {sum(len(r) for r in result.records.values())} records from {expected} tasks")
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckFailed(f"{len(problems)} annotation result(s) differ from the ground truth:\n  {shown}")
    return counts
