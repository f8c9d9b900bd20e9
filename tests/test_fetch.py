"""The fetch stage against a loopback HTTP server and local files: routing, store, cache, failures."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from pathlib import Path

import av
import fsspec
import pytest

from pipelines.ingest import fetch_web
from pipelines.ingest.config import FetchConfig
from pipelines.common.errors import InputError
from pipelines.ingest.fetch import FetchResult, Fetcher, route
from tests import loopback

FAST = dict(retries=2, backoff_s=0.05, socket_timeout_s=2.0, timeout_s=20.0)


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def count_frames(path: str) -> int:
    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("served")
    loopback.write_mp4(root / "clip.mp4")
    loopback.write_html5_page(root, "page.html", video="page-video.mp4", vtt="page-video.en.vtt")
    loopback.write_hls(root, "stream.m3u8", segments=3, frames_per_segment=10)
    loopback.write_page_without_video(root, "page-with-no-video.html")
    for name in ("flaky.mp4", "down.mp4", "stalled.mp4", "other.mp4"):
        loopback.write_mp4(root / name, frames=8 + len(name))  # distinct bytes
    return root


@pytest.fixture(scope="module")
def server(media):
    with loopback.serve_directory(media) as base:
        yield base


@pytest.fixture
def make_fetcher(tmp_path):
    made = []

    def make(store: str | Path | None = None, **settings) -> Fetcher:
        fetcher = Fetcher(FetchConfig(**{**FAST, **settings}), str(store or tmp_path / "raw"))
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


def expect_error(slug: str, call, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    assert info.value.stage == "fetch" and info.value.error_type == slug, str(info.value)
    return info.value


def test_route():
    assert route("https://example.org/watch?v=1") == route("http://127.0.0.1/a.mp4") == "web"
    assert route("/data/a.mp4") == route("rel/a.mp4") == route("file:///data/a.mp4") == "local"
    assert route("gs://bucket/a.mp4") == route("s3://bucket/a.mp4") == "fsspec"
    expect_error("unsupported_scheme", route, "file://otherhost/a.mp4")


def test_direct_mp4_through_ytdlp_lands_in_the_store(make_fetcher, server, media, tmp_path):
    result = make_fetcher().fetch(server.url("clip.mp4"), "row-1")
    digest = sha(media / "clip.mp4")
    assert (result.sha256, result.size, result.ext) == (digest, (media / "clip.mp4").stat().st_size, ".mp4")
    assert result.raw_path == str(tmp_path / "raw" / digest[:2] / f"{digest}.mp4")
    assert sha(result.raw_path) == digest and not result.from_cache
    info = json.loads(Path(result.info_json_path).read_text())
    assert info["webpage_url"] == server.url("clip.mp4")
    assert pickle.loads(pickle.dumps(result)) == result


def test_rerun_from_cache_makes_no_requests(make_fetcher, server, tmp_path):
    first = make_fetcher().fetch(server.url("other.mp4"), "row-1")
    before = server.total
    again = make_fetcher().fetch(server.url("other.mp4"), "row-1")  # a fresh worker, same store
    assert server.total == before
    assert again.from_cache and again == FetchResult(**{**first.__dict__, "from_cache": True})
    sidecars = list((tmp_path / "raw" / "sources").rglob("*.json"))
    assert [json.loads(p.read_text())["source"] for p in sidecars] == [server.url("other.mp4")]


def test_html5_page_yields_video_and_track_subtitle(make_fetcher, server, media):
    result = make_fetcher().fetch(server.url("page.html"), "row-2")
    assert result.sha256 == sha(media / "page-video.mp4")
    assert [lang for lang, _ in result.subtitle_paths] == ["en"]
    assert "hello loopback" in Path(result.subtitle_paths[0][1]).read_text()


def test_hls_playlist_becomes_a_playable_file(make_fetcher, server):
    result = make_fetcher().fetch(server.url("stream.m3u8"), "row-3")
    assert result.ext == ".mp4" and count_frames(result.raw_path) == 30
    with av.open(result.raw_path) as container:
        assert "mp4" in container.format.name  # remuxed from MPEG-TS by yt-dlp with imageio's ffmpeg


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file_url"])
def test_local_sources_go_through_fsspec(make_fetcher, media, as_url):
    source = (media / "clip.mp4").as_uri() if as_url else str(media / "clip.mp4")
    subtitle = str(media / "page-video.en.vtt")
    result = make_fetcher().fetch(source, "row-4", subtitle=subtitle)
    assert result.sha256 == sha(media / "clip.mp4") and result.info_json_path is None
    assert result.subtitle_paths[0][0] == "en" and sha(result.subtitle_paths[0][1]) == sha(subtitle)
    assert make_fetcher().fetch(source, "row-4", subtitle=subtitle).from_cache


def test_edited_local_file_is_fetched_again(make_fetcher, tmp_path):
    src = tmp_path / "edited.mp4"
    loopback.write_mp4(src, frames=5)
    first = make_fetcher().fetch(str(src), "row")
    loopback.write_mp4(src, frames=9)
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = make_fetcher().fetch(str(src), "row")
    assert not second.from_cache and second.sha256 == sha(src) != first.sha256


def test_manifest_subtitle_url_is_fetched_into_the_store(make_fetcher, server, media):
    result = make_fetcher().fetch(server.url("clip.mp4"), "row-5", subtitle=server.url("page-video.en.vtt"))
    (lang, path), = result.subtitle_paths
    assert lang == "en" and sha(path) == sha(media / "page-video.en.vtt") and path.endswith(".vtt")


def test_http_404_is_not_retried(make_fetcher, server):
    err = expect_error("http_404", make_fetcher(retries=3).fetch, server.url("missing.mp4"), "row")
    assert server.url("missing.mp4") in str(err) and server.hits("missing.mp4") == 1


def test_page_without_video_is_unsupported(make_fetcher, server):
    err = expect_error("unsupported_url", make_fetcher().fetch, server.url("page-with-no-video.html"), "row")
    assert server.url("page-with-no-video.html") in err.message


def test_500_then_success_is_retried(make_fetcher, server, media):
    server.fail("flaky.mp4", 500, times=2)
    result = make_fetcher(retries=3).fetch(server.url("flaky.mp4"), "row")
    assert result.sha256 == sha(media / "flaky.mp4") and server.hits("flaky.mp4") >= 3


def test_persistent_500_gives_up_after_the_retries(make_fetcher, server):
    server.fail("down.mp4", 503)
    expect_error("http_503", make_fetcher(retries=1).fetch, server.url("down.mp4"), "row")
    assert server.hits("down.mp4") == 2


def test_stalled_server_times_out_within_the_limit(make_fetcher, server):
    server.stall("stalled.mp4")
    fetcher = make_fetcher(socket_timeout_s=1.0, timeout_s=3.0, retries=5, backoff_s=0.2)
    started = time.monotonic()
    expect_error("timeout", fetcher.fetch, server.url("stalled.mp4"), "row")
    assert time.monotonic() - started < 3.0 + 2.0  # the limit, plus killing and starting a child


@pytest.mark.parametrize("path", ["/dev/zero", "DIR", "FIFO"])
def test_non_regular_files_are_refused_before_opening(make_fetcher, tmp_path, path):
    if path == "DIR":
        path = str(tmp_path)
    elif path == "FIFO":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)  # opening it for reading would block forever
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    expect_error("not_regular_file", make_fetcher().fetch, path, "row")


def test_missing_path_and_subtitle_are_not_found(make_fetcher, tmp_path, media):
    expect_error("not_found", make_fetcher().fetch, str(tmp_path / "nope.mp4"), "row")
    expect_error("not_found", make_fetcher().fetch, str(media / "clip.mp4"), "row", subtitle=str(tmp_path / "no.vtt"))


def test_max_bytes_is_enforced_for_files_and_downloads(make_fetcher, server, media):
    expect_error("too_large", make_fetcher(max_bytes=1000).fetch, str(media / "clip.mp4"), "row")
    expect_error("too_large", make_fetcher(max_bytes=1000).fetch, server.url("clip.mp4"), "row")


def test_remote_store_through_fsspec(make_fetcher, media):
    store = "memory://fetch-test-store/raw"
    result = make_fetcher(store=store).fetch(str(media / "clip.mp4"), "row")
    assert result.raw_path.startswith("memory://") and result.raw_path.endswith(f"{result.sha256}.mp4")
    with fsspec.open(result.raw_path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == result.sha256
    assert make_fetcher(store=store).fetch(str(media / "clip.mp4"), "row").from_cache


def test_fsspec_copy_job_reads_remote_urls(tmp_path, media):
    fsspec.filesystem("memory").pipe_file("/fetch-test-src/a.mp4", (media / "clip.mp4").read_bytes())
    out = fetch_web.fsspec_copy("memory://fetch-test-src/a.mp4", str(tmp_path), max_bytes=10**6)
    assert sha(out["media"]) == sha(media / "clip.mp4") and out["media"].endswith(".mp4")
    expect_error("not_found", fetch_web.fsspec_copy, "memory://fetch-test-src/b.mp4", str(tmp_path), 10**6)
    expect_error("not_regular_file", fetch_web.fsspec_copy, "memory://fetch-test-src", str(tmp_path), 10**6)


def test_fetcher_pickles_before_and_after_use(make_fetcher, media):
    fetcher = make_fetcher()
    fetcher.fetch(str(media / "clip.mp4"), "row")
    clone = pickle.loads(pickle.dumps(fetcher))
    assert clone.config == fetcher.config and clone.fetch(str(media / "clip.mp4"), "row").from_cache


def test_sleep_between_downloads(make_fetcher, server):
    fetcher = make_fetcher(sleep_between_s=0.6)
    fetcher.fetch(server.url("page-video.mp4"), "a")
    started = time.monotonic()
    fetcher.fetch(server.url("clip.mp4"), "b")
    assert time.monotonic() - started >= 0.6


def test_cookies_file_is_used_but_never_kept_or_changed(make_fetcher, server, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tsecret-value\n")
    before = cookies.read_bytes()
    result = make_fetcher(cookies_file=str(cookies)).fetch(server.url("page-video.mp4"), "row")
    assert "secret-value" in server.last_headers("page-video.mp4").get("Cookie", "")
    assert cookies.read_bytes() == before
    stored = [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]
    assert stored and not any(b"secret-value" in p.read_bytes() for p in stored)
    assert Path(result.info_json_path).is_file()


def test_info_json_scrub_drops_cookies():
    data = {"formats": [{"url": "u", "cookies": "SID=secret", "http_headers": {"Cookie": "SID=secret", "Accept": "*/*"}}]}
    assert "secret" not in json.dumps(fetch_web._scrub(data))
    assert fetch_web._scrub(data)["formats"][0]["http_headers"] == {"Accept": "*/*"}
