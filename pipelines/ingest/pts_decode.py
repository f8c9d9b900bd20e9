"""Decode only the wanted frames of a video, found by presentation timestamp, with PyAV.

One job: given the presentation timestamps (pts) of the frames a clip needs, yield each of
them as an RGB array of the requested size, in presentation order, doing as little decoding as
the stream allows:

* **Stop after the last wanted frame**: the rest of the file is never read.
* **Seek across long gaps**: when the next wanted frame starts a later group of pictures than the
  one being decoded, drain the decoder, seek to that group's keyframe and decode from there
  (the frames in between are neither read nor decoded). A wanted frame only counts as reachable
  from a keyframe when its pts is not before the keyframe's (no open-GOP leading pictures).
* **Skip unwanted non-reference frames**: each packet is sent with the decoder's ``skip_frame``
  set to ``NONREF`` unless it is a wanted frame, so a frame no other frame is predicted from
  (most B-frames of H.264/HEVC) is not decoded at all; reference frames are decoded as always,
  so a wanted frame's pixels do not change.
* **Convert only wanted frames**, with the filter graph decord 0.6 builds (``transpose`` for the
  display rotation, then ``scale=W:H`` with the ``bilinear`` flags that were FFmpeg 4's default,
  to ``rgb24``), so the pixels equal what ``decord.VideoReader(..., width=W, height=H)`` gives
  for the same frame. Only the wanted frames pass through it.

Which index a pts has, and the timeline of the clip, are ``pipelines.ingest.frames``' business;
this module works in pts only. Anything it cannot do (a wanted frame never came out of the
decoder) is reported back as the set of pts still missing, for the caller to get another way.

References: FFmpeg's ``AVCodecContext.skip_frame`` (``AVDISCARD_NONREF``) and
``av_seek_frame``; decord 0.6 ``src/video/ffmpeg/threaded_decoder.cc`` (its filter graph).
"""
from __future__ import annotations

import io
import itertools
import os
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

import numpy as np

__all__ = ["PacketIndex", "scan_packets", "decode_by_pts", "filter_description", "PIXEL_FORMATS"]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]

PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuv444p"})
"""Decoded formats whose conversion here was checked equal to decord's, pixel for pixel (8-bit
4:2:0 limited and full range, 4:2:2, 4:4:4; H.264, VP9, MPEG-4). Others (10-bit: up to 71 levels
apart at native size) raise in ``decode_by_pts``, so the caller decodes them with decord."""


@dataclass(frozen=True)
class PacketIndex:
    """The video packets of a file, in decode order (what the demuxer returns, no decoding)."""

    pts: np.ndarray
    """int64 pts of each packet, decode order."""
    key: np.ndarray
    """bool: the packet is a keyframe (a place the decoder can start from)."""
    stream_start: int | None
    """The stream's ``start_time`` in its time base (None when the container gives none)."""
    time_base: object
    """``fractions.Fraction`` seconds per pts tick."""


def _open(source: Source):
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        return av.open(io.BytesIO(bytes(source)))
    return av.open(os.fspath(source))


def _video_stream(container):
    """The stream ``frames._container_info`` probes: the best video stream that is not cover art."""
    import av

    videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not videos:
        return None
    return container.streams.best("video") or videos[0]


def scan_packets(source: Source) -> PacketIndex | None:
    """Read every video packet's pts and keyframe flag (demuxing only).

    Args:
        source: a file path or the file's bytes.

    Returns:
        The index, or None when some packet has no pts (such a stream is decoded another way).
    """
    with _open(source) as container:
        stream = _video_stream(container)
        if stream is None:
            return None
        pts, key = [], []
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None:  # the demuxer's end-of-stream marker
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
            key.append(packet.is_keyframe)
        return PacketIndex(np.asarray(pts, dtype=np.int64), np.asarray(key, dtype=bool), stream.start_time,
                           stream.time_base)


def filter_description(rotation: int, width: int, height: int) -> str:
    """decord 0.6's filter chain for a display rotation and an output size (see module docstring).

    Args:
        rotation: counter-clockwise degrees (0, 90, 180, 270) to turn a coded frame upright, as
            ``frames.VideoInfo.rotation``; decord's angle is the clockwise one, ``-rotation``.
        width, height: the output size, upright.
    """
    turn = {90: "transpose=2,", 180: "transpose=1,transpose=1,", 270: "transpose=1,"}.get(rotation % 360, "")
    return f"{turn}scale={width}:{height}:flags=bilinear,format=rgb24"


class _Converter:
    """A filter graph from decoded frames to rgb24 arrays (built for the first frame it gets)."""

    def __init__(self, stream, description: str):
        self.stream, self.description, self.graph = stream, description, None

    def __call__(self, frame) -> np.ndarray:
        import av

        if self.graph is None:
            if frame.format.name not in PIXEL_FORMATS:
                raise ValueError(f"pixel format {frame.format.name} is not one checked against decord")
            graph = av.filter.Graph()
            nodes = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                      time_base=self.stream.time_base)]
            for part in self.description.split(","):
                name, _, args = part.partition("=")
                nodes.append(graph.add(name, args))
            nodes.append(graph.add("buffersink"))
            graph.link_nodes(*nodes).configure()
            self.graph = graph
        self.graph.vpush(frame)
        return self.graph.vpull().to_ndarray()


