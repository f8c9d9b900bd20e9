"""Per-video work of the ingest: probe, filter, cut clips, decode sampled frames to JPEG files.

``process_video`` is what the ingest runs inside ``pipelines.common.sandbox`` (a child process with a
time limit) for one downloaded video. It returns only small, picklable metadata; the JPEG bytes
go to a content-addressed frame store on disk, and later stages pass references to them, so frame
bytes never travel through a Beam shuffle.

Identity and rendering are kept apart. A clip's id (``make_clip_id``) is what a label refers
to: the source's bytes, the clip window and the sample times, nothing else; settings that only
change how the frames look (``RENDER_SETTINGS``: JPEG quality, max side; labels are in
normalized coordinates) or what else is made (the mp4) never change it, so Label Studio tasks
keyed by clip id survive a rerun with other render settings or with ``--cfr-mp4``. The frame
store keys each rendering by clip id and render fingerprint, and the mp4 separately, so a rerun
that only adds mp4s decodes no frame again, and one with another JPEG quality keeps every id
but renders anew. Which setting is which: ``pipelines.ingest.config.SETTING_ROLES``.

Frame store layout (each folder written to a temporary name and renamed when complete, so a
folder that exists is whole and a rerun reuses it)::

    {frame_store}/{clip_id[:2]}/{clip_id}-{render}/{i:03d}.jpg   sampled frames, in time order
    {frame_store}/{clip_id[:2]}/{clip_id}-{render}/meta.json     timestamps, indices, size, hashes
    {frame_store}/{clip_id[:2]}/{clip_id}-mp4-{mp4}/clip.mp4     constant-frame-rate H.264 (--cfr-mp4)
    {frame_store}/{clip_id[:2]}/{clip_id}-mp4-{mp4}/meta.json    its fps and frame map

where ``render`` is ``render_fingerprint(config)`` and ``mp4`` is ``mp4_fingerprint(config)``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.ingest.config import IngestConfig
from pipelines.common.errors import InputError
from schemas.records import canonical_json
from schemas.sampling import sample_times
from shards.atomic import atomic_dir

__all__ = ["ClipOutput", "VideoOutput", "clip_bounds", "make_clip_id", "process_video", "clip_dir", "mp4_dir",
           "render_fingerprint", "mp4_fingerprint", "RENDER_SETTINGS", "MP4_SETTINGS"]

META = "meta.json"


@dataclass(frozen=True)
class ClipOutput:
    """One clip's sampled frames, by reference (the JPEGs stay in the frame store)."""

    clip_id: str
    start: float
    end: float
    timestamps: tuple[float, ...]
    frame_indices: tuple[int, ...]
    width: int
    height: int
    frames_dir: str
    cfr_mp4: str | None = None
    cfr_fps: float | None = None
    cfr_frame_indices: tuple[int, ...] | None = None  # source frame shown at each mp4 frame
    reused: bool = False  # the frames came from the frame store (decoded by an earlier run)
    mp4_reused: bool = False  # likewise the mp4


@dataclass(frozen=True)
class VideoOutput:
    """Result of ``process_video``: probe facts, the clips, and hashes for near-dedupe."""

    duration: float
    fps: float
    num_frames: int
    width: int  # upright (display) size
    height: int
    rotation: int
    codec: str
    clips: tuple[ClipOutput, ...]
    phashes: tuple[int, ...]


RENDER_SETTINGS = ("frames.jpeg_quality", "frames.max_side")
"""The settings that change how a clip's frames look, not which frames they are."""
MP4_SETTINGS = ("frames.max_side", "frames.cfr_fps")
"""The settings that change the constant-frame-rate mp4 (made only with ``frames.write_cfr_mp4``)."""
_RENDER_CODE = 1
"""Bump when the code that renders frames (resize, JPEG) changes their bytes."""
_MP4_CODE = 1
"""Bump when the mp4 encoding (codec options) changes."""


