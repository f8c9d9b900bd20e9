"""Decode the frames played at the Molmo 2 sample times of a clip.

One job: given a video (a path or its bytes) and a clip window, return the frames shown at the
sample times of ``schemas.sampling.sample_times`` -- decoded by presentation time, so
variable-frame-rate video is never stepped by its average fps -- resized and upright.

Definitions used throughout (seconds, float64):

* **Frame start**: a frame's presentation time relative to the first frame, from decord's
  ``get_frame_timestamp`` (packet pts, sorted; float32, so rounded back to the stream's time
  base). The first frame starts at 0.
* **Video duration**: last frame start + last frame's duration (decord's stop time for that
  frame; ``1 / avg fps`` when the container gives none). This is what a player shows as the
  length, and the default clip end. A sample time equal to it lands on the last frame.
* **Frame at t**: the last frame whose start <= t (within float32 slop), clamped to the frames
  that exist.

Decoding: ``pipelines.ingest.video_file.VideoFile`` opens a video once (PyAV for the container, decord for the timeline).
Its frames come from ``pipelines.ingest.pts_decode`` (PyAV: only the wanted frames, by pts,
unwanted non-reference frames skipped, long gaps crossed by seeking, nothing read past the last
one, converted by decord's own filter chain) when PyAV's packets reproduce decord's timeline
exactly; otherwise, or for what that path could not finish, from decord. Both give the same
frame at each time and the same pixels (tested on H.264, VP9, VFR, rotated and real files).

Rotation: the display rotation comes from PyAV (the first frame's DISPLAYMATRIX side data).
decord 0.6.0 already applies that same rotation when it decodes (its FFmpeg 4.1 filter graph
transposes 90/180/270), so frames come out upright with no extra work; ``rotation=`` overrides
it. decord's rotated output is non-compact for a few narrow widths (dmlc/decord#336, e.g. 48 px);
those frames are re-read one at a time and repacked.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from schemas.sampling import DEFAULT_MAX_FPS, DEFAULT_MAX_FRAMES

__all__ = [
    "DecodeError",
    "VideoInfo",
    "DecodedClip",
    "probe",
    "frame_times",
    "indices_for_times",
    "decode_clip",
    "encode_jpeg",
]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]

ABS_EPS = 1e-6
"""Absolute slack (s) when comparing a sample time with a frame start."""
REL_EPS = 2.0 ** -21
"""Relative slack: decord reports times as float32 (about 6e-8 relative error, 4 ulps here)."""
_BATCH = 32  # frames per decord get_batch call: bounds the transient copy


class DecodeError(ValueError):
    """A source cannot be decoded as video: unreadable, empty, audio-only, not a video.

    Args:
        source: a name for the input (its path, or ``<N bytes>``).
        reason: what is wrong, one sentence.
        error_type: a stable slug to group failures by (``empty_file``, ``not_found``,
            ``unreadable``, ``no_video_stream``, ``no_frames``, ``decode_failed``).
    """

    def __init__(self, source: str, reason: str, error_type: str = "unreadable"):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason, self.error_type = source, reason, error_type

    def __reduce__(self):  # picklable across worker processes
        return (DecodeError, (self.source, self.reason, self.error_type))


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a video (zeros when ``has_video`` is False)."""

    duration: float
    """Seconds from the first frame's start to the last frame's end (see module docstring)."""
    fps: float
    """Average frame rate: ``num_frames / duration``."""
    num_frames: int
    """Frames decord indexes (one per video packet)."""
    width: int
    """Coded width in pixels, before rotation."""
    height: int
    """Coded height in pixels, before rotation."""
    rotation: int
    """Counter-clockwise degrees (0, 90, 180, 270) to turn a coded frame upright."""
    codec: str
    """Video codec name, e.g. ``h264``."""
    has_video: bool
    has_audio: bool
    start_time: float
    """Presentation time (s) of the first frame on the container's timeline."""

    @property
    def display_size(self) -> tuple[int, int]:
        """``(width, height)`` of an upright frame."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class DecodedClip:
    """Frames of one clip at its sample times."""

    timestamps: list[float]
    """Sample times relative to the clip start: ``sample_times(duration, ...)``."""
    frame_indices: list[int]
    """Index in the source video of the frame shown at each sample time."""
    frames: list[np.ndarray]
    """One uint8 RGB array (H, W, 3) per sample time, upright and resized."""
    duration: float
    """Clip length in seconds: ``end - start``."""
    start: float
    """Clip start in seconds of video time (first frame = 0)."""


def _name(source: Source) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return os.fspath(source)


def _check_source(source: Source) -> None:
    """Fail fast on what neither library reports clearly: missing or empty input."""
    name = _name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise DecodeError(name, "empty input (0 bytes)", "empty_file")
        return
    if not os.path.isfile(source):
        raise DecodeError(name, "no such file", "not_found")
    if os.path.getsize(source) == 0:
        raise DecodeError(name, "empty file (0 bytes)", "empty_file")


def _stream(source: Source):
    """A fresh readable object for PyAV/decord: the path, or a BytesIO over the bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return os.fspath(source)


