"""The fetch stage: bring one manifest source (and its subtitle) into the content-addressed raw store.

Routing rule (``route``):

* ``http://`` and ``https://`` -> yt-dlp's Python API, always, also for direct links to media
  files: its generic extractor handles a direct ``.mp4``, an HTML5 page with ``<video>`` and
  ``<track>``, and HLS ``.m3u8`` / DASH manifests, and site extractors handle the rest. One path
  for every web source keeps format choice (``max_height``, mp4/h264 first), subtitles and the
  info JSON uniform. The one exception: a *subtitle* URL given by a manifest is a plain
  streamed GET, since a subtitle file is not a video yt-dlp could extract.
* A plain path or ``file://`` URL -> checked (missing -> ``not_found``; a device, FIFO or
  directory -> ``not_regular_file``, before opening) and copied through fsspec in chunks.
* Any other scheme fsspec knows (``gs://``, ``s3://``, ...) -> fsspec, chunked.

Every remote download runs in a ``pipelines.common.sandbox.Sandbox`` child that is killed at the
``timeout_s`` deadline (one limit per source, retries and back-off included), so a stalled or
trickling server costs one input, never the run. Transient failures (5xx, 408, 429, time-outs,
resets) are retried with exponential back-off; 404s, unsupported URLs and the like are not.

Store layout (``raw_store`` is a local folder or any fsspec URL, e.g. ``gs://bucket/raw``)::

    {raw_store}/{sha[:2]}/{sha}{ext}            media, subtitles and info JSONs, by sha256 of bytes
    {raw_store}/sources/{k[:2]}/{k}.json        sidecar: source -> blobs; k = sha256(kind + source)
    {raw_store}/.tmp/.fetch.tmp-*/              private working folders (local stores only)

A blob is downloaded into a working folder and moved into place, and the sidecar (written under
a temporary name and renamed) is written last, all through ``shards.atomic``, so a rerun with
the same source finds the sidecar and downloads nothing; what a killed run leaves under
temporary names is removed by the ingest's final sweep. For local sources the sidecar also keeps size and mtime, so an edited file
is fetched again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipelines.ingest import fetch_web
from pipelines.ingest.config import FetchConfig
from pipelines.common.errors import InputError
from shards.atomic import move_into_place, scratch_dir, write_json

__all__ = ["FetchResult", "Fetcher", "route"]

log = logging.getLogger(__name__)

SIDECAR_VERSION = 1
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")  # "clip:1.mp4" stays a file name
_EXT = re.compile(r"\.[a-z0-9]{1,8}")
_LANG_IN_NAME = re.compile(r"\.([a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?)\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class FetchResult:
    """Where one fetched source lies in the raw store."""

    raw_path: str
    """Path (or fsspec URL, for a remote store) of the media file: ``{raw_store}/{sha[:2]}/{sha}{ext}``."""
    sha256: str
    """sha256 of the media bytes (hex)."""
    size: int
    """Bytes."""
    ext: str
    """Extension with its dot (``".mp4"``), or ``""`` when the source had none."""
    subtitle_paths: tuple[tuple[str, str], ...] = ()
    """``(language, path)``: the manifest's subtitle first (language from a ``name.<lang>.vtt`` file
    name, else ``"und"``), then those yt-dlp found (``<track>`` elements, captions)."""
    info_json_path: str | None = None
    """yt-dlp's info JSON (cookies and auth headers removed), for web sources."""
    source: str = ""
    """The source as given."""
    from_cache: bool = False
    """True when nothing was downloaded for this call (all found in the store)."""


def route(source: str) -> str:
    """Which way a source is fetched: ``"web"`` (yt-dlp), ``"local"`` or ``"fsspec"`` (remote).

    Raises:
        InputError: ``unsupported_scheme`` for an empty source or a ``file://`` URL on another host.
    """
    match = _SCHEME.match(source)
    scheme = match.group(1).lower() if match else "file" if source.lower().startswith("file:") else ""
    if not source.strip():
        raise InputError("fetch", "unsupported_scheme", "empty source")
    if scheme in ("http", "https"):
        return "web"
    if scheme in ("", "file"):
        if scheme == "file" and urllib.parse.urlsplit(source).netloc not in ("", "localhost"):
            raise InputError("fetch", "unsupported_scheme", f"{source}: file:// URLs on other hosts are not supported")
        return "local"
    return "fsspec"