def make_clip_id(sha256: str, start: float, end: float, config: IngestConfig) -> str:
    """A clip's identity (24 hex chars): the source's content hash, the window and the sample times.

    Only the sampling settings enter, through the times they give: two settings that sample the
    same times (``max_frames`` 128 or 256 for a 20 s clip) give one id. Render settings, time
    limits and the mp4 do not enter (``pipelines.ingest.config.SETTING_ROLES``).
    """
    times = sample_times(max(0.0, end - start), config.sampling.max_frames, config.sampling.max_fps)
    blob = canonical_json({"source": sha256, "window": [f"{start:.6f}", f"{end:.6f}"],
                           "times": [f"{t:.6f}" for t in times]})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def render_fingerprint(config: IngestConfig) -> str:
    """Fingerprint (12 hex) of how frames are rendered: ``RENDER_SETTINGS`` and the render code."""
    return config.fingerprint(*RENDER_SETTINGS, extra={"code": _RENDER_CODE})[:12]


def mp4_fingerprint(config: IngestConfig) -> str:
    """Fingerprint (12 hex) of how the mp4 is made: ``MP4_SETTINGS`` and the encoder options."""
    return config.fingerprint(*MP4_SETTINGS, extra={"code": _MP4_CODE, "x264": _X264_OPTIONS})[:12]


def clip_dir(frame_store: str | os.PathLike, clip_id: str, render: str) -> Path:
    """The frame-store folder of one clip's frames rendered with ``render`` (a fingerprint)."""
    return Path(frame_store) / clip_id[:2] / f"{clip_id}-{render}"


def mp4_dir(frame_store: str | os.PathLike, clip_id: str, mp4: str) -> Path:
    """The frame-store folder of one clip's constant-frame-rate mp4 made with ``mp4`` (a fingerprint)."""
    return Path(frame_store) / clip_id[:2] / f"{clip_id}-mp4-{mp4}"


def clip_bounds(duration: float, start: float | None, end: float | None, config: IngestConfig,
                name: str) -> list[tuple[float, float]]:
    """The clips of one video: the manifest's ``start``/``end``, fixed windows, or the whole video.

    Raises:
        InputError: ``clip_outside_video`` when the manifest's window misses the video.
    """
    if start is not None or end is not None:
        s = float(start or 0.0)
        e = duration if end is None else min(float(end), duration)
        if s >= duration or e - s <= 0:
            raise InputError("filter", "clip_outside_video",
                             f"{name}: clip [{s}, {end}] lies outside the video (duration {duration:.3f} s)")
        return [(s, e)]
    window = config.clips.window_s
    if window is None or duration <= window:
        return [(0.0, duration)]
    bounds, s = [], 0.0
    while s < duration - 1e-6:
        e = min(s + window, duration)
        if e - s >= config.clips.min_clip_s or not bounds:
            bounds.append((round(s, 6), round(e, 6)))
        s = e
    return bounds


def _check_filters(info, config: IngestConfig, name: str) -> None:
    f = config.filters
    if info.duration < f.min_duration:
        raise InputError("filter", "too_short", f"{name}: {info.duration:.3f} s is shorter than {f.min_duration} s")
    if info.duration > f.max_duration:
        raise InputError("filter", "too_long", f"{name}: {info.duration:.1f} s is longer than {f.max_duration} s")
    if min(info.display_size) < f.min_side:
        raise InputError("filter", "too_small",
                         f"{name}: {info.display_size[0]}x{info.display_size[1]} is smaller than {f.min_side} px")


def _hash_positions(counts: list[int], n: int) -> list[tuple[int, int]]:
    """(clip number, frame position) of ``n`` frames evenly spread over all clips' frames."""
    flat = [(c, i) for c, k in enumerate(counts) for i in range(k)]
    if len(flat) == 1:
        return flat * n
    return [flat[round(j * (len(flat) - 1) / (n - 1))] if n > 1 else flat[0] for j in range(n)]


_X264_OPTIONS = {"crf": "20", "preset": "veryfast"}


