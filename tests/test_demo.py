"""`make demo`'s job, run once per test session (offline annotation path: no second server)."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = subprocess.run([sys.executable, "-m", "molmo2_data", "demo", "--out", str(out), "--no-labelstudio"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_runs_the_chain_and_says_where_outputs_are(demo):
    out, stdout = demo
    for rel in ("manifest.jsonl", "ingest/clips.parquet", "ingest/failures.parquet", "ingest/summary.json",
                "annotations/VideoPoint.parquet", "annotations/VideoTrack.parquet", "grounding_examples.jsonl"):
        assert (out / rel).exists(), rel
        folder = rel if "/" not in rel else rel.split("/")[0] + "/" if rel.startswith("annotations") else rel
        assert str(out / folder).rstrip("/") in stdout, f"the demo does not say where {rel} is"
    summary = json.loads((out / "ingest" / "summary.json").read_text())
    rows = len((out / "manifest.jsonl").read_text().splitlines())
    assert summary["rows"] == rows == sum(summary["outcomes"].values())
    assert summary["outcomes"] == {"succeeded": 9, "failed": 4, "duplicate": 1}  # 6 videos, 3 image sets


def test_demo_sets_every_split_and_ingests_its_image_sets(demo):
    out, stdout = demo
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(r.get("split") in ("train", "validation") for r in rows)
    videos = {v["key"]: v["split"] for v in pq.read_table(out / "ingest" / "videos.parquet").to_pylist()}
    sets = {s["key"]: s["split"] for s in pq.read_table(out / "ingest" / "imagesets.parquet").to_pylist()}
    given = {r["id"]: r["split"] for r in rows}
    assert {**videos, **sets} == {k: given[k] for k in {**videos, **sets}}
    assert len(sets) == 3 and "validation" in videos.values() and "validation" in sets.values()
    examples = [json.loads(line) for line in (out / "image_set_examples.jsonl").read_text().splitlines()]
    assert {e["task"] for e in examples} == {"multi_image_point", "multi_image_qa"}
    assert {e["image_set"] for e in examples if e["task"] == "multi_image_qa"} == set(sets)
    assert "every point on its shape" in stdout


HUMAN_MADE = ("VideoPoint", "VideoTrack", "Cap", "AskModelAnything", "MultiImagePoint", "MultiImageQA")


def test_demo_makes_every_human_made_dataset_and_counts_it(demo):
    """Six projects through (saved) Label Studio snapshots into records, each counted in the output."""
    from schemas.arrow import from_table

    out, stdout = demo
    sets = {s["key"] for s in pq.read_table(out / "ingest" / "imagesets.parquet").to_pylist()}
    for dataset in HUMAN_MADE:
        table = pq.read_table(out / "annotations" / f"{dataset}.parquet")
        records = from_table(dataset, table)  # valid at the current schema version
        assert records and f"    {dataset:<17} {len(records)}" in stdout, dataset
        for r in records:
            assert r.provenance.method == "human" and r.provenance.project == f"demo {dataset}"
            assert r.provenance.annotation_ids and r.provenance.annotators
        if dataset.startswith("MultiImage"):
            assert {r.image_set_id for r in records} <= sets and 2 <= min(len(r.image_ids) for r in records)
    tracks = from_table("VideoTrack", pq.read_table(out / "annotations" / "VideoTrack.parquet"))
    states = [("absent" if p is None else "occluded" if p.occluded else "visible")
              for r in tracks for o in r.objects for p in o.points]
    assert states.count("occluded") > 0 and states.count("absent") > 0  # the scenes hide and lose objects
    for line in ("demo MultiImagePoint:", "demo MultiImageQA:", "demo Cap:", "demo AskModelAnything:"):
        assert line in stdout


def demo_truth(out, dataset: str) -> tuple[dict, dict, list[dict]]:
    """The demo's clips by key, scene ground truth by video id, and one dataset's records."""
    from pipelines.procedural.scenes import load_ground_truth

    clips = {c["key"]: c for c in pq.read_table(out / "ingest" / "clips.parquet").to_pylist()}
    scenes = {c["video_id"]: load_ground_truth((out / "inputs" / f"{c['video_id']}.json").read_text())
              for c in clips.values()}
    return clips, scenes, pq.read_table(out / "annotations" / f"{dataset}.parquet").to_pylist()


def test_the_track_check_tells_occluded_from_absent(demo):
    from molmo2_data.demo_checks import track_mismatches

    clips, scenes, records = demo_truth(demo[0], "VideoTrack")
    assert track_mismatches(records, clips, scenes) == []
    hidden = next((r, o, i) for r in records for o in r["objects"] for i, p in enumerate(o["points"])
                  if p is not None and p["occluded"])
    hidden[1]["points"][hidden[2]] = None  # read as out of view
    (line,) = track_mismatches(records, clips, scenes)
    assert line.startswith(hidden[0]["key"]) and "occluded entries" in line


def test_demo_annotations_cover_every_clip(demo):
    out, _ = demo
    clips = {c["key"] for c in pq.read_table(out / "ingest" / "clips.parquet").to_pylist()}
    tracks = pq.read_table(out / "annotations" / "VideoTrack.parquet").to_pylist()
    assert {t["clip_id"] for t in tracks} == clips
    points = pq.read_table(out / "annotations" / "VideoPoint.parquet").to_pylist()
    assert {p["clip_id"] for p in points} == clips and all(p["count"] >= 1 for p in points)


def test_demo_grounding_text_parses_back(demo):
    from schemas.pointing import parse_points, parse_tracks

    out, _ = demo
    examples = [json.loads(line) for line in (out / "grounding_examples.jsonl").read_text().splitlines()]
    assert {e["task"] for e in examples} == {"video_point", "video_track", "caption"}
    for e in examples:
        if e["task"] == "video_point":
            assert parse_points(e["text"])
        elif e["task"] == "video_track":
            assert parse_tracks(e["text"]) or e["text"] == "No tracks available."


def test_annotate_normalize_rebuilds_from_the_demo_snapshots(demo, tmp_path):
    """`molmo2-data annotate normalize` needs only the saved snapshots (no server)."""
    out, _ = demo
    target = tmp_path / "records"
    proc = subprocess.run([sys.executable, "-m", "molmo2_data", "annotate", "normalize", "--project",
                           "demo VideoTrack", "--snapshots", str(out / "snapshots"), "--ingest", str(out / "ingest"),
                           "--out", str(target)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 failures" in proc.stdout
    rebuilt = pq.read_table(target / "demo_VideoTrack" / "VideoTrack.parquet").to_pylist()
    assert rebuilt == pq.read_table(out / "annotations" / "VideoTrack.parquet").to_pylist()
    assert pq.read_table(target / "demo_VideoTrack" / "failures.parquet").num_rows == 0


def test_annotate_commands_say_what_is_missing(tmp_path):
    base = [sys.executable, "-m", "molmo2_data", "annotate"]
    push = subprocess.run(base + ["push", "--data-dir", str(tmp_path / "no-server"), "--kind", "video_point",
                                  "--project", "p", "--ingest", str(tmp_path), "--query", "q"],
                          capture_output=True, text=True, timeout=120)
    assert push.returncode == 2 and "annotate server start" in push.stderr and "Traceback" not in push.stderr
    norm = subprocess.run(base + ["normalize", "--project", "p", "--snapshots", str(tmp_path / "none"),
                                  "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert norm.returncode == 2 and "run a pull first" in norm.stderr and "Traceback" not in norm.stderr


def test_a_count_that_differs_from_the_ground_truth_is_named(demo):
    """The demo's checks are real: a VideoPoint count off by one is reported with both values."""
    from molmo2_data.demo_checks import count_mismatches

    clips, scenes, records = demo_truth(demo[0], "VideoPoint")
    assert count_mismatches(records, clips, scenes) == []
    records[1]["count"] += 1
    (line,) = count_mismatches(records, clips, scenes)
    assert line.startswith(records[1]["key"]) and f"count {records[1]['count']}, ground truth " \
        f"{records[1]['count'] - 1}" in line


