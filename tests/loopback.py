"""A loopback HTTP media server and small media builders, for tests that must not touch the network.

``serve_directory(root)`` serves a folder on ``127.0.0.1`` (never any other address) from a
background thread and yields a :class:`Loopback`: the base URL as a ``str`` (so
``f"{base}/clip.mp4"`` works) that also counts requests per path and can be told to answer some
paths with an error status, or with headers and then silence (a stalled server). Byte ranges
(``Range: bytes=a-b``) are honoured, as yt-dlp asks for them when it resumes.

The builders write what a test serves: a direct mp4 (``write_mp4``), an HTML5 page with a
``<video>`` and a ``<track>`` subtitle (``write_html5_page``), an HLS playlist of MPEG-TS segments
(``write_hls``) and a page with no video at all (``write_page_without_video``). Video is h264
encoded with PyAV; no system ffmpeg is used.
"""
from __future__ import annotations

import collections
import contextlib
import http.server
import mimetypes
import re
import sys
import threading
import urllib.parse
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

__all__ = [
    "Loopback",
    "serve_directory",
    "write_mp4",
    "write_vtt",
    "write_html5_page",
    "write_hls",
    "write_page_without_video",
]

_TYPES = {
    ".mp4": "video/mp4",
    ".ts": "video/mp2t",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".html": "text/html; charset=utf-8",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Loopback(str):
    """The server's base URL (``http://127.0.0.1:PORT``), plus request counts and fault rules.

    Attributes:
        requests: ``Counter`` of requests (GET and HEAD) per URL path, e.g. ``{"/a.mp4": 2}``.
    """

    requests: collections.Counter
    _rules: dict[str, list]
    _headers: dict[str, dict[str, str]]
    _lock: threading.Lock
    _stop: threading.Event

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (with or without a leading slash)."""
        return f"{self}/{path.lstrip('/')}"

    def hits(self, path: str) -> int:
        """How many requests ``path`` has received."""
        with self._lock:
            return self.requests["/" + path.lstrip("/")]

    @property
    def total(self) -> int:
        """Requests received on all paths."""
        with self._lock:
            return sum(self.requests.values())

    def fail(self, path: str, status: int, times: int | None = None) -> None:
        """Answer ``path`` with ``status`` (e.g. 404, 500), for the next ``times`` requests or always."""
        with self._lock:
            self._rules["/" + path.lstrip("/")] = ["status", status, times]

    def stall(self, path: str) -> None:
        """Send ``200`` headers for ``path``, then no body until the server stops."""
        with self._lock:
            self._rules["/" + path.lstrip("/")] = ["stall", 200, None]

    def last_headers(self, path: str) -> dict[str, str]:
        """The request headers of the latest request for ``path`` (``{}`` if none)."""
        with self._lock:
            return dict(self._headers.get("/" + path.lstrip("/"), {}))

    def _rule_for(self, path: str, headers: dict[str, str]) -> tuple[str, int] | None:
        with self._lock:
            self.requests[path] += 1
            self._headers[path] = headers
            rule = self._rules.get(path)
            if rule is None:
                return None
            kind, status, times = rule
            if times is not None:
                if times <= 0:
                    return None
                rule[2] = times - 1
            return kind, status


def _handler_class(root: Path, server_state: Loopback) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet test output
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            rule = server_state._rule_for(path, dict(self.headers.items()))
            if rule and rule[0] == "status":
                return self._plain(rule[1], f"status {rule[1]} by test rule\n", body)
            target = (root / path.lstrip("/")).resolve()
            if root not in target.parents or not target.is_file():
                return self._plain(404, "not found\n", body)
            data = target.read_bytes()
            ctype = _TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if rule and rule[0] == "stall":
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                server_state._stop.wait(60)  # the client must give up first
                self.close_connection = True
                return
            status, start, end = 200, 0, len(data) - 1
            match = _RANGE.match(self.headers.get("Range", "").strip())
            if match and data:
                first, last = match.groups()
                if first:
                    start, end = int(first), min(int(last), end) if last else end
                elif last:
                    start = max(0, len(data) - int(last))
                if start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(data[start:end + 1])

        def _plain(self, status: int, text: str, body: bool) -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body:
                self.wfile.write(payload)

    return Handler


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are expected
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_directory(root: str | Path) -> Iterator[Loopback]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) while the ``with`` block runs.

    Args:
        root: folder whose files are served at ``/<relative path>``.

    Returns:
        A context manager yielding the :class:`Loopback` base URL (a ``str``).
    """
    root = Path(root).resolve()
    # the handler needs the URL (port 0 = any free port), so it is set once the port is known
    server = _QuietServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    base = Loopback(f"http://127.0.0.1:{server.server_address[1]}")
    base.requests, base._rules, base._headers = collections.Counter(), {}, {}
    base._lock, base._stop = threading.Lock(), threading.Event()
    server.RequestHandlerClass = _handler_class(root, base)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        base._stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- media builders


def _frame(i: int, width: int, height: int) -> np.ndarray:
    """A frame with a moving bright square, so consecutive frames differ."""
    img = np.full((height, width, 3), 40, dtype=np.uint8)
    x = (i * 4) % max(1, width - 16)
    img[height // 4:height // 4 + 16, x:x + 16] = (230, 60 + (i * 7) % 190, 30)
    return img


def write_mp4(path: str | Path, frames: int = 20, fps: int = 10, size: tuple[int, int] = (96, 64)) -> Path:
    """Write a small h264 mp4 (``frames`` frames at ``fps``, ``size`` = (width, height)); returns the path."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(_frame(i, *size), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def write_vtt(path: str | Path, cues: tuple[tuple[float, float, str], ...] = ((0.0, 1.0, "hello loopback"),)) -> Path:
    """Write a WebVTT file with ``(start_s, end_s, text)`` cues; returns the path."""
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    body = "".join(f"{stamp(a)} --> {stamp(b)}\n{text}\n\n" for a, b, text in cues)
    path = Path(path)
    path.write_text("WEBVTT\n\n" + body, encoding="utf-8")
    return path


def write_html5_page(folder: str | Path, name: str = "page.html", video: str = "page-video.mp4",
                     vtt: str | None = "page-video.en.vtt") -> Path:
    """Write an HTML5 page with ``<video><source src=video>`` and, if ``vtt``, an English ``<track>``.

    The mp4 and the vtt are written next to the page. Returns the page's path.
    """
    folder = Path(folder)
    write_mp4(folder / video)
    track = ""
    if vtt:
        write_vtt(folder / vtt)
        track = f'\n    <track kind="subtitles" srclang="en" label="English" src="{vtt}">'
    html = (
        "<!DOCTYPE html>\n<html><head><title>A loopback page</title></head><body>\n"
        f'  <video controls width="96">\n    <source src="{video}" type="video/mp4">{track}\n  </video>\n'
        "</body></html>\n"
    )
    (folder / name).write_text(html, encoding="utf-8")
    return folder / name


def write_page_without_video(folder: str | Path, name: str = "page-with-no-video.html") -> Path:
    """Write an HTML page that has no media at all; returns its path."""
    path = Path(folder) / name
    path.write_text("<!DOCTYPE html>\n<html><head><title>Nothing here</title></head>"
                    "<body><p>Just text.</p></body></html>\n", encoding="utf-8")
    return path


def write_hls(folder: str | Path, name: str = "stream.m3u8", segments: int = 3, frames_per_segment: int = 10,
              fps: int = 10, size: tuple[int, int] = (96, 64)) -> tuple[Path, int]:
    """Write a VOD HLS playlist and its MPEG-TS h264 segments (PyAV's mpegts muxer).

    Each segment is its own transport stream that starts on a key frame; time stamps run on across
    segments, as a real packager's do.

    Returns:
        ``(playlist path, total frame count)``.
    """
    folder = Path(folder)
    stem = Path(name).stem
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-MEDIA-SEQUENCE:0",
             f"#EXT-X-TARGETDURATION:{-(-frames_per_segment // fps)}"]
    for s in range(segments):
        seg = f"{stem}-{s:03d}.ts"
        with av.open(str(folder / seg), "w", format="mpegts") as out:
            stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
            stream.codec_context.time_base = Fraction(1, fps)
            for k in range(frames_per_segment):
                i = s * frames_per_segment + k
                frame = av.VideoFrame.from_ndarray(_frame(i, *size), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        lines += [f"#EXTINF:{frames_per_segment / fps:.3f},", seg]
    lines.append("#EXT-X-ENDLIST")
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / name, segments * frames_per_segment
