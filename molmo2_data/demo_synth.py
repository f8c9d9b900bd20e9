"""The demo's synthetic stage: the three generators with the template backend, and a review round trip.

1. ``synth capqa`` and ``synth subtitleqa`` over the ingest output and the normalized
   annotations; ``synth synmultiimageqa`` renders four image sets into one more ingest output.
   Checked: every CapQA counting answer equals the procedural ground truth at the clip's sample
   times, every SubtitleQA answer is the text of one of its clip's cues, every generated set has
   questions.
2. Review: the CapQA records go to a Label Studio ``review`` project (the same headless server
   as the annotation stage, started again on its data dir) where a simulated reviewer edits the
   first record's question, rejects the second and accepts the rest; the snapshot is pulled and
   normalized into ``review_decision`` records. With ``--no-labelstudio`` the saved snapshot, or
   an offline simulated one, stands in.

The publish stage then takes ``synth/*`` as record folders, ``synth/media`` as an ingest output
and the decisions as ``--reviews``.
"""
from __future__ import annotations

import json
import types
from pathlib import Path

__all__ = ["REVIEW_TITLE", "SYNTH_SETS", "run_synth"]

REVIEW_TITLE = "demo review CapQA"
SYNTH_SETS = 4


def _reviewer(n: int, data: dict) -> list[dict]:
    """The simulated reviewer: edits the first question, rejects the second, accepts the rest."""
    from pipelines.procedural.simulated_annotators import review_result

    if n == 0:
        return review_result("edit", {"question": data["question"].replace(" appear in ", " can be seen in ")},
                             "clearer wording")
    return review_result("reject", note="too easy") if n == 1 else review_result("accept")


def _review_with_server(out: Path, records: list[dict], snapshots: Path) -> None:
    from annotation.projects import connect, ensure_project
    from annotation.pull import pull
    from annotation.review import push_review
    from annotation.server import load_credentials, start, stop

    data_dir = out / "labelstudio"
    info = start(data_dir, media_root=out / "labelstudio-media")
    try:
        client = connect(*load_credentials(data_dir))
        project = ensure_project(client, "review", REVIEW_TITLE)
        pushed = push_review(client, project, out / "ingest", info.media_root, "CapQA", records)
        tasks = sorted(client.tasks.list(project=project.id, fields="all", page_size=500),
                       key=lambda t: t.data["record_key"])
        done = 0
        for n, task in enumerate(tasks):
            if not task.annotations:
                client.annotations.create(task.id, result=_reviewer(n, task.data))
                done += 1
        pulled = pull(client, project, snapshots)
        print(f"  {REVIEW_TITLE}: {pushed.created} review tasks pushed ({pushed.existing} already there), {done} "
              f"reviewed, snapshot version {pulled.version}{'' if pulled.changed else ' (unchanged)'}")
    finally:
        print(f"  {stop(data_dir)}")


def _review_offline(out: Path, records: list[dict], snapshots: Path) -> None:
    from annotation.pull import iter_snapshots, save_snapshot
    from annotation.push import local_files_url, materialize
    from annotation.review import review_task

    project = types.SimpleNamespace(id=0, title=REVIEW_TITLE)
    if list(iter_snapshots(snapshots, project)) if snapshots.exists() else []:
        print(f"  {REVIEW_TITLE}: using the saved snapshots")
        return
    sources = materialize(out / "ingest", "video_point", sorted({r["clip_id"] for r in records}),
                          out / "offline-media", REVIEW_TITLE)
    tasks = []
    for n, record in enumerate(sorted(records, key=lambda r: r["key"])):
        data = review_task("CapQA", record, [local_files_url(m) for m in sources[record["clip_id"]].media])
        tasks.append({"id": n + 1, "data": data, "predictions": [], "annotations": [{
            "id": n + 1, "completed_by": 1, "was_cancelled": False, "lead_time": 0.0, "result": _reviewer(n, data),
            "created_at": "1970-01-01T00:00:00Z", "updated_at": "1970-01-01T00:00:00Z"}]})
    saved = save_snapshot(snapshots, project, json.dumps(tasks, sort_keys=True).encode())
    print(f"  {REVIEW_TITLE}: no server; {len(tasks)} simulated reviews saved as snapshot {saved.version}")