def test_a_failed_demo_check_prints_what_differs_and_exits_1(tmp_path, monkeypatch, capsys):
    from molmo2_data import cli

    def short_run(argv):  # an ingest that lost a row: the demo must notice, not carry on
        return {"rows": 5, "outcomes": {"succeeded": 4, "failed": 1, "duplicate": 0}, "errors": {}, "clips": 0,
                "frames": 0, "shards": 0, "shard_bytes": 0, "seconds": 1.0, "clips_per_s": 0, "frames_per_s": 0}

    monkeypatch.setattr("pipelines.ingest.pipeline.run", short_run)
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--videos", "1", "--no-labelstudio"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "demo: a check failed: manifest rows read by ingest: expected 9, got 5"  # 1 video, 3 sets, 5 bad



def test_demo_publishes_every_dataset_and_says_where_the_report_is(demo):
    from shards.published import list_datasets, read_manifest, verify_version

    out, stdout = demo
    root = out / "published"
    human = sorted(p.stem for p in (out / "annotations").glob("*.parquet") if p.stem != "failures")
    datasets = sorted(human + ["CapQA", "SubtitleQA", "SynMultiImageQA"])
    assert list_datasets(str(root)) == datasets
    for dataset in datasets:
        manifest = read_manifest(str(root), dataset, "1.0.0")
        folder = out / ("annotations" if dataset in human else f"synth/{dataset}")
        rejected = 1 if dataset == "CapQA" else 0  # the demo's reviewer rejects one CapQA record
        assert sum(s["records"] for s in manifest["splits"].values()) == pq.read_table(
            folder / f"{dataset}.parquet").num_rows - rejected
        assert verify_version(str(root), dataset, "1.0.0").ok
        assert f"report: {root / dataset / '1.0.0' / 'report.html'}" in stdout


def test_demo_generates_reviews_and_publishes_the_synthetic_datasets(demo):
    """CapQA, SubtitleQA and SynMultiImageQA from the template backend, checked against the ground
    truth by the demo; the CapQA review round trip's decisions applied when publishing."""
    out, stdout = demo
    for dataset in ("CapQA", "SubtitleQA", "SynMultiImageQA"):
        records = pq.read_table(out / "synth" / dataset / f"{dataset}.parquet").to_pylist()
        assert records and all(r["provenance"]["method"] == "generated" for r in records)
        assert f"  {dataset:<16} {len(records)} records from" in stdout
    assert json.loads((out / "synth" / "media" / "shards.json").read_text())
    decisions = pq.read_table(out / "reviews" / "demo_review_CapQA" / "review_decision.parquet").to_pylist()
    assert sorted(d["decision"] for d in decisions).count("accept") == len(decisions) - 2
    stats = json.loads((out / "published" / "CapQA" / "1.0.0" / "stats.json").read_text())
    assert {k: v for k, v in stats["review"].items() if v} == {"accept": len(decisions) - 2, "edit": 1, "reject": 1}
    assert stats["excluded"] == {"review_rejected": 1}
