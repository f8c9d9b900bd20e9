"""One video opened once: its metadata, its frame timeline, and its frames at sample times, streamed.

One job: ``VideoFile`` probes a video once (PyAV for the container, decord for the timeline:
``pipelines.ingest.frames``) and serves every clip of it; ``ClipFrames`` yields a clip's frames
one sample time at a time, decoding as it goes, so a caller holds one frame, not a clip.

Frames come from ``pipelines.ingest.pts_decode`` (PyAV, only the wanted frames) when PyAV's
packets reproduce decord's timeline exactly, else (or for what that path could not finish) from
decord; either way each frame is the one shown at its sample time, with decord's pixels.
``pipelines.ingest.frames.probe`` and ``decode_clip`` are this module used once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipelines.ingest.frames import (
    _BATCH, DecodeError, Source, VideoInfo, _check_source, _container_info, _name, _read_frames, _reader, _snap,
    _target_size, _timing, indices_for_times,
)
from schemas.sampling import DEFAULT_MAX_FPS, DEFAULT_MAX_FRAMES, sample_times

__all__ = ["VideoFile", "ClipFrames", "check_args"]


class VideoFile:
    """One video, opened once: its metadata, its frame timeline and its frames, decoded on demand.

    ``probe`` and ``decode_clip`` are this class used once; the ingest keeps one per video so the
    file is probed once for all its clips, and streams each clip's frames (``ClipFrames``)
    instead of holding them all.

    Frames are decoded with ``pipelines.ingest.pts_decode`` (only the wanted frames, by pts) when
    PyAV's packets are exactly decord's timeline (the same count and, computed as decord does,
    the same start times), else with decord; either way a frame is the one shown at its sample
    time and its pixels are decord's.

    Args:
        source: a file path or the file's bytes.
        num_threads: decoder threads (0: FFmpeg chooses).

    Raises:
        DecodeError: missing, empty, unreadable or frameless input.
    """

    def __init__(self, source: Source, num_threads: int = 0):
        self.source, self.name, self.num_threads = source, _name(source), num_threads
        _check_source(source)
        self.meta = _container_info(source)
        self.starts: np.ndarray | None = None
        self.duration = 0.0
        self._pts: np.ndarray | None | bool = False  # False: not looked at yet; None: use decord
        self._index = None
        self.stats: dict[str, int] = {}
        """What decoding did so far: ``pipelines.ingest.pts_decode.decode_by_pts``'s counts, and
        ``decord`` (frames decoded by decord: a file the PyAV path does not take, or the rest of
        one it could not finish)."""
        if not self.meta["has_video"]:
            self.info = VideoInfo(0.0, 0.0, 0, 0, 0, 0, "", False, self.meta["has_audio"], 0.0)
            return
        self.starts, self.duration = _timing(_reader(source), self.name, self.meta["time_base"])
        n = len(self.starts)
        self.info = VideoInfo(
            duration=self.duration, fps=n / self.duration if self.duration > 0 else 0.0, num_frames=n,
            width=self.meta["width"], height=self.meta["height"], rotation=self.meta["rotation"],
            codec=self.meta["codec"], has_video=True, has_audio=self.meta["has_audio"],
            start_time=self.meta["start_time"])

    def clip(self, start: float = 0.0, end: float | None = None, max_frames: int = DEFAULT_MAX_FRAMES,
             max_fps: float = DEFAULT_MAX_FPS, max_side: int | None = None, rotation: int | None = None,
             times: Sequence[float] | None = None) -> "ClipFrames":
        """The frames shown at the sample times of ``[start, end]``, to be iterated once.

        Arguments as ``decode_clip``'s. Raises ``DecodeError`` (no video stream) and
        ``ValueError`` (a bad window, rotation, ``max_side`` or ``times``).
        """
        name = self.name
        check_args(rotation, max_side)
        if not self.meta["has_video"]:
            kind = "audio-only file" if self.meta["has_audio"] else "no video stream"
            raise DecodeError(name, f"{kind}: nothing to decode", "no_video_stream")
        decord_rot = self.meta["rotation"]  # decord applies the display rotation itself
        extra = ((decord_rot if rotation is None else rotation) - decord_rot) % 360
        w, h = self.meta["width"], self.meta["height"]
        if decord_rot in (90, 270):
            w, h = h, w  # decord's output orientation
        out_w, out_h = _target_size(*((h, w) if extra in (90, 270) else (w, h)), max_side)
        dec_w, dec_h = (out_h, out_w) if extra in (90, 270) else (out_w, out_h)

        video_duration = self.duration
        end = video_duration if end is None else float(end)
        slack = video_duration / len(self.starts)  # one average frame
        if not (0.0 <= start <= end) or end > video_duration + slack:
            raise ValueError(f"{name}: clip window [{start}, {end}] is not inside the video "
                             f"[0, {video_duration:.6f}]")
        end = min(end, video_duration)
        duration = max(0.0, end - float(start))
        if times is None:
            times = sample_times(duration, max_frames=max_frames, max_fps=max_fps)
        else:
            times = [float(t) for t in times]
            if not times or min(times) < 0 or max(times) > duration + 1e-6:
                raise ValueError(f"{name}: explicit times must be non-empty and inside [0, {duration:.6f}]")
        indices = indices_for_times(self.starts, [start + t for t in times])
        return ClipFrames(self, list(times), indices, duration, float(start), (dec_w, dec_h), (w, h), extra)

    def _packet_pts(self) -> np.ndarray | None:
        """pts of frame i (presentation order) when PyAV's packets are decord's timeline and its
        frames are of a pixel format converted like decord's (``pts_decode.PIXEL_FORMATS``), else None."""
        if self._pts is False:
            from pipelines.ingest.pts_decode import PIXEL_FORMATS, scan_packets

            self._pts = None
            if self.meta["pix_fmt"] not in PIXEL_FORMATS:
                return None
            try:
                index = scan_packets(self.source)
            except Exception:  # noqa: BLE001 - a file PyAV cannot demux is decoded by decord
                index = None
            tb = self.meta["time_base"]
            if (index is not None and index.stream_start is not None and len(index.pts) == len(self.starts)
                    and tb and tb > 0):
                pts = np.sort(index.pts)
                # decord keeps float32((pts - stream start) * num / den) per packet, sorted;
                # frame_times() snaps those to the time base and makes them relative
                raw = ((pts - index.stream_start).astype(np.float64) * (tb.numerator / tb.denominator))
                starts = _snap(raw.astype(np.float32).astype(np.float64), tb)
                starts = starts - starts[0]
                if np.array_equal(starts, self.starts) and np.all(np.diff(pts) > 0):
                    self._pts, self._index = pts, index
        return self._pts

    def _frames(self, indices: list[int], size: tuple[int, int], coded: tuple[int, int], extra: int):
        """Yield ``(index, frame)`` for sorted unique ``indices``: decord-oriented frames of ``size``
        (``coded``: decord's own output size), turned ``extra`` degrees more."""
        done = -1
        pts = self._packet_pts()
        if pts is not None:
            from pipelines.ingest.pts_decode import decode_by_pts, filter_description

            by_pts = {int(pts[i]): i for i in indices}
            missing: set = set()
            try:
                for p, frame in decode_by_pts(self.source, self._index, list(by_pts),
                                              filter_description(self.meta["rotation"], *size),
                                              self.num_threads, missing, self.stats):
                    done = by_pts[p]
                    yield done, _turn(frame, extra)
            except MemoryError:
                raise
            except Exception:  # noqa: BLE001 - anything PyAV cannot do, decord does below
                pass
        rest = [i for i in indices if i > done]
        if rest:
            self.stats["decord"] = self.stats.get("decord", 0) + len(rest)
            resize = size != coded
            vr = _reader(self.source, size[0] if resize else -1, size[1] if resize else -1, self.num_threads)
            for lo in range(0, len(rest), _BATCH):
                for i, frame in _read_frames(vr, rest[lo:lo + _BATCH], size[0], size[1], self.name).items():
                    yield i, _turn(frame, extra)


def check_args(rotation: int | None, max_side: int | None) -> None:
    """Raise ValueError for a rotation that is not a multiple of 90 or a ``max_side`` under 1."""
    if rotation is not None and rotation % 90 != 0:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")


def _turn(frame: np.ndarray, extra: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(frame, k=extra // 90)) if extra else frame


@dataclass(frozen=True)
class ClipFrames:
    """A clip's sample times and frame choice; iterating yields one frame per sample time, in time
    order (a frame shown at two sample times comes twice, as the same array), decoding as it goes."""

    video: VideoFile
    timestamps: list[float]
    frame_indices: list[int]
    duration: float
    start: float
    size: tuple[int, int]
    """``(width, height)`` decoded, before the extra rotation."""
    coded: tuple[int, int]
    extra: int

    def __iter__(self):
        it = self.video._frames(sorted(set(self.frame_indices)), self.size, self.coded, self.extra)
        current, frame = -1, None
        for i in self.frame_indices:
            while current != i:
                current, frame = next(it)
            yield frame
