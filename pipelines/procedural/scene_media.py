"""Write procedural scenes to disk: videos, subtitle tracks, corpora, and deliberately bad media.

One job: turn :class:`pipelines.procedural.scenes.Scene` ground truth into files with PyAV (no system
ffmpeg): ``render_scene`` encodes the exact frames of :func:`pipelines.procedural.scenes.draw_frame` with
the scene's integer pts (so variable frame rate survives), ``write_vtt`` writes its cues,
``generate_corpus`` writes a varied, seeded set of videos with their ground truth JSON, and
``write_test_media`` makes the broken or unusual inputs later stages must cope with.

Determinism: files are written with ``fflags=+bitexact`` (no library version string, no random
Matroska segment UID), pts and packet durations come from the scene, and every encoder runs on
one thread with fixed options (:func:`_single_threaded`, :func:`_stream_options`). Two causes
were found and removed. (1) Left to choose, PyAV asks for ``thread_count=0`` (auto): x264 and
FFmpeg's mpeg4 then split the work by the CPUs the process may use, and their output depends on
that split (32 of 36 corpus videos differed between a run on all CPUs and one on one CPU).
(2) x264's macroblock-tree rate control with B-frames (the ``fast`` preset's default) gave
different bytes for the same frames depending on what the process had allocated before, even
on one thread (encoding one scene four times in a row gave up to three different files, with
the SIMD code on; ``asm=0``, ``mbtree=0`` or no B-frames each made it stable): ``mbtree=0``.
Multi-threaded encoding made that heap state depend on scheduling, hence on machine load. Now
the same scene gives byte-identical files with one PyAV build however busy the machine is, how
many CPUs it has and what ran before (tested). Another FFmpeg/x264 build may encode different
bytes; the ground truth JSON does not depend on the encoder at all.
"""
from __future__ import annotations

import dataclasses
import io
import os
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from pipelines.procedural.scenes import Scene, SceneSpec, draw_frame, make_scene
from shards.atomic import atomic_path

__all__ = ["render_scene", "encode_video_bytes", "write_vtt", "vtt_text", "generate_corpus",
           "SceneFiles", "write_test_media", "TEST_MEDIA_KINDS"]

_SUFFIXES = {"mp4": (".mp4", ".m4v", ".mov"), "webm": (".webm", ".mkv")}
_DEFAULT_CRF = {"h264": 18, "vp9": 24, "mpeg4": 3}  # mpeg4: the qscale


def _stream_options(codec: str, crf: int | None) -> tuple[str, dict[str, str]]:
    q = _DEFAULT_CRF[codec] if crf is None else crf
    if codec == "h264":  # x264's own threads too (no frame, slice or lookahead threads); mbtree off (below)
        return "libx264", {"crf": str(q), "preset": "fast",
                           "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0"}
    if codec == "vp9":  # no row or tile parallelism, no frame-parallel decoding mode
        return "libvpx-vp9", {"crf": str(q), "b": "0", "deadline": "good", "cpu-used": "4",
                              "row-mt": "0", "tile-columns": "0", "frame-parallel": "0"}
    return "mpeg4", {"flags": "+qscale", "global_quality": str(int(q) * 118)}  # FF_QP2LAMBDA


def _single_threaded(stream: Any) -> None:
    """One encoding thread, no slice or frame threading: output independent of CPUs and load.

    Must run before the first frame is encoded (the codec opens then).
    """
    stream.codec_context.thread_count = 1
    stream.codec_context.thread_type = "NONE"


