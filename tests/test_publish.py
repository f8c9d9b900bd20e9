"""Publish: byte-identical versions, commit by manifest, reviews, record and dataset rules, diff.

One publish of a small corpus (7 clips, 2 image sets, four datasets) is shared by the tests that
only read it; tests that change inputs or settings publish their own.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.publish.config import PublishConfig
from pipelines.publish.version import VersionConflict, publish
from shards.published import list_versions, read_manifest, verify_version
from tests.publish_inputs import (
    ClipSpec, SetSpec, cap_qa, make_ingest, multi_image_point, video_point, video_track, write_records,
)

CLIPS = [ClipSpec(f"clip{i}", f"vid{i}", duration=[2.0, 4.5, 1.0, 3.0, 2.5, 6.0, 0.5][i],
                  split="validation" if i == 3 else "train") for i in range(7)]
SETS = [SetSpec("setA", images=3), SetSpec("setB", images=2, split="validation")]


def _records() -> dict[str, list[dict]]:
    vp = [video_point(f"vp{i}_{label}", c, [0.0, 0.5] if c.duration >= 0.5 else [0.0], label)
          for i, c in enumerate(CLIPS) for label in ("dot", "square")]
    return {
        "VideoPoint": vp,
        "VideoTrack": [video_track(f"vt{i}", c) for i, c in enumerate(CLIPS[:4])],
        "CapQA": [cap_qa(f"qa{i}", c) for i, c in enumerate(CLIPS[:3])],
        "MultiImagePoint": [multi_image_point(f"mip_{s.key}", s) for s in SETS],
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("publish")
    ingest = make_ingest(base / "ingest", CLIPS, SETS)
    records = write_records(base / "records", _records())
    return {"base": base, "ingest": str(ingest), "records": str(records)}


@pytest.fixture(scope="module")
def published(corpus):
    root = str(corpus["base"] / "root")
    result = publish(root, [corpus["ingest"]], [corpus["records"]], PublishConfig(version="1.0.0"))
    return {**corpus, "root": root, "result": result}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "build_info.json"}


def test_every_dataset_committed_with_one_sample_per_media_item(published):
    result, root = published["result"], published["root"]
    assert sorted(result.published) == ["CapQA", "MultiImagePoint", "VideoPoint", "VideoTrack"]
    assert not result.blocked and not result.unchanged
    vp = read_manifest(root, "VideoPoint", "1.0.0")
    assert vp["splits"]["train"] == {"samples": 6, "records": 12, "bytes": vp["splits"]["train"]["bytes"]}
    assert vp["splits"]["validation"]["samples"] == 1 and vp["splits"]["validation"]["records"] == 2
    assert {s["name"] for s in vp["shards"]} == {"train-000000.tar", "validation-000000.tar"}
    for dataset in result.published:
        assert verify_version(root, dataset, "1.0.0").ok
    stats = json.loads((Path(root) / "VideoPoint/1.0.0/stats.json").read_text())
    assert stats["records"] == {"read": 14, "published": 14, "failed": 0, "excluded": 0}
    assert dict(map(tuple, stats["histograms"]["frames_per_clip"])) == {5: 1, 10: 1, 3: 1, 7: 1, 6: 1, 13: 1, 2: 1}


def test_sample_holds_media_records_source_license_and_stored_frames(published):
    from shards.dataset import PublishedSplit

    sample = PublishedSplit(published["root"], "VideoPoint", "1.0.0", "train")["clip1"]
    body = json.loads(sample["json"])
    assert body["media_type"] == "clip" and body["clip"]["key"] == "clip1" and body["clip"]["mp4"] is None
    assert (body["source"], body["license"], body["split"], body["source_ids"]) == ("testsource", "CC-BY-4.0",
                                                                                      "train", ["vid1"])
    assert [r["key"] for r in body["records"]] == ["vp1_dot", "vp1_square"]
    assert body["frames"] == [f"{i:03d}.jpg" for i in range(10)]
    ingest_frames = {k: v for k, v in _ingest_sample(published["ingest"], "clip1").items() if k.endswith(".jpg")}
    assert {k: sample[k] for k in body["frames"]} == ingest_frames  # stored bytes, not re-encoded
    sets = PublishedSplit(published["root"], "MultiImagePoint", "1.0.0", "train")["setA"]
    assert json.loads(sets["json"])["frames"] == ["000.png", "001.png", "002.png"]
    assert sets["000.png"].startswith(b"\x89PNG")


def _ingest_sample(ingest: str, key: str) -> dict:
    from shards.reader import iter_samples

    return next(s for s in iter_samples(f"{ingest}/clips/clips-000000.tar") if s["__key__"] == key)


def test_same_inputs_give_byte_identical_versions_and_republish_is_a_noop(published, tmp_path):
    again = publish(str(tmp_path), [published["ingest"]], [published["records"]], PublishConfig(version="1.0.0"))
    assert sorted(again.published) == sorted(published["result"].published)
    for dataset in again.published:
        assert _files(tmp_path / dataset / "1.0.0") == _files(Path(published["root"]) / dataset / "1.0.0")
    before = _files(tmp_path / "VideoPoint" / "1.0.0")
    same = publish(str(tmp_path), [published["ingest"]], [published["records"]], PublishConfig(version="1.0.0"))
    assert sorted(same.unchanged) == sorted(again.published) and not same.published
    assert _files(tmp_path / "VideoPoint" / "1.0.0") == before


def test_a_different_version_under_an_existing_number_is_refused_naming_the_difference(published):
    with pytest.raises(VersionConflict, match=r"VideoPoint 1\.0\.0 exists with other config\.shard_max_bytes: "
                                              r"1000000000 -> 200000"):
        publish(published["root"], [published["ingest"]], [published["records"]],
                PublishConfig(version="1.0.0", shard_max_bytes=200_000, datasets=("VideoPoint",)))


def test_shards_are_size_capped_and_sorted_within(corpus, tmp_path):
    result = publish(str(tmp_path), [corpus["ingest"]], [corpus["records"]],
                     PublishConfig(version="1.0.0", shard_max_bytes=1 << 16, datasets=("VideoPoint",)))
    manifest = result.published["VideoPoint"]
    train = [s for s in manifest["shards"] if s["split"] == "train"]
    assert len(train) >= 2 and all(s["num_bytes"] <= 1 << 16 for s in manifest["shards"])
    assert [s["name"] for s in train] == [f"train-{i:06d}.tar" for i in range(len(train))]
    from shards.reader import iter_samples

    for shard in manifest["shards"]:
        keys = [s["__key__"] for s in iter_samples(tmp_path / "VideoPoint" / "1.0.0" / shard["name"])]
        assert keys == sorted(keys) and len(keys) == shard["num_samples"]
    assert sum(s["num_samples"] for s in train) == 6
    assert verify_version(str(tmp_path), "VideoPoint", "1.0.0").ok


def test_review_decisions_reject_edit_accept_counted(corpus, tmp_path):
    def decision(key, record_key, what, **extra):
        return {"key": key, "dataset": "CapQA", "record_key": record_key, "decision": what, "reviewer": "rev@x.org",
                "decided_at": "2026-11-27T10:00:00Z", **extra}

    reviews = tmp_path / "reviews.jsonl"
    rows = [decision("d1", "qa0", "reject"), decision("d2", "qa1", "edit", edits={"answer": "Bright yellow"}),
            decision("d3", "qa2", "accept"), decision("d4", "qa9", "accept"),
            {**decision("d5", "qa2", "reject"), "decided_at": "2026-11-26T10:00:00Z"},  # older: superseded
            decision("d6", "qa1", "bogus")]
    reviews.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import shutil

    records = tmp_path / "records"  # as annotate normalize leaves it: held-back tasks in review.jsonl
    shutil.copytree(corpus["records"], records)
    held = [{"task_id": n, "task_key": f"t{n}", "dataset": "CapQA", "reasons": ["disagree"], "candidates": []}
            for n in (7, 8)]
    (records / "review.jsonl").write_text("".join(json.dumps(h) + "\n" for h in held))
    result = publish(str(tmp_path / "root"), [corpus["ingest"]], [str(records)],
                     PublishConfig(version="1.0.0", datasets=("CapQA",)), reviews=[str(reviews)])
    where = tmp_path / "root" / "CapQA" / "1.0.0"
    stats = json.loads((where / "stats.json").read_text())
    assert stats["records"] == {"read": 3, "published": 2, "failed": 0, "excluded": 1}
    assert stats["excluded"] == {"review_rejected": 1}
    assert stats["review"] == {"accept": 1, "edit": 1, "invalid": 1, "no_such_record": 1, "reject": 1,
                               "superseded": 1, "under_review": 2}
    from shards.dataset import PublishedSplit

    data = PublishedSplit(str(tmp_path / "root"), "CapQA", "1.0.0", "train")
    assert data.keys() == ["clip1", "clip2"]
    assert json.loads(data["clip1"]["json"])["records"][0]["answer"] == "Bright yellow"
    assert [json.loads(line)["key"] for line in (where / "exclusions.jsonl").read_text().splitlines()] == ["qa0"]
    assert result.published["CapQA"]["splits"]["train"]["records"] == 2


def test_broken_record_rules_leave_the_record_out_naming_the_rule(corpus, tmp_path):
    records = _records()
    long = ClipSpec("longclip", "vidlong", duration=100.0)  # 128 frames over 100 s: not on the 0.5 s grid
    ingest = make_ingest(tmp_path / "ingest", [*CLIPS, long])
    bad = {
        "CapQA": [cap_qa("qa_dup", CLIPS[0], answer="Yellow", negatives=["yellow.", "Red", "Blue"]),
                  cap_qa("qa_ok", CLIPS[1])],
        "VideoPoint": [*records["VideoPoint"],
                       {**video_point("vp_offclip", CLIPS[0], [0.5]), "clip_start": 1.0, "clip_end": 3.0},
                       {**video_point("vp_notsampled", long, [0.5]), "duration": 120.0},
                       video_point("vp_sampled", CLIPS[6], [0.5])],  # clip6 lasts 0.5 s: times 0, 0.5
        "VideoTrack": [{**video_track("vt_nomedia", CLIPS[0]), "clip_id": "nosuchclip"}],
    }
    folder = write_records(tmp_path / "records", bad, fmt="jsonl")
    broken = json.loads((folder / "VideoPoint.jsonl").read_text().splitlines()[0])
    broken["points"][0]["x"] = 1.5  # breaks the schema: failure naming the field
    with (folder / "VideoPoint.jsonl").open("a") as f:
        f.write(json.dumps({**broken, "key": "vp_schema"}) + "\n" + "{not json\n")
    result = publish(str(tmp_path / "root"), [str(ingest)], [str(folder)],
                     PublishConfig(version="1.0.0", max_failure_rate=1.0))
    failures = {}
    for dataset in ("CapQA", "VideoPoint"):
        table = pq.read_table(tmp_path / "root" / dataset / "1.0.0" / "failures.parquet").to_pylist()
        failures.update({f["input_id"]: (f["error_type"], f["message"]) for f in table})
    assert failures["CapQA/qa_dup"][0] == "invalid_record"  # distinct after normalizing: a schema rule
    assert "after normalizing" in failures["CapQA/qa_dup"][1]
    assert failures["VideoPoint/vp_offclip"][0] == "rule:clip_matches_media"
    assert failures["VideoPoint/vp_notsampled"][0] == "rule:point_times_sampled"
    assert "breaks the record rule point_times_sampled" in failures["VideoPoint/vp_notsampled"][1]
    assert "points[1].x" in failures["VideoPoint/vp_schema"][1] or "points[0].x" in failures["VideoPoint/vp_schema"][1]
    assert failures["VideoPoint/vp_schema"][0] == "invalid_record"
    assert any(t == "not_json" for t, _ in failures.values())
    assert "VideoTrack" in result.blocked  # its only record names no known clip: nothing to publish
    stats = json.loads((tmp_path / "root" / "VideoPoint" / "1.0.0" / "stats.json").read_text())
    assert stats["failed"] == {"invalid_record": 1, "not_json": 1, "rule:clip_matches_media": 1,
                               "rule:point_times_sampled": 1}
    assert stats["records"]["read"] == stats["records"]["published"] + stats["records"]["failed"]
    published_keys = [r["key"] for r in _all_records(tmp_path / "root", "VideoPoint")]
    assert "vp_sampled" in published_keys and "vp_notsampled" not in published_keys


def _all_records(root: Path, dataset: str) -> list[dict]:
    from shards.reader import iter_samples

    out = []
    for tar in sorted((root / dataset / "1.0.0").glob("*.tar")):
        for sample in iter_samples(tar, decode_json=True):
            out.extend(sample["json"]["records"])
    return out


def test_dataset_rules_block_the_dataset_naming_rule_and_keys(tmp_path):
    clips = [ClipSpec("leakA", "vidX", split="train"), ClipSpec("leakB", "vidX", start=5.0, split="validation"),
             ClipSpec("closed", "vidY", license="Proprietary-1.0")]
    ingest = make_ingest(tmp_path / "ingest", clips, [SetSpec("fine")])
    records = write_records(tmp_path / "records", {
        "VideoPoint": [video_point(f"vp_{c.key}", c, [0.0]) for c in clips],
        "MultiImagePoint": [multi_image_point("mip_fine", SetSpec("fine"))]})
    result = publish(str(tmp_path / "root"), [str(ingest)], [str(records)], PublishConfig(version="1.0.0"))
    assert list(result.published) == ["MultiImagePoint"]
    rules = {v["rule"]: v for v in result.blocked["VideoPoint"]}
    assert set(rules) == {"license", "split_leak"}
    assert rules["license"]["keys"] == ["closed (Proprietary-1.0)"]
    assert rules["split_leak"]["keys"] == ["vidX (train:leakA, validation:leakB)"]
    assert list_versions(str(tmp_path / "root"), "VideoPoint") == []
    assert not (tmp_path / "root" / "VideoPoint" / "1.0.0").exists()


def test_takedown_and_license_filter_then_diff_says_what_left_and_why(published, tmp_path):
    root = str(tmp_path)
    base = PublishConfig(version="1.0.0", datasets=("VideoPoint",))
    publish(root, [published["ingest"]], [published["records"]], base)
    takedown = tmp_path / "takedown.txt"
    takedown.write_text("# legal request 17\nvid2\n")
    result = publish(root, [published["ingest"]], [published["records"]],
                     PublishConfig(version="1.1.0", datasets=("VideoPoint",)), takedown=str(takedown))
    manifest = result.published["VideoPoint"]
    assert manifest["parent_version"] == "1.0.0"
    assert [i["kind"] for i in manifest["inputs"]] == ["ingest", "records", "takedown"]
    from pipelines.publish.diff import diff_versions

    diff = diff_versions(root, "VideoPoint", "1.0.0", "1.1.0")
    assert diff["removed"] == {"clip2": "takedown"} and not diff["added"] and not diff["changed"]
    assert diff["unchanged"] == 6
    only_cc0 = publish(root, [published["ingest"]], [published["records"]],
                       PublishConfig(version="1.2.0", datasets=("VideoPoint", "MultiImagePoint"),
                                     licenses=("CC0-1.0",)))
    assert "VideoPoint" in only_cc0.blocked and only_cc0.blocked["VideoPoint"][0]["rule"] == "empty"
    stats = json.loads((tmp_path / "MultiImagePoint" / "1.2.0" / "stats.json").read_text())
    assert stats["records"]["excluded"] == 0 and stats["records"]["published"] == 2


def test_records_from_an_older_schema_version_are_migrated(corpus, tmp_path):
    from schemas.records import DATASETS

    old = copy.deepcopy(_records()["VideoPoint"][:2])
    for r in old:  # as written by schema version 1: 0-100 coordinates, no provenance
        r["schema_version"] = 1
        del r["provenance"]
        for p in r["points"]:
            p["x"], p["y"] = p["x"] * 100, p["y"] * 100
    folder = write_records(tmp_path / "records", {"VideoPoint": old}, fmt="jsonl")
    result = publish(str(tmp_path / "root"), [corpus["ingest"]], [str(folder)], PublishConfig(version="1.0.0"))
    records = _all_records(tmp_path / "root", "VideoPoint")
    assert result.published and {r["schema_version"] for r in records} == {DATASETS["VideoPoint"].SCHEMA_VERSION}
    assert records[0]["points"][0]["x"] == pytest.approx(0.2)
    assert {r["provenance"]["method"] for r in records} == {"unrecorded"}
    stats = json.loads((tmp_path / "root" / "VideoPoint" / "1.0.0" / "stats.json").read_text())
    assert stats["histograms"]["provenance"] == [["unrecorded", 2]]


def test_video_tracks_are_resampled_to_the_clips_stored_sample_times(corpus, tmp_path):
    clip = CLIPS[0]  # 2.0 s: sample times 0, 0.5, 1, 1.5, 2
    frames = [round(0.1 * i, 1) for i in range(20)]  # a 10 fps track, as Label Studio gives it
    dense = {**video_track("vt_dense", clip), "fps": 10.0, "end_frame": 19, "timestamps": frames,
             "objects": [{"object_id": 3, "points": [{"x": round(0.04 * i, 2), "y": 0.5} for i in range(20)]}]}
    folder = write_records(tmp_path / "records", {"VideoTrack": [dense]})
    publish(str(tmp_path / "root"), [corpus["ingest"]], [str(folder)], PublishConfig(version="1.0.0"))
    (record,) = _all_records(tmp_path / "root", "VideoTrack")
    assert record["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [p["x"] for p in record["objects"][0]["points"]] == [0.0, 0.2, 0.4, 0.6, 0.76]  # frames 0, 5, 10, 15, 19


def test_a_record_key_in_two_inputs_fails_every_copy(corpus, tmp_path):
    one = write_records(tmp_path / "a", {"VideoPoint": [video_point("same", CLIPS[0], [0.0])]})
    two = write_records(tmp_path / "b", {"VideoPoint": [video_point("same", CLIPS[1], [0.0]),
                                                        video_point("other", CLIPS[1], [0.0])]})
    publish(str(tmp_path / "root"), [corpus["ingest"]], [str(one), str(two)],
            PublishConfig(version="1.0.0", max_failure_rate=1.0))
    failures = pq.read_table(tmp_path / "root" / "VideoPoint" / "1.0.0" / "failures.parquet").to_pylist()
    assert sorted(f["input_id"] for f in failures) == ["VideoPoint/same#1", "VideoPoint/same#2"]
    assert {f["error_type"] for f in failures} == {"duplicate_key"} and len({f["key"] for f in failures}) == 2
    assert [r["key"] for r in _all_records(tmp_path / "root", "VideoPoint")] == ["other"]


def test_publish_and_read_through_fsspec_memory_with_the_in_memory_runner(corpus):
    import fsspec

    from shards.dataset import open_dataset

    root = "memory://published-test"
    try:
        result = publish(root, [corpus["ingest"]], [corpus["records"]],
                         PublishConfig(version="1.0.0", datasets=("VideoTrack",)))
        assert result.published["VideoTrack"]["splits"]["train"]["samples"] == 3
        assert list_versions(root, "VideoTrack") == ["1.0.0"]
        assert verify_version(root, "VideoTrack", "1.0.0").ok
        keys = [s["__key__"] for s in open_dataset(root, "VideoTrack", "1.0.0", "train", rank=0, world_size=1)]
        assert sorted(keys) == ["clip0", "clip1", "clip2"]
        assert not fsspec.filesystem("memory").glob("/published-test/VideoTrack/1.0.0/.publish*")
    finally:
        fsspec.filesystem("memory").rm("/published-test", recursive=True)


def test_multi_process_runner_gives_the_same_bytes(published, tmp_path):
    beam_args = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    result = publish(str(tmp_path), [published["ingest"]], [published["records"]],
                     PublishConfig(version="1.0.0", datasets=("VideoPoint", "MultiImagePoint")), beam_args=beam_args)
    for dataset in ("VideoPoint", "MultiImagePoint"):
        assert dataset in result.published
        assert _files(tmp_path / dataset / "1.0.0") == _files(Path(published["root"]) / dataset / "1.0.0")


def test_an_image_only_ingest_output_needs_no_videos_table_in_any_order(tmp_path):
    """Only an ingest output that has clips must bring their videos (sources, licenses), whatever
    other ingest outputs come before it (synth's rendered image sets are such an output)."""
    from pipelines.publish.inputs import InputError, collect_inputs

    clip = ClipSpec("c1", "v1")
    with_clips = make_ingest(tmp_path / "clips", [clip])
    images_only = make_ingest(tmp_path / "sets", [], [SetSpec("s1")])
    (images_only / "videos.parquet").unlink()
    records = write_records(tmp_path / "records", {"VideoPoint": [video_point("vp", clip, [0.0])]})
    for order in ([with_clips, images_only], [images_only, with_clips]):
        inputs = collect_inputs([str(p) for p in order], [str(records)])
        assert {s.kind for s in inputs.media_shards} == {"clips", "imagesets"}
    (with_clips / "videos.parquet").unlink()
    with pytest.raises(InputError, match="clips but no videos.parquet"):
        collect_inputs([str(images_only), str(with_clips)], [str(records)])