def _write_cfr_mp4(video, start: float, end: float, config: IngestConfig, path: Path) -> list[int]:
    """Constant-frame-rate H.264 mp4 of the clip, starting at time 0; returns source indices.

    ``video`` is the source's ``pipelines.ingest.video_file.VideoFile``; frames are encoded as they
    are decoded, one in memory at a time.
    """
    import av

    fps = config.frames.cfr_fps
    n = max(1, int((end - start) * fps + 1e-6))
    clip = video.clip(start=start, end=end, max_side=config.frames.max_side, times=[i / fps for i in range(n)])
    with av.open(str(path), "w", format="mp4") as out:
        stream = None
        for i, frame in enumerate(clip):
            if stream is None:
                h, w = frame.shape[:2]
                stream = out.add_stream("libx264", rate=int(round(fps)) if float(fps).is_integer() else fps)
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuv420p"
                stream.options = dict(_X264_OPTIONS)
            vf = av.VideoFrame.from_ndarray(frame[: stream.height, : stream.width], format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return list(clip.frame_indices)


def _read_meta(folder: Path) -> dict | None:
    path = folder / META
    return json.loads(path.read_text()) if path.is_file() else None


def _frames_fit(meta: dict, want_hash: list[int], config: IngestConfig) -> bool:
    """A stored rendering serves this run: its times are what this run samples (they depend on
    the decoder's clip duration, stored with them) and it has the frame hashes dedupe wants."""
    times = sample_times(meta["duration"], config.sampling.max_frames, config.sampling.max_fps)
    return (len(times) == len(meta["timestamps"])
            and all(abs(a - b) <= 1e-9 for a, b in zip(times, meta["timestamps"]))
            and all(str(i) in meta["phash"] for i in want_hash))


def _decode_into(video, clip_id: str, start: float, end: float, want_hash: list[int],
                 config: IngestConfig, frame_store: str) -> tuple[dict, bool]:
    """Decode one clip's frames of ``video`` (a ``VideoFile``) into its frame-store folder
    (atomically); return (meta, reused).

    Each frame is JPEG-encoded and written as it comes out of the decoder (one frame in memory);
    the frames dedupe hashes are taken from as they pass.
    """
    from pipelines.ingest.phash import frame_phash
    from pipelines.ingest.frames import encode_jpeg

    final = clip_dir(frame_store, clip_id, render_fingerprint(config))
    meta = _read_meta(final)
    if meta is not None and _frames_fit(meta, want_hash, config):
        return meta, True
    outdated = meta is not None  # sampled other times (a decoder edge case) or lacks wanted hashes
    # another worker finishing the same folder first: theirs is identical, ours is dropped
    with atomic_dir(final, replace=outdated) as staged:
        tmp = Path(staged)
        clip = video.clip(start=start, end=end, max_frames=config.sampling.max_frames,
                          max_fps=config.sampling.max_fps, max_side=config.frames.max_side)
        want, hashes = set(want_hash), {}
        last, data = None, b""
        for i, frame in enumerate(clip):
            if frame is not last:  # a frame shown at two sample times is the same array: encode once
                last, data = frame, encode_jpeg(frame, quality=config.frames.jpeg_quality)
            (tmp / f"{i:03d}.jpg").write_bytes(data)
            if i in want:
                hashes[str(i)] = frame_phash(frame)
        h, w = last.shape[:2]
        meta = {
            "clip_id": clip_id, "start": start, "end": end, "duration": clip.duration,
            "timestamps": clip.timestamps, "frame_indices": clip.frame_indices, "width": w, "height": h,
            "phash": hashes,
        }
        (tmp / META).write_text(json.dumps(meta, sort_keys=True))
    return json.loads((final / META).read_text()), False


def _mp4_into(video, clip_id: str, start: float, end: float, config: IngestConfig,
              frame_store: str) -> tuple[Path, dict, bool]:
    """Make one clip's constant-frame-rate mp4 in its own folder (atomically), unless it exists;
    return (its folder, its meta, reused). The clip's frames are not touched."""
    final = mp4_dir(frame_store, clip_id, mp4_fingerprint(config))
    meta = _read_meta(final)
    if meta is not None:
        return final, meta, True
    with atomic_dir(final) as staged:
        tmp = Path(staged)
        meta = {"cfr_fps": config.frames.cfr_fps,
                "cfr_frame_indices": _write_cfr_mp4(video, start, end, config, tmp / "clip.mp4")}
        (tmp / META).write_text(json.dumps(meta, sort_keys=True))
    return final, json.loads((final / META).read_text()), False


def _reason(exc, raw_path: str, name: str) -> str:
    """The decoder's reason with the raw-store path (under the work folder) replaced by the
    input's name, so that failure records do not depend on where ``--out``/``--work-dir`` lie."""
    return exc.reason.replace(raw_path, name) if raw_path else exc.reason


def process_video(raw_path: str, sha256: str, start: float | None, end: float | None,
                  config: IngestConfig, frame_store: str, name: str = "", input_id: str = "") -> VideoOutput:
    """Probe, filter and clip one video; decode each clip's sampled frames into the frame store.

    Args:
        raw_path: the downloaded file (content-addressed raw store).
        sha256: its content hash (part of every clip id).
        start, end: the manifest's clip bounds in seconds, or None.
        config: ingest settings.
        frame_store: root folder of the frame store.
        name: how failure messages name the input.
        input_id: the manifest id of the input (names it for ``InputGuard`` fault injection).

    Returns:
        A ``VideoOutput`` (metadata and references only).

    Raises:
        InputError: probe/decode failures (``probe`` / ``decode`` stage, ``internal_error`` for
            unforeseen exceptions) and filter rejections.
        RunFault: a fault of the run (the frame store cannot be written, the disk is full).
    """
    from pipelines.common.guard import InputGuard
    from pipelines.ingest.frames import DecodeError
    from pipelines.ingest.video_file import VideoFile

    name = name or raw_path
    guard = InputGuard({"FRAMES": frame_store}, hide={raw_path: name})
    with guard.step("probe", name, input_id):
        try:
            video = VideoFile(raw_path, num_threads=1)  # opened once for the probe and every clip
            info = video.info
        except DecodeError as exc:
            raise InputError("probe", exc.error_type, f"{name}: {_reason(exc, raw_path, name)}") from None
        if not info.has_video:
            what = "audio-only file" if info.has_audio else "no video stream"
            raise InputError("probe", "no_video_stream", f"{name}: {what}")
        if info.num_frames < 1 or info.duration <= 0:
            raise InputError("probe", "no_frames", f"{name}: no decodable frames")
        _check_filters(info, config, name)

    bounds = clip_bounds(info.duration, start, end, config, name)
    counts = [len(sample_times(e - s, config.sampling.max_frames, config.sampling.max_fps)) for s, e in bounds]
    positions = _hash_positions(counts, config.dedupe.hash_frames)
    clips, metas = [], []
    for c, (s, e) in enumerate(bounds):
        clip_id = make_clip_id(sha256, s, e, config)
        want = [i for cc, i in positions if cc == c]
        with guard.step("decode", name, input_id):
            try:
                meta, reused = _decode_into(video, clip_id, s, e, want, config, frame_store)
                mp4 = _mp4_into(video, clip_id, s, e, config, frame_store) if config.frames.write_cfr_mp4 else None
            except DecodeError as exc:
                raise InputError("decode", exc.error_type, f"{name}: {_reason(exc, raw_path, name)}") from None
            except ValueError as exc:
                raise InputError("decode", "bad_clip_window", f"{name}: {exc}") from None
        metas.append(meta)
        clips.append(ClipOutput(
            clip_id=clip_id, start=s, end=e, timestamps=tuple(meta["timestamps"]),
            frame_indices=tuple(meta["frame_indices"]), width=meta["width"], height=meta["height"],
            frames_dir=str(clip_dir(frame_store, clip_id, render_fingerprint(config))),
            cfr_mp4=str(mp4[0] / "clip.mp4") if mp4 else None,
            cfr_fps=mp4[1]["cfr_fps"] if mp4 else None,
            cfr_frame_indices=tuple(mp4[1]["cfr_frame_indices"]) if mp4 else None,
            reused=reused, mp4_reused=bool(mp4 and mp4[2]),
        ))
    phashes = tuple(int(metas[c]["phash"][str(i)]) for c, i in positions)
    w, h = info.display_size
    return VideoOutput(duration=info.duration, fps=info.fps, num_frames=info.num_frames, width=w, height=h,
                       rotation=info.rotation, codec=info.codec, clips=tuple(clips), phashes=phashes)


def output_to_dict(out: VideoOutput) -> dict:
    return asdict(out)
