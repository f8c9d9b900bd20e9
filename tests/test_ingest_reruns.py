"""Reruns of one ingest output: what they reuse, what they say, and which ids survive them.

One small manifest (two procedural videos, a small distorted re-encode listed before its
original, ids that are not key-safe, image groups that agree and one that disagrees, a video and
an image set whose files appear only later) is ingested again and again into one output folder:
fresh; plainly rerun after the missing files appeared (failures remembered, not retried, and
said so); with ``--retry-failed``; with ``--cfr-mp4`` (mp4s added, no frame decoded again, every
clip id kept); with another JPEG quality (ids kept, frames rendered anew, shards rewritten).
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.ingest.config import IngestConfig
from schemas.record_types import make_key
from molmo2_data.ingest import print_summary
from pipelines.ingest.pipeline import run
from pipelines.procedural.scenes import SceneSpec, generate_corpus, write_test_media
from shards.reader import iter_samples

CONFIG = {"fetch": {"retries": 0}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reruns")
    media = folder / "media"
    good = generate_corpus(media, 2, seed=11, duration=2.0)
    distorted = media / f"distorted{good[1].video.suffix}"
    write_test_media("near_duplicate", distorted, spec=good[1].spec)  # 3/4 size, lower quality
    images = [write_test_media("jpeg", media / f"i{i}.jpg", spec=SceneSpec(seed=200 + i)) for i in range(4)]
    rows = [
        {"id": "clip.01", "path": str(good[0].video)},
        {"id": "distorted", "path": str(distorted)},  # before the original: must not win by that
        {"id": "original", "path": str(good[1].video)},
        {"id": "late", "path": str(media / "late.mp4")},  # missing at first
        {"id": "mix_a", "image": str(images[0]), "group": "mixed", "license": "CC-BY-4.0"},
        {"id": "mix_b", "image": str(images[1]), "group": "mixed", "license": "MIT"},
        {"id": "mix_c", "image": str(images[2]), "group": "mixed"},
        {"id": "pet.a", "image": str(images[2]), "group": "pets", "license": "CC0-1.0"},
        {"id": "pet.b", "image": str(images[3]), "group": "pets", "license": "CC0-1.0"},
        {"id": "set.one", "images": [str(images[0]), str(media / "late.jpg")]},  # missing at first
    ]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    late = {media / "late.mp4": folder / "late-source.mp4", media / "late.jpg": folder / "late-source.jpg"}
    generate_corpus(folder / "later", 1, seed=12, duration=2.0, codec="h264")[0].video.rename(folder / "late-source.mp4")
    write_test_media("jpeg", folder / "late-source.jpg", spec=SceneSpec(seed=300))
    return manifest, late, folder / "out"


def _ingest(corpus, *extra, config=None):
    manifest, _, out = corpus
    summary = run(["--manifest", str(manifest), "--out", str(out), *extra],
                  config=IngestConfig.from_dict(config or CONFIG))
    printed = io.StringIO()
    print_summary(summary, str(out), file=printed)
    return summary, printed.getvalue()


def _table(out: Path, name: str) -> list[dict]:
    return pq.read_table(out / f"{name}.parquet").to_pylist()


def _frame_metas(out: Path) -> dict[Path, int]:
    return {m: m.stat().st_mtime_ns for m in (out / ".work" / "frames").glob("*/*/meta.json")
            if "-mp4-" not in m.parent.name}


def _without_this_run(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("this_run")
    return summary


@pytest.fixture(scope="module")
def runs(corpus):
    """Fresh run, then the missing files appear, then a plain rerun, then --retry-failed."""
    _, late, out = corpus
    fresh = _ingest(corpus)
    fresh_state = (_without_this_run(out), {n: (out / f"{n}.parquet").read_bytes() for n in ("clips", "failures")})
    for target, source in late.items():
        shutil.copyfile(source, target)
    rerun = _ingest(corpus)
    rerun_state = (_without_this_run(out), {n: (out / f"{n}.parquet").read_bytes() for n in ("clips", "failures")})
    retried = _ingest(corpus, "--retry-failed")
    return {"fresh": fresh, "fresh_state": fresh_state, "rerun": rerun, "rerun_state": rerun_state,
            "retried": retried, "retried_clips": _table(out, "clips")}


# ------------------------------------------------------------------ fault 3: conflicting groups
def test_a_group_with_conflicting_licenses_fails_every_row_naming_the_values(runs, corpus):
    out = corpus[2]
    failures = {r["input_id"]: r for r in _table(out, "failures")}
    for member in ("mix_a", "mix_b", "mix_c"):
        record = failures[member]
        assert (record["outcome"], record["stage"], record["error_type"]) == (
            "failed", "image", "conflicting_group_field")
        assert "'license': 'CC-BY-4.0' (mix_a) vs 'MIT' (mix_b) vs not given (mix_c)" in record["message"]
    sets = _table(out, "imagesets")
    grouped = [s for s in sets if s["given_id"] is None]
    assert [[i["given_id"] for i in s["images"]] for s in grouped] == [["pet.a", "pet.b"]]
    assert grouped[0]["license"] == "CC0-1.0"
    assert not any(i["given_id"] and i["given_id"].startswith("mix") for s in sets for i in s["images"])


def test_image_set_failures_are_remembered_and_retried_only_when_asked(runs, corpus):
    fresh, rerun, retried = runs["fresh"][0], runs["rerun"][0], runs["retried"][0]
    assert fresh["errors"]["fetch/not_found"] == 2  # late.mp4 and set.one's late.jpg
    assert rerun["errors"]["fetch/not_found"] == 2, "the files exist now, but the failures are remembered"
    remembered = rerun["this_run"]["remembered_failures"]
    assert remembered["count"] == 2 and remembered["by_error"] == {"fetch/not_found": 2}
    assert [e["input_id"] for e in remembered["examples"]] == ["late", make_key("set.one")]
    assert "fetch/not_found" not in retried["errors"]
    assert retried["this_run"]["remembered_failures"]["count"] == 0
    sets = {s["given_id"]: s for s in _table(corpus[2], "imagesets")}
    assert [i["uri"].rsplit("/", 1)[-1] for i in sets["set.one"]["images"]] == ["i0.jpg", "late.jpg"]


# ------------------------------------------------------------------ friction: what a rerun says
def test_a_rerun_says_what_it_reused_and_which_failures_are_remembered(runs):
    fresh, printed_fresh = runs["fresh"]
    rerun, printed = runs["rerun"]
    assert fresh["this_run"]["reused"] == {"downloads": 0, "clips": 0, "mp4s": 0, "shards": 0}
    assert fresh["this_run"]["made"]["clips"] == 3 and fresh["this_run"]["made"]["shards"] == rerun["shards"]
    assert "reused" not in printed_fresh and "--retry-failed" not in printed_fresh
    assert rerun["this_run"]["made"] == {"downloads": 0, "clips": 0, "mp4s": 0, "shards": 0}
    assert rerun["this_run"]["reused"]["clips"] == 3 and rerun["this_run"]["reused"]["shards"] == rerun["shards"]
    assert rerun["this_run"]["reused"]["downloads"] == 3 + 2  # three videos, the pets' two images
    assert "reused (found already made, not made again): 5 downloads, 3 decoded clips" in printed
    assert f"{rerun['shards']} committed shards" in printed
    assert "2 failure(s) remembered from an earlier run, not retried: late (fetch/not_found)" in printed
    assert "rerun with --retry-failed to retry them" in printed
    # what the rerun wrote is what the fresh run wrote: only this_run differs
    assert runs["rerun_state"] == runs["fresh_state"]


# ------------------------------------------------------------------ friction: the best copy is kept
def test_near_duplicates_keep_the_best_copy_not_the_first(runs, corpus):
    failures = {r["input_id"]: r for r in _table(corpus[2], "failures")}
    assert failures["distorted"]["outcome"] == "duplicate"
    assert failures["distorted"]["duplicate_of"] == "original"
    assert "original" in {v["key"] for v in _table(corpus[2], "videos")}


# ------------------------------------------------------------------ friction: ids that are not keys
def test_rewritten_ids_are_said_once_and_kept_in_the_records(runs, corpus):
    summary, printed = runs["fresh"]
    videos = {v["given_id"]: v for v in _table(corpus[2], "videos")}
    key = videos["clip.01"]["key"]
    assert key.startswith("clip_01-") and "." not in key
    assert videos["original"]["key"] == "original"
    assert summary["rewritten_ids"]["count"] == 4  # clip.01, pet.a, pet.b, set.one
    assert {"given": "clip.01", "key": key} in summary["rewritten_ids"]["examples"]
    (warning,) = summary["warnings"]
    assert f"'clip.01' -> '{key}'" in warning and "given_id" in warning
    assert printed.count("warning:") == 1 and f"'clip.01' -> '{key}'" in printed
    clips = {c["video_id"] for c in _table(corpus[2], "clips")}
    assert key in clips


# ------------------------------------------------------------------ fault 4: clip identity
def test_adding_mp4s_reuses_the_clips_and_keeps_every_id(runs, corpus):
    out = corpus[2]
    before = runs["retried_clips"]
    frames = _frame_metas(out)
    summary, printed = _ingest(corpus, "--cfr-mp4")
    clips = _table(out, "clips")
    assert sorted(c["key"] for c in clips) == sorted(c["key"] for c in before)
    assert _frame_metas(out) == frames, "no frame was decoded again"
    made, reused = summary["this_run"]["made"], summary["this_run"]["reused"]
    assert made["clips"] == 0 and made["downloads"] == 0 and reused["clips"] == len(clips) + 1  # + the distorted copy
    assert made["mp4s"] + reused["mp4s"] == len(clips) + 1 and made["mp4s"] >= len(clips)
    for clip in clips:
        assert clip["mp4"] == f"media/{clip['key']}.mp4" and (out / clip["mp4"]).stat().st_size > 0
        same = next(c for c in before if c["key"] == clip["key"])
        assert {k: v for k, v in clip.items() if not k.startswith("mp4")} == {
            k: v for k, v in same.items() if not k.startswith("mp4")}


def test_another_jpeg_quality_keeps_ids_but_renders_anew(runs, corpus):
    out = corpus[2]
    before = {c["key"]: c for c in _table(out, "clips")}
    shards = {s["shard"]: s for s in json.loads((out / "shards.json").read_text())}

    def jpeg_bytes():
        return sum(len(v) for info in json.loads((out / "shards.json").read_text()) if info["shard"].startswith("clips/")
                   for sample in iter_samples(out / info["shard"]) for k, v in sample.items() if k.endswith(".jpg"))

    size = jpeg_bytes()
    summary, _ = _ingest(corpus, "--cfr-mp4", config={**CONFIG, "frames": {"jpeg_quality": 30}})
    after = {c["key"]: c for c in _table(out, "clips")}
    assert after == before, "same ids, same records"
    made, reused = summary["this_run"]["made"], summary["this_run"]["reused"]
    assert made["clips"] >= len(after) and made["mp4s"] == 0, "frames rendered anew, mp4s kept"
    new_shards = {s["shard"]: s for s in json.loads((out / "shards.json").read_text())}
    rewritten = [k for k in new_shards if k.startswith("clips/") and new_shards[k]["sha256"] != shards[k]["sha256"]]
    assert rewritten and made["shards"] >= len(rewritten)
    assert jpeg_bytes() < size
