"""Download jobs the fetch stage runs inside its sandbox child, and the errors they can end in.

One job: bring one remote file into a private working folder, or fail with an ``InputError``
whose slug says what happened. ``pipelines.ingest.fetch.Fetcher`` runs these functions in a
``pipelines.common.sandbox.Sandbox`` child under a hard time limit (a stalled server costs one input,
not the run) and owns retries; so yt-dlp's own retry counters are 0 here and every attempt of one
fetch reuses the same folder (yt-dlp resumes ``.part`` files with Range requests).

* ``ytdlp_download``: a web URL through yt-dlp's Python API (site extractors, or the generic one:
  direct media links, HTML5 ``<video>``/``<track>`` pages, HLS/DASH manifests).
* ``http_get``: a plain streamed GET (manifest subtitle files, which are not yt-dlp's business).
* ``fsspec_copy``: a remote fsspec URL (``gs://``, ``s3://``, ...), copied in chunks.

Only plain data crosses the process boundary: options in, ``dict`` results out.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import urllib.parse
from typing import Any

from pipelines.common.errors import InputError

__all__ = ["ytdlp_download", "http_get", "fsspec_copy", "is_transient", "ytdlp_options", "CHUNK"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_TIMEOUT = re.compile(r"timed? ?out", re.I)
_CONNECTION = re.compile(r"connection (reset|refused|aborted)|remote end closed|incomplete ?read|broken pipe", re.I)
_SUB_TYPES = {"text/vtt": ".vtt", "application/x-subrip": ".srt", "text/srt": ".srt",
              "application/ttml+xml": ".ttml", "text/x-ssa": ".ass"}


def is_transient(error_type: str) -> bool:
    """Whether a failure with this slug may go away on retry (5xx, 408, 429, time-outs, resets)."""
    return error_type in ("timeout", "connection_error", "http_408", "http_429") or bool(
        re.fullmatch(r"http_5\d\d", error_type))


def ytdlp_options(config: Any, workdir: str, ffmpeg: str | None) -> dict[str, Any]:
    """The yt-dlp options for one download (plain data; hooks and logger are added in the child).

    Args:
        config: a ``FetchConfig``.
        workdir: the private folder files are written to.
        ffmpeg: path of the ffmpeg binary yt-dlp merges and remuxes with.

    Returns:
        A ``YoutubeDL`` params dict.
    """
    h = config.max_height
    opts: dict[str, Any] = {
        "format": (f"bv*[height<={h}][ext=mp4]+ba[ext=m4a]/b[height<={h}][ext=mp4]/"
                   f"bv*[height<={h}]+ba/b[height<={h}]/b"),
        "format_sort": [f"res:{h}", "vcodec:h264", "ext:mp4:m4a"],  # tallest allowed, then h264/mp4
        "merge_output_format": "mp4",
        "outtmpl": os.path.join(workdir, "media.%(ext)s"),
        "writesubtitles": True,
        "writeautomaticsub": True,
        "subtitleslangs": list(config.subtitle_langs),
        "writeinfojson": True,
        "noplaylist": True,
        "playlist_items": "1",  # a page with several videos gives its first one
        "noprogress": True,
        "quiet": True,
        "retries": 0,  # the Fetcher retries whole attempts with backoff
        "fragment_retries": 0,
        "extractor_retries": 0,
        "continuedl": True,
        "socket_timeout": config.socket_timeout_s,
        "ratelimit": config.rate_limit_bytes,
    }
    if ffmpeg:
        opts["ffmpeg_location"] = ffmpeg
    if config.cookies_file:
        opts["cookiefile"] = config.cookies_file
    return opts


class _QuietLogger:
    """yt-dlp's messages go to our logger at debug level; errors come back as exceptions."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = warning = error = debug


class _TooLarge(Exception):
    pass