def _encode(scene: Scene, target: Any, fmt: str, crf: int | None,
            size: tuple[int, int] | None, rotation: float | None, faststart: bool = False) -> None:
    spec = scene.spec
    w, h = size or (spec.width, spec.height)
    if w % 2 or h % 2 or w < 16 or h < 16:
        raise ValueError(f"output size must be even and >= 16, got {w}x{h}")
    codec, options = _stream_options(spec.codec, crf)
    tb = scene.time_base
    ends = [f.pts for f in scene.frames[1:]] + [round(scene.duration * spec.ticks_per_second)]
    durations = {f.pts: e - f.pts for f, e in zip(scene.frames, ends)}
    container_options = {"fflags": "+bitexact"}
    if faststart:  # moov before mdat, as web-ready files have it
        container_options["movflags"] = "+faststart"
    with av.open(target, "w", format=fmt, options=container_options) as out:
        stream = out.add_stream(codec, rate=Fraction(spec.fps).limit_denominator(1001), options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        _single_threaded(stream)
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if rotation:
            stream.set_display_rotation(rotation)

        def mux(packets) -> None:
            for pk in packets:
                if pk.pts in durations:  # x264 does not pass frame durations on; the muxer needs them
                    pk.duration = durations[pk.pts]
                out.mux(pk)

        for f in scene.frames:
            rgb = draw_frame(scene, f.index)
            if (w, h) != (spec.width, spec.height):
                rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = f.pts, tb
            mux(stream.encode(frame))
        mux(stream.encode(None))


def render_scene(scene: Scene, path: str | os.PathLike, *, crf: int | None = None,
                 size: tuple[int, int] | None = None, rotation: float | None = None) -> Path:
    """Encode a scene to a video file (written to a temporary name, then renamed).

    Args:
        scene: the scene; its spec picks codec (h264/vp9/mpeg4, yuv420p) and container.
        path: output file; its suffix must fit the container (.mp4/.m4v/.mov or .webm/.mkv).
        crf: quality (x264/libvpx CRF; mpeg4 qscale); None uses 18 / 24 / 3.
        size: (width, height) to resize every frame to (near duplicates); None keeps the
            scene size, where the ground truth pixels hold exactly.
        rotation: display rotation in degrees counter-clockwise as PyAV reports it in
            ``VideoFrame.rotation`` (a portrait phone clip reads -90); pixels stay unrotated.

    Returns:
        The output path.

    Raises:
        ValueError: on a suffix that does not match the container, or a bad size.
    """
    path = Path(path)
    fmt = scene.spec.container_format
    if path.suffix.lower() not in _SUFFIXES[fmt]:
        raise ValueError(f"{path.name}: a {fmt} file needs one of the suffixes {_SUFFIXES[fmt]}")
    with atomic_path(path) as tmp:
        _encode(scene, tmp, fmt, crf, size, rotation)
    return path


def encode_video_bytes(scene: Scene, **kwargs: Any) -> bytes:
    """The bytes ``render_scene`` would write, kept in memory (same keyword arguments)."""
    buf = io.BytesIO()
    _encode(scene, buf, scene.spec.container_format, kwargs.get("crf"), kwargs.get("size"),
            kwargs.get("rotation"))
    return buf.getvalue()


def _stamp(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def vtt_text(scene: Scene) -> str:
    """WebVTT text of the scene's cues (a bare header when it has none)."""
    blocks = ["WEBVTT\n"]
    for k, cue in enumerate(scene.cues, start=1):
        blocks.append(f"{k}\n{_stamp(cue.start)} --> {_stamp(cue.end)}\n{cue.text}\n")
    return "\n".join(blocks)


def write_vtt(scene: Scene, path: str | os.PathLike) -> Path:
    """Write the scene's subtitle cues as a WebVTT file (UTF-8).

    Returns:
        The output path.
    """
    path = Path(path)
    path.write_text(vtt_text(scene), encoding="utf-8")
    return path


@dataclass(frozen=True)
class SceneFiles:
    """Paths written for one corpus scene; all share the stem ``key`` (no dots)."""

    key: str
    video: Path
    subtitles: Path | None
    """The .vtt file, or None when the spec has ``subtitles=False``."""
    ground_truth: Path
    """``Scene.to_json()`` text; read back with ``pipelines.procedural.scenes.load_ground_truth``."""
    spec: SceneSpec


def _corpus_spec(seed: int, i: int) -> SceneSpec:
    rng = random.Random(f"corpus:{seed}:{i}")
    width, height = rng.choice([(160, 120), (160, 120), (192, 144), (256, 192)])
    return SceneSpec(
        seed=rng.randrange(2**31), width=width, height=height,
        fps=rng.choice([8.0, 10.0, 10.0, 12.0, 15.0]),
        duration=rng.choice([2.0, 2.5, 3.0, 4.0, 5.0, 6.0]),
        n_objects=rng.randint(1, 5), enter_exit=rng.random() < 0.85,
        occluder=rng.random() < 0.6, background=rng.choice(["plain", "texture"]),
        codec=rng.choices(["h264", "vp9", "mpeg4"], weights=[4, 1, 1])[0],
        vfr=rng.random() < 0.25)


def generate_corpus(out_dir: str | os.PathLike, n: int, seed: int = 0,
                    **overrides: Any) -> list[SceneFiles]:
    """Write ``n`` varied scenes (video, .vtt, ground truth JSON) named ``scene_0000``...

    Scene ``i`` depends only on ``(seed, i)`` and the overrides, so corpora are reproducible
    and a bigger ``n`` extends a smaller one.

    Args:
        out_dir: directory to write into (created if missing).
        n: number of scenes (>= 0).
        seed: corpus seed.
        **overrides: SceneSpec fields forced on every scene (e.g. ``codec="h264"``, ``vfr=True``).

    Returns:
        One :class:`SceneFiles` per scene, in order.

    Raises:
        TypeError: on an override that is not a SceneSpec field.
        ValueError: on an invalid override value.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fields = {f.name for f in dataclasses.fields(SceneSpec)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"not SceneSpec fields: {unknown}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        spec = dataclasses.replace(_corpus_spec(seed, i), **overrides)
        scene = make_scene(spec)
        key = f"scene_{i:04d}"
        video = render_scene(scene, out / f"{key}.{spec.container_format}")
        vtt = write_vtt(scene, out / f"{key}.vtt") if spec.subtitles else None
        gt = out / f"{key}.json"
        gt.write_text(scene.to_json() + "\n", encoding="utf-8")
        files.append(SceneFiles(key, video, vtt, gt, spec))
    return files


TEST_MEDIA_KINDS = ("empty", "truncated_mp4", "truncated_faststart_mp4", "text_as_mp4", "audio_only",
                    "rotated", "malformed_vtt", "text_as_jpg", "png", "jpeg", "near_duplicate")

_MALFORMED_VTT = ("NOT A WEBVTT FILE\n\n1\n00:00:01.000 --> 00:00:xx\nA cue with a broken end time.\n\n"
                  "00:00:05.000 --> 00:00:02.000\nA cue that ends before it starts.\n")


def _write_audio(path: Path, seconds: float = 2.0) -> None:
    suffix = path.suffix.lower()
    codec, fmt, rate = {".mp3": ("libmp3lame", "mp3", 44100), ".ogg": ("libopus", "ogg", 48000),
                        ".opus": ("libopus", "ogg", 48000), ".webm": ("libopus", "webm", 48000)
                        }.get(suffix, ("aac", "mp4", 44100))
    with av.open(str(path), "w", format=fmt, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        _single_threaded(stream)
        sample_fmt = stream.codec_context.codec.audio_formats[0].name
        n, t = 960, 0
        while t < seconds * rate:
            x = 0.2 * np.sin(2 * np.pi * 440.0 * (np.arange(n) + t) / rate)
            planes = np.stack([x, x])
            if sample_fmt.startswith("s16"):
                planes = (planes * 32767).astype(np.int16)
            elif sample_fmt.startswith("s32"):
                planes = (planes * (2**31 - 1)).astype(np.int32)
            else:
                planes = planes.astype(np.float32)
            if not sample_fmt.endswith("p"):  # packed: one row of interleaved samples
                planes = planes.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(planes, format=sample_fmt, layout="stereo")
            frame.sample_rate, frame.pts = rate, t
            t += n
            for pk in stream.encode(frame):
                out.mux(pk)
        for pk in stream.encode(None):
            out.mux(pk)


def write_test_media(kind: str, path: str | os.PathLike, *, spec: SceneSpec | None = None,
                     rotation: float = -90.0) -> Path:
    """Write one awkward input for robustness tests.

    Kinds: ``empty`` (zero bytes); ``truncated_mp4`` (a valid h264 scene mp4 cut to half its
    bytes; the index (moov) sat at the end, so nothing opens it); ``truncated_faststart_mp4``
    (the same with the index first: it opens, reports all frames, and decoding runs out of
    data half way); ``text_as_mp4`` / ``text_as_jpg`` (plain text under a media name); ``audio_only``
    (a 2 s stereo tone, no video stream: aac in mp4/.m4a by default, mp3 for .mp3, opus for
    .ogg/.opus/.webm); ``rotated`` (a scene video whose stream carries a display matrix, as
    phones write: PyAV reports ``VideoFrame.rotation == rotation``; pixels and ground truth
    are in the coded, unrotated orientation); ``malformed_vtt`` (no WEBVTT header, broken
    timing line); ``png`` / ``jpeg`` (frame 0 of the scene, so ``make_scene(spec).frames[0]``
    is its ground truth); ``near_duplicate`` (the scene re-encoded at 3/4 size and lower
    quality; ``render_scene(make_scene(spec), ...)`` writes the original).

    Args:
        kind: one of ``TEST_MEDIA_KINDS``.
        path: output path (its suffix picks the audio codec; scene videos use mp4/webm suffixes).
        spec: scene for the scene-based kinds; default ``SceneSpec()`` (seed 0, h264 mp4).
        rotation: degrees for ``rotated``.

    Returns:
        The output path.

    Raises:
        ValueError: on an unknown kind, or a suffix unfit for the scene's container.
    """
    path = Path(path)
    if kind not in TEST_MEDIA_KINDS:
        raise ValueError(f"unknown test media kind {kind!r}; known: {TEST_MEDIA_KINDS}")
    spec = spec or SceneSpec()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind in ("text_as_mp4", "text_as_jpg"):
        path.write_text("This is a text file, not media.\n", encoding="utf-8")
    elif kind == "malformed_vtt":
        path.write_text(_MALFORMED_VTT, encoding="utf-8")
    elif kind == "audio_only":
        _write_audio(path)
    elif kind in ("png", "jpeg"):
        image = Image.fromarray(draw_frame(make_scene(spec), 0))
        image.save(path, format="PNG" if kind == "png" else "JPEG",
                   **({"quality": 92} if kind == "jpeg" else {}))
    elif kind in ("truncated_mp4", "truncated_faststart_mp4"):
        scene = make_scene(dataclasses.replace(spec, codec="h264", container=None))
        with atomic_path(path) as tmp:  # encoded whole (faststart rewrites the file), then cut in half
            _encode(scene, tmp, "mp4", None, None, None, faststart=kind != "truncated_mp4")
            data = Path(tmp).read_bytes()
            Path(tmp).write_bytes(data[: len(data) // 2])
    elif kind == "rotated":
        render_scene(make_scene(spec), path, rotation=rotation)
    else:  # near_duplicate
        scene = make_scene(spec)
        size = (spec.width * 3 // 4 // 2 * 2, spec.height * 3 // 4 // 2 * 2)
        worse = {"h264": 30, "vp9": 40, "mpeg4": 8}[spec.codec]
        render_scene(scene, path, crf=worse, size=size)
    return path
