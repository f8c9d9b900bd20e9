"""pipelines.procedural.scenes: procedural videos whose ground truth holds in the decoded frames."""
from __future__ import annotations

import hashlib
import json

import av
import decord
import numpy as np
import pytest
import webvtt
from PIL import Image, UnidentifiedImageError

from pipelines.procedural.scenes import (
    STATUSES, TEST_MEDIA_KINDS, SceneSpec, draw_frame, generate_corpus, label_map,
    load_ground_truth, make_scene, render_scene, write_test_media, write_vtt,
)
from schemas.sampling import sample_times


def _decode(path) -> tuple[list[np.ndarray], list[float], list[int]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return ([f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames],
            [f.pts for f in frames])


def _centroid_errors(scene, images, indices=None) -> list[float]:
    """Distance (max of |dx|, |dy|) between the colour centroid and the true centre, for each
    fully shown object with no same-coloured object nearby."""
    errors = []
    w, h = scene.spec.width, scene.spec.height
    frames = scene.frames if indices is None else [scene.frames[i] for i in indices]
    for f, img in zip(frames, images, strict=True):
        for s in f.objects:
            if not (s.visible and s.visible_fraction == 1.0):
                continue
            rgb = np.array(scene.objects[s.object_id].rgb)
            x0, y0, x1, y1 = s.box
            c0, r0 = max(0, int(x0) - 3), max(0, int(y0) - 3)
            c1, r1 = min(w, int(x1) + 4), min(h, int(y1) + 4)
            if any(o.object_id != s.object_id and scene.objects[o.object_id].rgb == tuple(rgb)
                   and o.box[0] < c1 and o.box[2] > c0 and o.box[1] < r1 and o.box[3] > r0
                   for o in f.objects):
                continue
            mask = np.abs(img[r0:r1, c0:c1].astype(int) - rgb).max(axis=2) < 70
            ys, xs = np.nonzero(mask)
            assert len(xs), f"frame {f.index}: object {s.object_id} not found by colour"
            errors.append(max(abs(xs.mean() + c0 + 0.5 - s.x), abs(ys.mean() + r0 + 0.5 - s.y)))
    return errors


# ------------------------------------------------------------------ determinism

def test_same_seed_gives_identical_ground_truth_and_other_seeds_differ():
    a, b = make_scene(SceneSpec(seed=11)), make_scene(SceneSpec(seed=11))
    assert a.to_json() == b.to_json()
    assert make_scene(SceneSpec(seed=12)).to_json() != a.to_json()
    assert make_scene(SceneSpec(seed=11, vfr=True)).times != a.times


def test_ground_truth_json_round_trips():
    scene = make_scene(SceneSpec(seed=4, vfr=True, n_objects=4))
    text = scene.to_json()
    back = load_ground_truth(text)
    assert back == scene and back.to_json() == text
    d = json.loads(text)
    assert d["schema"] == "molmo2-data/scene-ground-truth" and d["time_base"] == "1/30000"
    assert len(d["frames"]) == d["n_frames"] and d["frames"][0]["objects"][0].keys() >= {
        "object_id", "label", "x", "y", "x_norm", "y_norm", "box", "status", "visible"}


@pytest.mark.parametrize("codec", ["h264", "vp9"])
def test_rendering_twice_gives_identical_bytes(tmp_path, codec):
    scene = make_scene(SceneSpec(seed=5, codec=codec, duration=2.0))
    ext = scene.spec.container_format
    one = render_scene(scene, tmp_path / f"a.{ext}").read_bytes()
    two = render_scene(scene, tmp_path / f"b.{ext}").read_bytes()
    assert hashlib.sha256(one).digest() == hashlib.sha256(two).digest()


# ------------------------------------------------------------------ pixels and timing

@pytest.mark.parametrize("codec,vfr", [("h264", False), ("h264", True), ("vp9", True), ("mpeg4", False)])
def test_decoded_frames_match_ground_truth(tmp_path, codec, vfr):
    scene = make_scene(SceneSpec(seed=21, codec=codec, vfr=vfr, n_objects=4, duration=3.0))
    path = render_scene(scene, tmp_path / f"s.{scene.spec.container_format}")
    images, times, pts = _decode(path)
    assert pts == [f.pts for f in scene.frames]
    assert times == pytest.approx(scene.times, abs=1e-9)
    errors = _centroid_errors(scene, images)
    assert len(errors) >= 40 and max(errors) <= 2.0
    # decord (the other decoder the project uses) agrees on times and pixels
    reader = decord.VideoReader(str(path))
    stamps = reader.get_frame_timestamp(range(len(reader)))[:, 0]
    assert stamps == pytest.approx(scene.times, abs=1e-3)
    picked = [0, len(reader) // 2, len(reader) - 1]
    assert max(_centroid_errors(scene, reader.get_batch(picked).asnumpy(), picked)) <= 2.0


def test_draw_frame_paints_the_label_map():
    scene = make_scene(SceneSpec(seed=3, background="plain"))
    i = next(f.index for f in scene.frames if f.occluder is not None)
    owner, img = label_map(scene, i), draw_frame(scene, i)
    assert (img[owner == -1] == 128).all() and (img[owner == -2] == 35).all()
    for obj in scene.objects:
        assert (img[owner == obj.object_id] == obj.rgb).all()


def test_variable_frame_rate_pts():
    scene = make_scene(SceneSpec(seed=8, vfr=True, fps=10, duration=4.0))
    steps = np.diff([f.pts for f in scene.frames])
    assert set(steps.tolist()) <= {1500, 3000, 4500} and len(set(steps.tolist())) >= 2  # 50/100/150 ms
    assert all(f.time == f.pts / 30000 for f in scene.frames)
    assert abs(np.mean(steps) / 30000 - 0.1) < 0.03
    webm = make_scene(SceneSpec(seed=8, vfr=True, codec="vp9"))
    assert webm.spec.ticks_per_second == 1000 and webm.times == scene.times


def test_ground_truth_at_returns_the_frame_played_at_t():
    scene = make_scene(SceneSpec(seed=8, vfr=True))
    for prev, nxt in zip(scene.frames, scene.frames[1:]):
        assert scene.ground_truth_at(prev.time) is prev
        assert scene.ground_truth_at((prev.time + nxt.time) / 2) is prev
        assert scene.ground_truth_at(nxt.time - 1e-9) is nxt  # float noise in the query
    assert scene.ground_truth_at(scene.duration) is scene.frames[-1]
    assert scene.ground_truth_at(1e6) is scene.frames[-1]
    with pytest.raises(ValueError):
        scene.ground_truth_at(-0.5)
    # Molmo 2 sample times (0.5 s grid plus the end) all land on a frame
    sampled = [scene.ground_truth_at(t).index for t in sample_times(scene.duration)]
    assert sampled == sorted(sampled) and sampled[-1] == len(scene.frames) - 1


# ------------------------------------------------------------------ visibility semantics

def test_object_that_leaves_and_comes_back_keeps_its_id():
    spec = SceneSpec(seed=2, n_objects=2, labels=("red circle", "blue square"),
                     behaviors=("return", "stay"), occluder=False)
    scene = make_scene(spec)
    track = scene.track(0)
    assert {s.object_id for s in track} == {0} and {s.label for s in track} == {"red circle"}
    vis = [s.visible for s in track]
    first_gone = vis.index(False)
    back = vis.index(True, first_gone)
    assert any(vis[:first_gone]) and not any(vis[first_gone:back]) and vis[back]
    assert all(s.status == "out_of_frame" for s in track[first_gone:back])
    kinds = [(e.kind, e.object_id) for e in scene.events if e.object_id == 0]
    assert kinds == [("leave", 0), ("return", 0)]
    assert "comes back" in scene.caption


def test_late_entry_is_out_of_frame_before_it_enters():
    scene = make_scene(SceneSpec(seed=6, n_objects=2, behaviors=("enter", "stay")))
    enter = next(e for e in scene.events if e.object_id == 0)
    assert enter.kind == "enter" and enter.time > 0
    for f in scene.frames:
        if f.time < enter.time:
            assert f.state(0).status == "out_of_frame" and not f.state(0).visible


@pytest.mark.parametrize("seed", range(6))
def test_status_follows_its_definition(seed):
    scene = make_scene(SceneSpec(seed=seed, n_objects=5))
    seen = set()
    for f in scene.frames:
        for s in f.objects:
            seen.add(s.status)
            assert s.status in STATUSES and s.visible == (s.status == "visible")
            assert 0 <= s.visible_fraction <= s.in_frame_fraction <= 1
            assert s.x_norm == round(s.x / scene.spec.width, 6)
            centre_in = 0 <= s.x < scene.spec.width and 0 <= s.y < scene.spec.height
            if s.status == "out_of_frame":
                assert not centre_in or s.in_frame_fraction < 0.5
            else:
                assert centre_in and s.in_frame_fraction >= 0.5
            if s.status == "visible":
                assert s.visible_fraction >= 0.5
                assert f.occluder is None or not f.occluder[0] <= s.x < f.occluder[1]
    assert {"visible", "out_of_frame"} <= seen


def test_occluder_bar_hides_objects():
    scenes = [make_scene(SceneSpec(seed=k, enter_exit=False, n_objects=4)) for k in range(3)]
    hidden = [(f, s) for sc in scenes for f in sc.frames for s in f.objects
              if s.status == "occluded" and f.occluder and f.occluder[0] <= s.x < f.occluder[1]]
    assert hidden
    assert all(s.in_frame_fraction == 1.0 and not s.visible for _, s in hidden)


# ------------------------------------------------------------------ counts and text

def test_counts_and_counting_question():
    spec = SceneSpec(seed=1, labels=("red circle", "red circle", "blue square"),
                     behaviors=("stay", "enter", "return"))
    scene = make_scene(spec)
    assert scene.counts == {"red circle": 2, "blue square": 1}
    qa = next(q for q in scene.qa if q.category == "counting")
    assert qa.question == "How many red circles appear in the video?" and qa.answer == "2"
    assert "In total the video shows 1 blue square and 2 red circles." in scene.caption


@pytest.mark.parametrize("seed", range(5))
def test_text_is_consistent_with_the_scene(seed):
    scene = make_scene(SceneSpec(seed=seed, n_objects=4))
    for label in scene.counts:
        assert label in scene.caption
    assert scene.qa
    for q in scene.qa:
        assert len(q.negatives) == 3 and len(set(q.negatives)) == 3 and q.answer not in q.negatives
    starts = [c.start for c in scene.cues]
    assert starts[0] == 0.0 and starts == sorted(starts)
    assert all(c.start < c.end <= scene.duration for c in scene.cues)
    assert all(a.end <= b.start for a, b in zip(scene.cues, scene.cues[1:]))
    for e in scene.events:
        assert any(scene.objects[e.object_id].label in c.text and abs(c.start - e.time) < 1e-3
                   for c in scene.cues)


def test_vtt_parses_with_webvtt_py(tmp_path):
    scene = make_scene(SceneSpec(seed=9))
    vtt = webvtt.read(str(write_vtt(scene, tmp_path / "s.vtt")))
    assert [c.text for c in vtt] == [c.text for c in scene.cues]
    seconds = lambda stamp: sum(float(v) * m for v, m in zip(stamp.split(":"), (3600, 60, 1)))  # noqa: E731
    assert [seconds(c.start) for c in vtt] == pytest.approx([c.start for c in scene.cues], abs=1e-9)
    assert [seconds(c.end) for c in vtt] == pytest.approx([c.end for c in scene.cues], abs=1e-9)
    assert make_scene(SceneSpec(seed=9, subtitles=False)).cues == ()


# ------------------------------------------------------------------ corpus

def test_generate_corpus_is_reproducible(tmp_path):
    one = generate_corpus(tmp_path / "a", 3, seed=5, duration=2.0)
    two = generate_corpus(tmp_path / "b", 3, seed=5, duration=2.0)
    for x, y in zip(one, two):
        assert x.key == y.key and x.video.read_bytes() == y.video.read_bytes()
        assert x.ground_truth.read_bytes() == y.ground_truth.read_bytes()
        scene = load_ground_truth(x.ground_truth.read_text())
        assert scene == make_scene(x.spec) and x.subtitles.exists()
        assert "." not in x.key and x.video.stem == x.ground_truth.stem == x.key
    assert len({f.spec for f in one}) == 3
    with pytest.raises(TypeError):
        generate_corpus(tmp_path / "c", 1, colour="red")


_CORPUS_HASHES = """
import hashlib, json, os, sys
from pipelines.procedural.scenes import generate_corpus
if sys.argv[2] == "one-cpu":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
files = generate_corpus(sys.argv[1], 12, seed=5, duration=2.0)
print(json.dumps({f.key: hashlib.sha256(f.video.read_bytes()).hexdigest() for f in files}))
"""


def _corpus_hashes(tmp_path, name: str, how: str, hash_seed: str) -> dict[str, str]:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONHASHSEED": hash_seed}  # another hash seed: other allocations before each encode
    proc = subprocess.run([sys.executable, "-c", _CORPUS_HASHES, str(tmp_path / name), how], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_encoding_is_byte_identical_under_load_on_one_cpu_and_after_other_encodes(tmp_path):
    """Fault 6: a busy machine changed the encoded bytes. Compare a quiet run with one while two
    other processes spin the CPU, with one limited to a single CPU (encoder threads follow the CPU
    count), and encodes repeated in one process (x264's mbtree read leftover memory)."""
    import subprocess
    import sys

    from pipelines.procedural.scene_media import _corpus_spec, encode_video_bytes

    quiet = _corpus_hashes(tmp_path, "quiet", "all-cpus", "0")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = _corpus_hashes(tmp_path, "busy", "all-cpus", "1")
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    one_cpu = _corpus_hashes(tmp_path, "one-cpu", "one-cpu", "2")
    differ = sorted(k for k in quiet if not quiet[k] == busy[k] == one_cpu[k])
    assert not differ, f"{len(differ)} of {len(quiet)} videos differ between quiet, busy and one-CPU runs: {differ}"
    import dataclasses

    for i in range(6):  # the same scene again and again, after other encodes, in one process
        scene = make_scene(dataclasses.replace(_corpus_spec(5, i), duration=2.0))
        assert len({hashlib.sha256(encode_video_bytes(scene)).digest() for _ in range(4)}) == 1, i


# ------------------------------------------------------------------ bad and unusual media

def test_spec_validation():
    for bad in (dict(labels=("purple circle",), n_objects=1), dict(codec="hevc"),
                dict(codec="h264", container="webm"), dict(width=161), dict(n_objects=0),
                dict(behaviors=("stay",), n_objects=2)):
        with pytest.raises(ValueError):
            SceneSpec(**bad)
    with pytest.raises(ValueError, match="12 frames"):
        make_scene(SceneSpec(duration=1.0))


@pytest.mark.parametrize("kind,name", [("empty", "e.mp4"), ("truncated_mp4", "t.mp4"),
                                       ("text_as_mp4", "x.mp4")])
def test_unopenable_videos(tmp_path, kind, name):
    path = write_test_media(kind, tmp_path / name)
    assert path.exists() and (path.stat().st_size == 0) == (kind == "empty")
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(path))


def test_truncated_faststart_mp4_opens_then_runs_out(tmp_path):
    path = write_test_media("truncated_faststart_mp4", tmp_path / "t.mp4")
    decoded = 0
    with pytest.raises(av.error.InvalidDataError):
        with av.open(str(path)) as c:
            assert c.streams.video[0].frames == 40  # the index promises a whole clip
            for _ in c.decode(video=0):
                decoded += 1
    assert decoded < 40


@pytest.mark.parametrize("name,codec", [("a.m4a", "aac"), ("a.mp3", "mp3float"), ("a.ogg", "opus")])
def test_audio_only(tmp_path, name, codec):
    with av.open(str(write_test_media("audio_only", tmp_path / name))) as c:
        assert len(c.streams.video) == 0 and len(c.streams.audio) == 1
        assert c.streams.audio[0].codec_context.name == codec and c.duration > 1_500_000


def test_rotated_phone_video_reports_rotation(tmp_path):
    path = write_test_media("rotated", tmp_path / "r.mp4")
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert frame.rotation == -90 and (frame.width, frame.height) == (160, 120)  # coded, unrotated
    assert decord.VideoReader(str(path))[0].shape == (160, 120, 3)  # decord applies the rotation


def test_malformed_vtt_and_fake_image(tmp_path):
    with pytest.raises(webvtt.errors.MalformedFileError):
        webvtt.read(str(write_test_media("malformed_vtt", tmp_path / "m.vtt")))
    with pytest.raises(UnidentifiedImageError):
        Image.open(write_test_media("text_as_jpg", tmp_path / "x.jpg"))


def test_images_are_frame_zero(tmp_path):
    spec = SceneSpec(seed=3)
    png = np.asarray(Image.open(write_test_media("png", tmp_path / "i.png", spec=spec)))
    assert (png == draw_frame(make_scene(spec), 0)).all()
    jpg = Image.open(write_test_media("jpeg", tmp_path / "i.jpg", spec=spec))
    assert jpg.format == "JPEG" and jpg.size == (160, 120)


def test_near_duplicate_is_the_same_scene_smaller(tmp_path):
    spec = SceneSpec(seed=3)
    original = render_scene(make_scene(spec), tmp_path / "o.mp4")
    dup = write_test_media("near_duplicate", tmp_path / "d.mp4", spec=spec)
    a, ta, _ = _decode(original)
    b, tb, _ = _decode(dup)
    assert ta == tb and b[0].shape == (90, 120, 3) and dup.read_bytes() != original.read_bytes()
    small = [np.asarray(Image.fromarray(x).resize((120, 90), Image.BILINEAR)).astype(int) for x in a]
    assert max(np.abs(s - y).mean() for s, y in zip(small, b)) < 8


def test_every_kind_is_covered():
    assert set(TEST_MEDIA_KINDS) == {
        "empty", "truncated_mp4", "truncated_faststart_mp4", "text_as_mp4", "audio_only",
        "rotated", "malformed_vtt", "text_as_jpg", "png", "jpeg", "near_duplicate"}
    with pytest.raises(ValueError):
        write_test_media("corrupt_gif", "x.gif")