def _container_info(source: Source) -> dict:
    """Container metadata and display rotation, via PyAV (decodes the first frame only)."""
    import av

    name = _name(source)
    try:
        with av.open(_stream(source)) as container:
            has_audio = len(container.streams.audio) > 0
            videos = [s for s in container.streams.video
                      if not s.disposition & av.stream.Disposition.attached_pic]
            if not videos:
                return {"has_video": False, "has_audio": has_audio}
            stream = container.streams.best("video") or videos[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise DecodeError(name, "video stream has no decodable frames", "no_frames")
            start = first.time if first.time is not None else 0.0
            return {
                "has_video": True,
                "has_audio": has_audio,
                "width": int(stream.codec_context.width or first.width),
                "height": int(stream.codec_context.height or first.height),
                "codec": stream.codec_context.name,
                "rotation": int(round(first.rotation / 90.0)) * 90 % 360,
                "start_time": float(start),
                "time_base": stream.time_base,
                "pix_fmt": first.format.name,
            }
    except av.error.FFmpegError as exc:
        raise DecodeError(name, f"not a readable media file ({exc})", "unreadable") from exc


def _reader(source: Source, width: int = -1, height: int = -1, num_threads: int = 0):
    import decord

    try:
        return decord.VideoReader(_stream(source), ctx=decord.cpu(0), width=width,
                                  height=height, num_threads=num_threads)
    except (decord.DECORDError, RuntimeError) as exc:
        raise DecodeError(_name(source), f"decord cannot open the video ({exc})",
                          "unreadable") from exc


def _snap(seconds: np.ndarray, time_base) -> np.ndarray:
    """Round float32 seconds to the stream's time base grid (exact where float32 was close)."""
    if not time_base or time_base <= 0:
        return seconds
    ticks = np.round(seconds * (time_base.denominator / time_base.numerator))
    return ticks * time_base.numerator / time_base.denominator


def _timing(vr, name: str, time_base=None) -> tuple[np.ndarray, float]:
    """Frame starts and the video duration from an open ``decord.VideoReader``."""
    if len(vr) == 0:
        raise DecodeError(name, "video stream has no frames", "no_frames")
    starts = frame_times(vr, time_base)
    stamps = np.asarray(vr.get_frame_timestamp(len(vr) - 1), dtype=np.float64).reshape(-1)
    last = float(np.diff(_snap(stamps, time_base))[0])
    if not (np.isfinite(last) and last > 0):
        fps = vr.get_avg_fps()
        last = 1.0 / fps if fps and np.isfinite(fps) and fps > 0 else 0.0
    return starts, float(starts[-1]) + last


def probe(source: Source) -> VideoInfo:
    """Read a video's metadata without decoding more than its first frame.

    Args:
        source: a file path or the file's bytes.

    Returns:
        A ``VideoInfo``. An audio-only file gives ``has_video=False`` and zeros elsewhere.

    Raises:
        DecodeError: missing, empty, unreadable or frameless input.
    """
    from pipelines.ingest.video_file import VideoFile

    return VideoFile(source).info


def frame_times(vr, time_base=None) -> np.ndarray:
    """Presentation start time of every frame, relative to the first frame.

    Args:
        vr: an open ``decord.VideoReader``.
        time_base: the stream's time base (``fractions.Fraction``, from PyAV); when given,
            decord's float32 times are rounded to it, so 0.4 s reads 0.4, not 0.40000000596.

    Returns:
        float64 array of ``len(vr)`` non-decreasing seconds, first 0.0. When the container's
        timestamps are unusable (missing pts: non-finite or decreasing), a uniform grid
        ``i / avg_fps`` stands in.

    Raises:
        DecodeError: no frames, or no timestamps and no average fps to fall back on.
    """
    n = len(vr)
    if n == 0:
        raise DecodeError("<reader>", "video stream has no frames", "no_frames")
    starts = np.asarray(vr.get_frame_timestamp(range(n)), dtype=np.float64).reshape(n, 2)[:, 0]
    starts = _snap(starts, time_base)
    starts = starts - starts[0]
    if np.all(np.isfinite(starts)) and np.all(np.diff(starts) >= 0):
        return starts
    fps = vr.get_avg_fps()
    if not (fps and np.isfinite(fps) and fps > 0):
        raise DecodeError("<reader>", "no usable frame timestamps or frame rate", "decode_failed")
    return np.arange(n, dtype=np.float64) / fps


def indices_for_times(frame_starts: Sequence[float], times: Sequence[float]) -> list[int]:
    """Index of the frame being displayed at each time.

    Args:
        frame_starts: non-decreasing frame start times (s), at least one.
        times: query times (s), same timeline as ``frame_starts``.

    Returns:
        For each t, the last index i with ``frame_starts[i] <= t + eps(t)``, where
        ``eps(t) = ABS_EPS + REL_EPS * |t|`` absorbs float32 rounding; times before the first
        frame give 0, times past the last start give the last frame.

    Raises:
        ValueError: empty or decreasing ``frame_starts``.
    """
    starts = np.asarray(frame_starts, dtype=np.float64)
    if starts.ndim != 1 or starts.size == 0:
        raise ValueError("frame_starts must be a non-empty 1-D sequence")
    if np.any(np.diff(starts) < 0):
        raise ValueError("frame_starts must be non-decreasing")
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    idx = np.searchsorted(starts, t + ABS_EPS + REL_EPS * np.abs(t), side="right") - 1
    return np.clip(idx, 0, starts.size - 1).astype(int).tolist()


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(w, h)`` with the longer side at most ``max_side``, aspect ratio kept."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _read_frames(vr, indices: list[int], width: int, height: int, name: str) -> dict:
    """Decode ``indices`` (unique, sorted) into {index: (height, width, 3) uint8 array}."""
    import decord

    out: dict[int, np.ndarray] = {}
    for lo in range(0, len(indices), _BATCH):
        chunk = indices[lo:lo + _BATCH]
        try:
            arrays = list(vr.get_batch(chunk).asnumpy())
        except decord.DECORDError:
            arrays = None  # decord#336 (non-compact rotated frames): fall back to one by one
        if arrays is None or arrays[0].shape != (height, width, 3):
            try:
                arrays = [vr[i].asnumpy() for i in chunk]
            except (decord.DECORDError, RuntimeError) as exc:
                raise DecodeError(name, f"decoding frames failed ({exc})", "decode_failed") from exc
        for i, a in zip(chunk, arrays):
            if a.shape != (height, width, 3):  # rows of `a.shape[2] * width` bytes, RGB first
                if a.shape[:2] != (height, width) or a.shape[2] < 3:
                    raise DecodeError(name, f"decoder returned shape {a.shape}, expected "
                                      f"{(height, width, 3)}", "decode_failed")
                a = a.reshape(height, -1)[:, :3 * width].reshape(height, width, 3)
            out[i] = np.ascontiguousarray(a)
    return out


def decode_clip(
    source: Source,
    start: float = 0.0,
    end: float | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_fps: float = DEFAULT_MAX_FPS,
    max_side: int | None = None,
    rotation: int | None = None,
    num_threads: int = 0,
    times: Sequence[float] | None = None,
) -> DecodedClip:
    """Decode the frames shown at the Molmo 2 sample times of ``[start, end]``.

    Args:
        source: a file path or the file's bytes.
        start: clip start, seconds from the first frame; >= 0.
        end: clip end; default the video duration (last frame start + its duration). An end up
            to one frame past the duration is clamped to it.
        max_frames, max_fps: sampling limits, as in ``sample_times``.
        max_side: resize (at decode, aspect kept) so the longer side is at most this; None keeps
            the native size.
        rotation: counter-clockwise degrees to turn coded frames upright; None uses the
            container's display rotation (``probe``), 0 gives frames as coded.
        num_threads: decoder threads (0: FFmpeg chooses).
        times: explicit clip-relative times to decode instead of the Molmo 2 sample times (used
            for the constant-frame-rate mp4 of track annotation); each in ``[0, end - start]``.

    Returns:
        A ``DecodedClip``; ``frames[i]`` is the frame shown at ``start + timestamps[i]``.

    Raises:
        DecodeError: the source is not a decodable video (empty, unreadable, audio-only).
        ValueError: a bad clip window, rotation or ``max_side``.
    """
    from pipelines.ingest.video_file import VideoFile, check_args

    check_args(rotation, max_side)
    clip = VideoFile(source, num_threads).clip(start, end, max_frames, max_fps, max_side, rotation, times)
    return DecodedClip(timestamps=clip.timestamps, frame_indices=clip.frame_indices, frames=list(clip),
                       duration=clip.duration, start=clip.start)


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """Encode one RGB frame as baseline JPEG; the same input always gives the same bytes.

    Args:
        frame: uint8 array (H, W, 3), RGB.
        quality: JPEG quality 1-100.

    Returns:
        The JPEG file's bytes (no EXIF, no ICC profile).

    Raises:
        ValueError: wrong dtype/shape or quality.
    """
    from PIL import Image

    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ValueError(f"frame must be a non-empty uint8 (H, W, 3) array, got "
                         f"{arr.dtype} {arr.shape}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(
        buf, format="JPEG", quality=int(quality), optimize=False, progressive=False)
    return buf.getvalue()
