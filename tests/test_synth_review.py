"""Human review of generated QA on the real Label Studio: push, edit one, reject one, pull, normalize, publish.

Reviewers' decisions come back only through saved snapshots, as ``review_decision`` records
(``annotate normalize`` writes them with no server); ``publish --reviews`` applies them to the
generated records (the rejected one left out, the edited one replaced, each counted); a decision
that cannot be trusted is a failure record naming the task and the annotation.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotation.normalize import load_export
from annotation.projects import connect, ensure_project
from annotation.pull import find_snapshot, pull
from annotation.review import normalize_review_export, push_review, read_review_records, review_task
from annotation.server import load_credentials
from molmo2_data import cli
from pipelines.procedural.simulated_annotators import review_result
from pipelines.synth.pipeline import run
from tests.synth_inputs import SPECS, scene_inputs, write_clip_shard

pytest.importorskip("tests.labelstudio")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    import pyarrow.parquet as pq_

    folder = tmp_path_factory.mktemp("review")
    ingest, records, scenes = scene_inputs(folder, SPECS[:2])
    clips = {c["key"]: c for c in pq_.read_table(ingest / "clips.parquet").to_pylist()}
    write_clip_shard(ingest, clips, scenes)
    run("capqa", ["--ingest", str(ingest), "--records", str(records), "--out", str(folder / "capqa")])
    run("synmultiimageqa", ["--sets", "2", "--out", str(folder / "syn"), "--media-out", str(folder / "media")])
    return {"folder": folder, "ingest": ingest}


@pytest.mark.parametrize("dataset, folder, media, field", [("CapQA", "capqa", "ingest", "answer"),
                                                           ("SynMultiImageQA", "syn", "media", "explanation")])
def test_review_round_trip_on_the_server(labelstudio, generated, tmp_path, dataset, folder, media, field):
    client = connect(*load_credentials(labelstudio.data_dir))
    found, records = read_review_records(generated["folder"] / folder)
    assert found == dataset and len(records) >= 3
    project = ensure_project(client, "review", f"synth review {dataset}")
    media_dir = generated[media] if media == "ingest" else generated["folder"] / "media"
    first = push_review(client, project, media_dir, labelstudio.media_root, dataset, records)
    again = push_review(client, project, media_dir, labelstudio.media_root, dataset, records)
    assert (first.created, again.created, again.existing) == (len(records), 0, len(records))
    by_key = {}
    for task in client.tasks.list(project=project.id, fields="all", page_size=500):
        by_key[task.data["record_key"]] = task
        assert all(Path(labelstudio.media_root, u.split("?d=", 1)[1]).is_file() for u in task.data["images"])
    edited, rejected, accepted = sorted(by_key)[:3]
    client.annotations.create(by_key[edited].id, result=review_result("edit", {field: "Rewritten."}, "clearer"))
    client.annotations.create(by_key[rejected].id, result=review_result("reject", note="ambiguous"))
    client.annotations.create(by_key[accepted].id, result=review_result("accept"))
    snapshots = tmp_path / "snapshots"
    pulled = pull(client, project, snapshots)
    assert pulled.changed
    raw = find_snapshot(snapshots, project.title).read()
    out = normalize_review_export(raw)
    assert not out.failures and len(out.unannotated) == len(records) - 3
    decisions = {d["record_key"]: d for d in out.records["review_decision"]}
    assert {k: d["decision"] for k, d in decisions.items()} == {edited: "edit", rejected: "reject", accepted: "accept"}
    assert decisions[edited]["edits"] == {field: "Rewritten."} and decisions[edited]["note"] == "clearer"
    assert all(d["dataset"] == dataset and d["reviewer"].startswith("labelstudio-user-") for d in decisions.values())
    # the command normalizes the saved snapshot with no server, into a folder publish reads (--reviews)
    assert cli.main(["annotate", "normalize", "--project", project.title, "--snapshots", str(snapshots),
                     "--out", str(tmp_path / "reviews")]) == 0
    (written,) = (tmp_path / "reviews").iterdir()
    rows = pq.read_table(written / "review_decision.parquet").to_pylist()
    assert sorted(r["key"] for r in rows) == sorted(d["key"] for d in out.records["review_decision"])
    # publish applies them: the rejected record is left out, the edited one replaced, each counted
    root = tmp_path / "published"
    assert cli.main(["publish", "--version", "1.0.0", "--root", str(root), "--ingest", str(media_dir),
                     "--records", str(generated["folder"] / folder), "--reviews",
                     str(written / "review_decision.parquet"), "--datasets", dataset]) == 0
    stats = json.loads((root / dataset / "1.0.0" / "stats.json").read_text())
    assert {k: v for k, v in stats["review"].items() if v} == {"accept": 1, "edit": 1, "reject": 1}
    assert stats["excluded"] == {"review_rejected": 1}
    published = {r["key"]: r for r in _published_records(root, dataset)}
    assert rejected not in published and len(published) == len(records) - 1
    original = {r["key"]: r for r in records}
    assert published[edited][field] == "Rewritten." and original[edited][field] != "Rewritten."
    for key in (accepted, *[k for k in original if k not in (edited, rejected, accepted)]):
        assert {f: published[key][f] for f in ("question", "answer")} == \
            {f: original[key][f] for f in ("question", "answer")}


def _published_records(root: Path, dataset: str) -> list[dict]:
    """Every record of version 1.0.0's train split, read with the published reader."""
    from shards.dataset import PublishedSplit

    data = PublishedSplit(str(root), dataset, "1.0.0", "train")
    return [r for key in data.keys() for r in json.loads(data[key]["json"])["records"]]


def _task(tid, result, **annotation):
    data = review_task("CapQA", {"key": f"clip-0-capqa-{tid:08d}", "clip_id": "clip-0", "question": "How many?",
                                 "answer": "2", "negative_answers": ["1", "3", "4"], "category": "counting"}, [])
    ann = {"id": 100 + tid, "completed_by": 7, "result": result, "was_cancelled": False,
           "created_at": "2026-11-27T10:00:00Z", "updated_at": "2026-11-27T10:15:00.123456Z", **annotation}
    return {"id": tid, "data": data, "annotations": [ann]}


def test_decisions_that_cannot_be_trusted_are_failures_naming_task_and_annotation():
    no_decision = review_result("accept", note="no decision")[1:]
    export = [
        _task(1, review_result("edit")),  # edit without new text
        _task(2, review_result("accept", {"answer": "3"})),  # accept with edited text
        _task(3, review_result("reject"), was_cancelled=True),
        _task(4, no_decision),
        _task(5, review_result("edit", {"explanation": "x"})),  # CapQA has no explanation
        _task(6, review_result("edit", {"answer": "3", "question": "  "})),  # empty areas edit nothing
        {"id": 7, "data": {"kind": "video_point"}, "annotations": []},
    ]
    out = normalize_review_export(json.dumps(export).encode())
    assert [(f["input_id"], f["error_type"]) for f in out.failures] == [
        ("task 1 annotation 101", "bad_value"), ("task 2 annotation 102", "bad_value"),
        ("task 3 annotation 103", "cancelled"), ("task 4 annotation 104", "missing_field"),
        ("task 5 annotation 105", "bad_value"), ("task 7", "unknown_kind")]
    (ok,) = out.records["review_decision"]
    assert ok["edits"] == {"answer": "3"} and ok["key"] == "review-clip-0-capqa-00000006-a106"
    assert load_export(json.dumps(export)) == export