def _check(out: Path, truths: dict[str, Path], folders: dict[str, Path]) -> list[str]:
    """What differs from the ground truth: CapQA counts, SubtitleQA answers, SynMultiImageQA coverage."""
    import re

    import pyarrow.parquet as pq

    from pipelines.procedural.scenes import load_ground_truth
    from pipelines.synth.programs import plural

    clips = {c["key"]: c for c in pq.read_table(out / "ingest" / "clips.parquet").to_pylist()}
    problems = []
    for r in pq.read_table(folders["CapQA"] / "CapQA.parquet").to_pylist():
        m = re.fullmatch(r"How many (.+) appear in the video\?", r["question"])
        if m is None:
            continue
        clip = clips[r["clip_id"]]
        scene = load_ground_truth(truths[clip["video_id"]].read_text())
        label = next(lab for lab in scene.counts if plural(lab) == m.group(1))
        truth = len({s.object_id for t in clip["timestamps"] for s in scene.ground_truth_at(clip["start"] + t)
                     .visible_objects if s.label == label})
        if r["answer"] != str(truth):
            problems.append(f"CapQA {r['key']}: {r['question']} answered {r['answer']}, ground truth {truth}")
    for r in pq.read_table(folders["SubtitleQA"] / "SubtitleQA.parquet").to_pylist():
        if r["answer"] not in {c["text"] for c in clips[r["clip_id"]]["subtitles"] or []}:
            problems.append(f"SubtitleQA {r['key']}: the answer {r['answer']!r} is no cue of clip {r['clip_id']}")
    asked = {r["image_set_id"] for r in pq.read_table(folders["SynMultiImageQA"] / "SynMultiImageQA.parquet").to_pylist()}
    if len(asked) != SYNTH_SETS:
        problems.append(f"SynMultiImageQA: questions for {len(asked)} of {SYNTH_SETS} sets")
    return problems


def run_synth(out: Path, truths: dict[str, Path], use_labelstudio: bool) -> dict:
    """Generate, check and review; return what publish needs and the counts.

    Returns:
        ``{"records": [record folders], "ingest": [the image sets' ingest output], "reviews": [decision
        files], "counts": {dataset: records}}``.

    Raises:
        CheckFailed: a generated answer differs from the ground truth, or a review decision failed to normalize.
    """
    import pyarrow.parquet as pq

    from annotation.normalize import load_export
    from annotation.outputs import write_outputs
    from annotation.pull import find_snapshot
    from annotation.review import normalize_review_export
    from molmo2_data.demo import CheckFailed
    from pipelines.synth.pipeline import run

    synth = out / "synth"
    folders = {d: synth / d for d in ("CapQA", "SubtitleQA", "SynMultiImageQA")}
    video = ["--ingest", str(out / "ingest"), "--records", str(out / "annotations")]
    summaries = [run("capqa", video + ["--out", str(folders["CapQA"])]),
                 run("subtitleqa", video + ["--out", str(folders["SubtitleQA"])]),
                 run("synmultiimageqa", ["--sets", str(SYNTH_SETS), "--split", "train", "--split", "validation",
                                         "--out", str(folders["SynMultiImageQA"]), "--media-out", str(synth / "media")])]
    for s in summaries:
        why = f" {s['errors']}" if s["errors"] else ""
        print(f"  {s['dataset']:<16} {s['records']} records from {s['inputs']} inputs, {s['failed']} rejected{why}, "
              f"{s['seconds']:.1f} s")
    problems = _check(out, truths, folders)
    if problems:
        raise CheckFailed(f"{len(problems)} generated answer(s) differ from the ground truth:\n  " + "\n  ".join(problems[:20]))
    records = pq.read_table(folders["CapQA"] / "CapQA.parquet").to_pylist()
    snapshots = out / "snapshots"
    (_review_with_server if use_labelstudio else _review_offline)(out, records, snapshots)
    snapshot = find_snapshot(snapshots, REVIEW_TITLE)
    raw = snapshot.read()
    result = normalize_review_export(load_export(raw))
    if result.failures:
        raise CheckFailed("review decisions that did not normalize:\n  " + "\n  ".join(f["message"] for f in result.failures))
    consumed = {"version": snapshot.version, "file": snapshot.path.name, "path": str(snapshot.path.resolve()),
                "sha256": snapshot.sha256, "bytes": len(raw), "tasks": snapshot.tasks, "annotations": snapshot.annotations}
    reviewed = write_outputs(out / "reviews", REVIEW_TITLE, result, [consumed])
    decisions = [d["decision"] for d in result.records.get("review_decision", [])]
    print(f"  review decisions: {decisions.count('accept')} accept, {decisions.count('edit')} edit, "
          f"{decisions.count('reject')} reject -> {reviewed / 'review_decision.parquet'}")
    return {"records": [str(f) for f in folders.values()], "ingest": [str(synth / "media")],
            "reviews": [str(reviewed / "review_decision.parquet")],
            "counts": {s["dataset"]: s["records"] for s in summaries}}