def _classify(url: str, exc: BaseException) -> InputError:
    """Turn a yt-dlp failure into an InputError with a stable slug."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import UnsupportedError

    text = re.sub(r"\s*\(caused by .*\)$", "", str(exc).replace("ERROR: ", "").strip(), flags=re.S)
    causes: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(causes) < 12:  # the exception, what it wraps, what that wraps...
        cur = todo.pop(0)
        if isinstance(cur, BaseException) and cur not in causes:
            causes.append(cur)
            exc_info = getattr(cur, "exc_info", None)
            todo += [exc_info[1] if exc_info else None, getattr(cur, "cause", None), cur.__cause__, cur.__context__]
    for cause in causes:
        if isinstance(cause, UnsupportedError):
            return InputError("fetch", "unsupported_url", f"{url}: no video found (yt-dlp: unsupported URL)")
        if isinstance(cause, HTTPError):
            return InputError("fetch", f"http_{cause.status}", f"{url}: HTTP {cause.status} {cause.reason or ''}".strip())
        if isinstance(cause, _TooLarge):
            return InputError("fetch", "too_large", f"{url}: {cause}")
        if isinstance(cause, TransportError) and _TIMEOUT.search(str(cause)):
            return InputError("fetch", "timeout", f"{url}: the server stopped answering ({text})")
    match = _HTTP_STATUS.search(text)
    if match:
        return InputError("fetch", f"http_{match.group(1)}", f"{url}: {text}")
    if _TIMEOUT.search(text):
        return InputError("fetch", "timeout", f"{url}: the server stopped answering ({text})")
    if _CONNECTION.search(text) or any(isinstance(c, TransportError) for c in causes):
        return InputError("fetch", "connection_error", f"{url}: {text}")
    return InputError("fetch", "download_failed", f"{url}: {text}")


def ytdlp_download(url: str, opts: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Download one web URL with yt-dlp into the folder of ``opts["outtmpl"]``.

    Args:
        url: an http(s) URL of a web page, stream manifest or media file.
        opts: from :func:`ytdlp_options`.
        max_bytes: largest media file accepted.

    Returns:
        ``{"media": path, "subtitles": [[lang, path], ...], "info_json": path or None}``.

    Raises:
        InputError: ``unsupported_url``, ``http_<status>``, ``timeout``, ``connection_error``,
            ``too_large``, ``no_media`` or ``download_failed``.
    """
    import yt_dlp

    def guard(status: dict[str, Any]) -> None:
        done, total = status.get("downloaded_bytes") or 0, status.get("total_bytes") or 0
        if max(done, total) > max_bytes:
            raise _TooLarge(f"larger than the {max_bytes}-byte limit")

    params = dict(opts, logger=_QuietLogger(), progress_hooks=[guard])
    private = None
    if params.get("cookiefile"):  # yt-dlp writes cookies back on exit: give it a private copy
        private = os.path.join(os.path.dirname(params["outtmpl"]), "cookies.txt")
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(params["cookiefile"], "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        params["cookiefile"] = private
    try:
        with yt_dlp.YoutubeDL(params) as ydl:
            info = ydl.extract_info(url, download=True)
    except Exception as exc:  # noqa: BLE001 - every yt-dlp failure is about this input
        raise _classify(url, exc) from None
    finally:
        if private and os.path.exists(private):
            os.remove(private)
    entries = [info] if info.get("_type") not in ("playlist", "multi_video") else list(info.get("entries") or [])
    for entry in entries:
        done = [d.get("filepath") for d in entry.get("requested_downloads") or []]
        media = next((p for p in done if p and os.path.isfile(p)), None)
        if media is None:
            continue
        subs = [[lang, s["filepath"]] for lang, s in sorted((entry.get("requested_subtitles") or {}).items())
                if s.get("filepath") and os.path.isfile(s["filepath"])]
        workdir = os.path.dirname(media)
        infos = sorted(n for n in os.listdir(workdir) if n.endswith(".info.json"))
        info_json = os.path.join(workdir, infos[0]) if infos else None
        if info_json:
            _scrub_info_json(info_json)
        return {"media": media, "subtitles": subs, "info_json": info_json}
    raise InputError("fetch", "no_media", f"{url}: yt-dlp finished without a media file")


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()
                if k.lower() not in ("cookies", "cookie", "set-cookie", "authorization")}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _scrub_info_json(path: str) -> None:
    """Drop cookies and auth headers yt-dlp may have copied into the info JSON (it is kept)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_scrub(data), f, ensure_ascii=False)


def _throttle(started: float, done: int, rate: int | None) -> None:
    if rate:
        ahead = done / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def http_get(url: str, dest_dir: str, max_bytes: int, socket_timeout_s: float,
             rate_limit: int | None = None) -> dict[str, Any]:
    """Stream one http(s) URL into ``dest_dir`` (used for subtitle files named by a manifest).

    Returns:
        ``{"media": path}``; the file's extension comes from the URL, else the Content-Type.

    Raises:
        InputError: ``http_<status>``, ``timeout``, ``connection_error`` or ``too_large``.
    """
    import requests

    ext = os.path.splitext(urllib.parse.urlsplit(url).path)[1].lower()
    try:
        with requests.get(url, stream=True, timeout=socket_timeout_s, allow_redirects=True) as resp:
            if resp.status_code >= 400:
                raise InputError("fetch", f"http_{resp.status_code}", f"{url}: HTTP {resp.status_code} {resp.reason}")
            if not re.fullmatch(r"\.[a-z0-9]{1,8}", ext or ""):
                ext = _SUB_TYPES.get(resp.headers.get("Content-Type", "").split(";")[0].strip(), ".sub")
            path, done, started = os.path.join(dest_dir, "download" + ext), 0, time.monotonic()
            with open(path, "wb") as out:
                for chunk in resp.iter_content(64 * 1024):
                    done += len(chunk)
                    if done > max_bytes:
                        raise InputError("fetch", "too_large", f"{url}: larger than the {max_bytes}-byte limit")
                    out.write(chunk)
                    _throttle(started, done, rate_limit)
    except requests.Timeout as exc:
        raise InputError("fetch", "timeout", f"{url}: the server stopped answering ({exc})") from None
    except requests.RequestException as exc:
        raise InputError("fetch", "connection_error", f"{url}: {exc}") from None
    return {"media": path}


def fsspec_copy(url: str, dest_dir: str, max_bytes: int, rate_limit: int | None = None) -> dict[str, Any]:
    """Copy one remote fsspec URL (``gs://``, ``s3://``, ...) into ``dest_dir`` in chunks.

    Returns:
        ``{"media": path}`` with the source's extension kept.

    Raises:
        InputError: ``not_found``, ``not_regular_file``, ``too_large``, ``unsupported_scheme`` or
            ``connection_error``.
    """
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ValueError, ImportError) as exc:  # "Protocol not known", or its package is not installed
        raise InputError("fetch", "unsupported_scheme", f"{url}: {exc}") from None
    except OSError as exc:  # a file system that connects on creation (ftp, sftp): host unknown, refused
        raise InputError("fetch", "connection_error", f"{url}: {exc}") from None
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise InputError("fetch", "not_found", f"{url}: no such file") from None
    except OSError as exc:
        raise InputError("fetch", "connection_error", f"{url}: {exc}") from None
    if info.get("type") != "file":
        raise InputError("fetch", "not_regular_file", f"{url}: is a {info.get('type')}, not a file")
    if (info.get("size") or 0) > max_bytes:
        raise InputError("fetch", "too_large", f"{url}: {info['size']} bytes, over the {max_bytes}-byte limit")
    ext = os.path.splitext(path)[1].lower()
    target, done, started = os.path.join(dest_dir, "download" + ext), 0, time.monotonic()
    try:
        with fs.open(path, "rb") as src, open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                done += len(chunk)
                if done > max_bytes:
                    raise InputError("fetch", "too_large", f"{url}: larger than the {max_bytes}-byte limit")
                out.write(chunk)
                _throttle(started, done, rate_limit)
    except OSError as exc:
        from pipelines.common.guard import InputGuard

        fault = InputGuard({"WORK": dest_dir}).run_fault(exc)  # writing our copy: a full disk is the run's
        if fault is not None:
            raise fault from None
        raise InputError("fetch", "connection_error", f"{url}: {exc}") from None
    return {"media": target}