def _local_path(source: str) -> str:
    if source.lower().startswith("file:"):
        return os.path.abspath(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
    return os.path.abspath(os.path.expanduser(source))


def _ext_of(name: str) -> str:
    ext = os.path.splitext(urllib.parse.urlsplit(name).path if "://" in name else name)[1].lower()
    return ext if _EXT.fullmatch(ext) else ""


def _sha256_file(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(fetch_web.CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class _RawStore:
    """The content-addressed store: blobs by sha256, sidecars by source."""

    def __init__(self, root: str):
        self.fs, path = fsspec.core.url_to_fs(root)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = path.rstrip("/") or "/"

    def path(self, sha: str, ext: str) -> str:
        return f"{self.root}/{sha[:2]}/{sha}{ext}"

    def public(self, path: str) -> str:
        """The path as callers see it (an fsspec URL for remote stores)."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def _sidecar(self, key: str) -> str:
        k = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return f"{self.root}/sources/{k[:2]}/{k}.json"

    def scratch(self) -> contextlib.AbstractContextManager[str]:
        """A private working folder, on the store's disk when local (so moving a blob in is a rename)."""
        return scratch_dir(os.path.join(self.root, ".tmp") if self.local else tempfile.gettempdir(), "fetch")

    def put(self, local_file: str, ext: str) -> tuple[str, int]:
        """Move a finished file into the store; returns (sha256, size)."""
        sha, size = _sha256_file(local_file)
        final = self.path(sha, ext)
        if not (os.path.exists(final) if self.local else self.fs.exists(final)):
            move_into_place(local_file, final, fs=None if self.local else self.fs)
        return sha, size

    def read_sidecar(self, key: str) -> dict[str, Any] | None:
        try:
            with self.fs.open(self._sidecar(key), "rb") as f:
                data = json.loads(f.read())
        except (FileNotFoundError, ValueError):
            return None
        blobs = [data["media"], *[s[1:] for s in data["subtitles"]]] + ([data["info_json"]] if data["info_json"] else [])
        if data.get("version") != SIDECAR_VERSION or not all(self.fs.exists(self.path(*b)) for b in blobs):
            return None
        return data

    def write_sidecar(self, key: str, data: dict[str, Any]) -> None:
        write_json(self._sidecar(key), data, indent=1, fs=None if self.local else self.fs)


class Fetcher:
    """Fetches sources into the raw store; one per worker (a Beam DoFn builds it in ``setup()``).

    Construction is cheap and the object pickles: the sandbox child and the store client are made
    on first use. Call :meth:`close` in ``teardown()``.

    Args:
        config: download settings.
        raw_store: folder or fsspec URL of the content-addressed store.
    """

    def __init__(self, config: FetchConfig, raw_store: str):
        self.config = config
        self.raw_store = str(raw_store)
        self._store: _RawStore | None = None
        self._sandbox = None
        self._last_download: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "raw_store": self.raw_store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["raw_store"])

    def close(self) -> None:
        """Stop the download child process, if one was started."""
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    @property
    def store(self) -> _RawStore:
        if self._store is None:
            self._store = _RawStore(self.raw_store)
        return self._store

    def fetch(self, source: str, input_id: str, subtitle: str | None = None) -> FetchResult:
        """Fetch ``source`` (and a manifest ``subtitle``) into the store, or find them there.

        Args:
            source: http(s) URL, local path, ``file://``, ``gs://``, ``s3://``... (see ``route``).
            input_id: the manifest row's id, for logs.
            subtitle: optional subtitle URL or path given by the manifest.

        Returns:
            A :class:`FetchResult`.

        Raises:
            InputError: stage ``fetch``; slugs ``not_found``, ``not_regular_file``, ``too_large``,
                ``permission_denied``, ``unreadable_path``, ``changed_during_copy`` (local files); ``http_<status>``,
                ``unsupported_url``, ``unsupported_scheme``, ``timeout``, ``connection_error``,
                ``no_media``, ``download_failed``, ``crashed`` (downloads). The message starts with
                the source (or the subtitle) it is about.
        """
        media, media_cached = self._entry(source, "media")
        subs: list[tuple[str, str]] = []
        sub_cached = True
        if subtitle:
            sub, sub_cached = self._entry(subtitle, "subtitle")
            match = _LANG_IN_NAME.search(_local_path(subtitle) if route(subtitle) == "local" else
                                         urllib.parse.urlsplit(subtitle).path)
            subs.append((match.group(1) if match else "und", self.store.public(self.store.path(*sub["media"]))))
        subs += [(lang, self.store.public(self.store.path(sha, ext))) for lang, sha, ext in media["subtitles"]]
        sha, ext = media["media"]
        log.debug("fetched %s (%s) -> %s%s", input_id, source, sha, " from cache" if media_cached else "")
        return FetchResult(
            raw_path=self.store.public(self.store.path(sha, ext)), sha256=sha, size=media["size"], ext=ext,
            subtitle_paths=tuple(subs),
            info_json_path=self.store.public(self.store.path(*media["info_json"])) if media["info_json"] else None,
            source=source, from_cache=media_cached and sub_cached)

    # -------------------------------------------------------------------------------- internals

    def _entry(self, source: str, kind: str) -> tuple[dict[str, Any], bool]:
        """The sidecar of one source, from the store or after downloading it."""
        how = route(source)
        key = _local_path(source) if how == "local" else source
        signature = self._check_local(key, source) if how == "local" else None
        cached = self.store.read_sidecar(f"{kind}\n{key}")
        if cached is not None and cached.get("signature") == signature:
            return cached, True
        with self.store.scratch() as work:
            if how == "local":
                files = {"media": self._copy_local(key, source, signature, work)}
            else:
                files = self._with_retries(source, kind, how, work)
            entry = {"version": SIDECAR_VERSION, "source": key, "kind": kind, "signature": signature,
                     "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            sha, size = self.store.put(files["media"], _ext_of(files["media"]))
            entry.update(media=[sha, _ext_of(files["media"])], size=size, subtitles=[], info_json=None)
            for lang, path in files.get("subtitles") or []:
                entry["subtitles"].append([lang, self.store.put(path, _ext_of(path))[0], _ext_of(path)])
            if files.get("info_json"):
                entry["info_json"] = [self.store.put(files["info_json"], ".info.json")[0], ".info.json"]
        self.store.write_sidecar(f"{kind}\n{key}", entry)
        return entry, False

    def _check_local(self, path: str, source: str) -> list[int]:
        """Refuse missing and non-regular files before opening them; returns [size, mtime_ns]."""
        try:
            st = os.stat(path)  # follows links: a link to /dev/zero is refused too
        except FileNotFoundError:
            raise InputError("fetch", "not_found", f"{source}: no such file") from None
        except PermissionError:
            raise InputError("fetch", "permission_denied", f"{source}: permission denied") from None
        except OSError as exc:  # a symlink loop, a name too long, an I/O error...: the input's own path
            raise InputError("fetch", "unreadable_path", f"{source}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            what = "directory" if stat.S_ISDIR(st.st_mode) else "device, FIFO or socket"
            raise InputError("fetch", "not_regular_file", f"{source}: is a {what}, not a regular file")
        if st.st_size > self.config.max_bytes:
            raise InputError("fetch", "too_large", f"{source}: {st.st_size} bytes, over the {self.config.max_bytes}-byte limit")
        return [st.st_size, st.st_mtime_ns]

    def _copy_local(self, path: str, source: str, signature: list[int], work: str) -> str:
        """Copy a checked local file through fsspec in chunks, within the limits."""
        target = os.path.join(work, "download" + _ext_of(path))
        deadline, done = time.monotonic() + self.config.timeout_s, 0
        with LocalFileSystem().open(path, "rb") as src, open(target, "wb") as out:  # no URL parsing of the name
            while chunk := src.read(fetch_web.CHUNK):
                done += len(chunk)
                if done > self.config.max_bytes:
                    raise InputError("fetch", "too_large", f"{source}: grew past the {self.config.max_bytes}-byte limit")
                if time.monotonic() > deadline:
                    raise InputError("fetch", "timeout", f"{source}: copy took over {self.config.timeout_s:g} s")
                out.write(chunk)
        if done != signature[0]:
            raise InputError("fetch", "changed_during_copy", f"{source}: size changed while it was copied")
        return target

    def _with_retries(self, source: str, kind: str, how: str, work: str) -> dict[str, Any]:
        """Run download attempts in the sandbox until one succeeds, a permanent error, or the deadline."""
        cfg = self.config
        deadline = time.monotonic() + cfg.timeout_s
        for attempt in range(cfg.retries + 1):
            self._polite_pause()
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise InputError("fetch", "timeout", f"{source}: no result within {cfg.timeout_s:g} s")
                return self._attempt(source, kind, how, work, left)
            except InputError as err:
                if err.error_type == "timeout" and time.monotonic() >= deadline - 0.05:
                    raise InputError("fetch", "timeout", f"{source}: no complete download within the "
                                     f"{cfg.timeout_s:g} s limit (stalled or too slow)") from None
                wait = cfg.backoff_s * 2 ** attempt
                if not fetch_web.is_transient(err.error_type) or attempt == cfg.retries \
                        or time.monotonic() + wait >= deadline:
                    raise
                log.info("fetch %s failed (%s), retry %d/%d in %.1f s", source, err.error_type,
                         attempt + 1, cfg.retries, wait)
                time.sleep(wait)
            finally:
                self._last_download = time.monotonic()
        raise AssertionError("unreachable")

    def _attempt(self, source: str, kind: str, how: str, work: str, limit_s: float) -> dict[str, Any]:
        from pipelines.common.sandbox import Sandbox

        if self._sandbox is None:
            self._sandbox = Sandbox(timeout_s=self.config.timeout_s, stage="fetch")
        cfg = self.config
        if how == "fsspec":
            job, args = "pipelines.ingest.fetch_web:fsspec_copy", (source, work, cfg.max_bytes, cfg.rate_limit_bytes)
        elif kind == "subtitle":
            job, args = "pipelines.ingest.fetch_web:http_get", (source, work, cfg.max_bytes, cfg.socket_timeout_s,
                                                         cfg.rate_limit_bytes)
        else:
            import imageio_ffmpeg

            opts = fetch_web.ytdlp_options(cfg, work, imageio_ffmpeg.get_ffmpeg_exe())
            job, args = "pipelines.ingest.fetch_web:ytdlp_download", (source, opts, cfg.max_bytes)
        return self._sandbox.call(job, *args, input_name=source, timeout_s=limit_s)

    def _polite_pause(self) -> None:
        """Keep ``sleep_between_s`` between two network downloads of this worker."""
        if self._last_download is not None and self.config.sleep_between_s > 0:
            wait = self._last_download + self.config.sleep_between_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)