def _decoder(source: Source, num_threads: int, description: str):
    """(container, stream, codec context, converter), the decoder set to ``num_threads``."""
    container = _open(source)
    stream = _video_stream(container)
    cc = stream.codec_context
    cc.thread_count = num_threads
    if num_threads != 1:
        cc.thread_type = "AUTO"  # frame and slice threads, as decord leaves FFmpeg's default
    return container, stream, cc, _Converter(stream, description)


def _entry_positions(index: PacketIndex, wanted: Sequence[int]) -> dict[int, int]:
    """For each wanted pts, the decode position of the keyframe to start from to reach it: the last
    keyframe before it in decode order whose pts is not after the wanted pts (0 when none is)."""
    where = {int(p): i for i, p in enumerate(index.pts)}
    key_pos = np.flatnonzero(index.key)
    key_pts = index.pts[key_pos]
    out = {}
    for w in wanted:
        ok = key_pos[(key_pos <= where[w]) & (key_pts <= w)]
        out[w] = int(ok[-1]) if ok.size else 0
    return out


def decode_by_pts(source: Source, index: PacketIndex, wanted: Sequence[int], description: str,
                  num_threads: int = 0, missing: set | None = None,
                  stats: dict | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(pts, rgb array)`` for each wanted pts, in increasing pts order.

    Args:
        source: the file the index was made from.
        index: its packet index (``scan_packets``).
        wanted: pts of the frames wanted; each must be in ``index.pts``.
        description: the filter chain (``filter_description``).
        num_threads: decoder threads (0: FFmpeg chooses).
        missing: when given, filled with the wanted pts that never came out of the decoder (a
            damaged stream); the iteration then ends after the last one that did.
        stats: when given, counts are added to it: ``read`` (packets demuxed), ``sent`` (given
            to the decoder), ``decoded`` (frames that came out), ``converted`` and ``seeks``.

    Yields:
        ``(pts, array)`` pairs, arrays uint8 (H, W, 3), pts strictly increasing.
    """
    import av

    pending = sorted(set(int(w) for w in wanted))
    count = stats if stats is not None else {}
    for k in ("read", "sent", "decoded", "converted", "seeks"):
        count.setdefault(k, 0)
    entry = _entry_positions(index, pending)
    position = {int(p): i for i, p in enumerate(index.pts)}
    todo = set(pending)
    ready: dict[int, np.ndarray] = {}
    nxt = 0  # pending[nxt] is the next pts to yield
    container = None
    try:
        container, stream, cc, convert = _decoder(source, num_threads, description)

        def send(packet) -> None:
            try:
                frames = cc.decode(packet)
            except av.error.FFmpegError:  # a damaged packet: the decoder goes on with the next one
                return
            count["decoded"] += len(frames)
            for frame in frames:
                if frame.pts in todo:
                    count["converted"] += 1
                    todo.discard(frame.pts)
                    ready[frame.pts] = convert(frame)

        def drain() -> None:
            send(None)
            cc.flush_buffers()

        demux = container.demux(stream)
        last = -1  # decode position of the last packet sent to the decoder
        skip_to = 0  # packets before this decode position are read but not decoded (after a seek)
        target, known = 0, -1  # the decode position to reach next, for todo of size `known`
        while todo:
            if known != len(todo):
                target, known = min(entry[w] for w in todo), len(todo)
            if target > last + 1 and target > skip_to and not ready:
                # every frame still to come starts a later group than the packets read: jump there.
                # A demuxer may land on an earlier keyframe (mov indexes by dts): those packets are
                # dropped unread by the decoder; one that lands later makes us read from the start.
                drain()
                if not todo:
                    break
                container.seek(int(index.pts[target]), backward=True, any_frame=False, stream=stream)
                count["seeks"] += 1
                demux, skip_to = container.demux(stream), target
                first = next(demux, None)
                if first is None or position.get(first.pts, target + 1) > target:
                    container.close()
                    container, stream, cc, convert = _decoder(source, num_threads, description)
                    demux = container.demux(stream)
                else:
                    demux = itertools.chain([first], demux)
            packet = next(demux, None)
            if packet is None or (packet.size == 0 and packet.pts is None):
                drain()
                break
            count["read"] += 1
            pos = position.get(packet.pts)
            if pos is not None and pos < skip_to:
                continue
            skip_to = 0
            last = pos if pos is not None else last
            cc.skip_frame = "DEFAULT" if packet.pts in todo else "NONREF"
            count["sent"] += 1
            send(packet)
            while nxt < len(pending) and pending[nxt] in ready:
                yield pending[nxt], ready.pop(pending[nxt])
                nxt += 1
        while nxt < len(pending) and pending[nxt] in ready:
            yield pending[nxt], ready.pop(pending[nxt])
            nxt += 1
    finally:
        if container is not None:
            container.close()
    if missing is not None:
        missing.update(pending[nxt:])
