"""pipelines.ingest.manifest: the three formats agree, every bad row fails with a clear message, streaming."""
from __future__ import annotations

import csv
import gzip
import json
import pickle
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.ingest.manifest import (
    ManifestFailure,
    ManifestRow,
    count_rows,
    manifest_format,
    parse_row,
    read_manifest,
)
from schemas.record_types import KEY_PATTERN, make_key

GOOD_ROWS = [
    {"id": "v1", "url": "https://example.org/a.mp4", "start": "1.5", "end": "10", "split": "train",
     "source": "yt", "license": "cc-by", "note": "first"},
    {"path": "/data/vidéos/東京.mp4", "subtitle": "/data/vidéos/東京.vtt"},
    {"id": "clip.01/b", "url": "gs://bucket/b.mp4", "end": "63"},
    {"images": ["a.jpg", "b.jpg", "c.jpg"], "set_id": "set-1", "split": "validation"},
    {"image": "x/1.png", "group": "g1", "note": "left"},
    {"image": "x/2.png", "group": "g1"},
]


def _write(tmp: Path, rows: list[dict], fmt: str) -> Path:
    """Write rows as the given format; CSV gets every column, images as 'a|b|c'."""
    if fmt == "jsonl":
        path = tmp / "m.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "csv":
        path = tmp / "m.csv"
        columns = sorted({k for r in rows for k in r})
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: "|".join(v) if isinstance(v, list) else v for k, v in r.items()})
    else:
        path = tmp / "m.parquet"
        columns = sorted({k for r in rows for k in r})
        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_each_format_reads_to_the_same_rows(tmp_path, fmt):
    reference = [parse_row(r, i, base=str(tmp_path)) for i, r in enumerate(GOOD_ROWS)]
    assert all(isinstance(r, ManifestRow) for r in reference)
    assert list(read_manifest(_write(tmp_path, GOOD_ROWS, fmt))) == reference


def test_row_fields_kinds_and_ids():
    v1, video, clip, image_set, img1, _ = [parse_row(r, i) for i, r in enumerate(GOOD_ROWS)]
    assert (v1.kind, v1.input_id, v1.start, v1.end, v1.split, v1.source, v1.license) == (
        "video", "v1", 1.5, 10.0, "train", "yt", "cc-by")
    assert json.loads(v1.extra) == {"note": "first"}
    assert video.path == "/data/vidéos/東京.mp4" and video.subtitle == "/data/vidéos/東京.vtt"
    assert (video.start, video.end, video.given_id) == (0.0, None, None)
    assert re.fullmatch(r"[0-9a-f]{16}", video.input_id)
    assert clip.given_id == "clip.01/b" and clip.input_id == make_key("clip.01/b")
    assert clip.input_id.startswith("clip_01_b-") and "." not in clip.input_id
    assert (image_set.kind, image_set.input_id) == ("image_set", "set-1")
    assert image_set.images == ("a.jpg", "b.jpg", "c.jpg")
    assert (img1.kind, img1.images, img1.group) == ("image", ("x/1.png",), "g1")


def test_derived_ids_are_pinned_and_ignore_metadata():
    row = {"url": "https://example.org/a.mp4", "start": 2, "end": 5}
    first = parse_row(row, 0)
    assert first.input_id == "f17ea1f758f39ae4"  # pinned: ids must not change between releases
    same = parse_row({"url": "https://example.org/a.mp4", "start": "2.0", "end": "5", "split": "test",
                      "source": "s", "other": 1}, 9)
    assert same.input_id == first.input_id
    assert parse_row({"url": "https://example.org/a.mp4", "start": 2, "end": 6}, 0).input_id != first.input_id
    assert parse_row({"path": "https://example.org/a.mp4", "start": 2, "end": 5}, 0).input_id != first.input_id


BAD_ROWS = [
    ({"url": "https://a/x.mp4", "path": "/x.mp4"}, "url_and_path", ["'url'", "'path'"]),
    ({"source": "yt", "URL": "https://a/x.mp4"}, "missing_location", ["'url'", "'path'", "URL"]),
    ({"url": "https://a/x.mp4", "start": -1}, "negative_start", ["'start'"]),
    ({"url": "https://a/x.mp4", "start": 5, "end": 3}, "end_before_start", ["'end'", "'start'"]),
    ({"url": "https://a/x.mp4", "start": 5, "end": 5}, "end_before_start", ["'end'", "'start'"]),
    ({"url": "https://a/x.mp4", "end": -2}, "end_before_start", ["'end'"]),
    ({"url": "https://a/x.mp4", "start": "1:05"}, "invalid_time", ["'start'"]),
    ({"url": "https://a/x.mp4", "end": True}, "invalid_time", ["'end'"]),
    ({"url": "https://a/x.mp4", "end": "inf"}, "invalid_time", ["'end'"]),
    ({"url": "https://a/x.mp4", "split": "dev"}, "unknown_split", ["'split'", "dev"]),
    ({"images": ["a.jpg"]}, "bad_image_count", ["'images'", "1 image"]),
    ({"images": [f"{i}.jpg" for i in range(6)]}, "bad_image_count", ["'images'", "6 image"]),
    ({"images": "a.jpg"}, "bad_image_count", ["'images'"]),
    ({"images": ["a.jpg", "a.jpg"]}, "duplicate_image", ["'images'", "a.jpg"]),
    ({"images": ["a.jpg", 3]}, "invalid_field", ["'images'[1]"]),
    ({"images": "[broken"}, "invalid_field", ["'images'"]),
    ({"url": "example.org/x.mp4"}, "invalid_url", ["'url'"]),
    ({"url": 12}, "invalid_field", ["'url'"]),
    ({"image": "a.jpg"}, "missing_group", ["'group'"]),
    ({"url": "https://a/x.mp4", "images": ["a", "b"]}, "ambiguous_kind", ["'url'", "'images'"]),
    ({"images": ["a", "b"], "start": 1}, "field_not_allowed", ["'start'"]),
    ({"image": "a", "group": "g", "subtitle": "s.vtt"}, "field_not_allowed", ["'subtitle'"]),
    ({"url": "https://a/x.mp4", "group": "g"}, "field_not_allowed", ["'group'"]),
    ({"images": ["a", "b"], "id": "x", "set_id": "y"}, "conflicting_id", ["'id'", "'set_id'"]),
    (["not", "an", "object"], "not_an_object", ["JSON object"]),
]


@pytest.mark.parametrize("raw, error_type, words", BAD_ROWS, ids=[c[1] for c in BAD_ROWS])
def test_bad_rows_fail_with_type_and_a_message_naming_row_and_field(raw, error_type, words):
    failure = parse_row(raw, 7)
    assert isinstance(failure, ManifestFailure), failure
    assert failure.error_type == error_type
    assert failure.message.startswith("row 7: ")
    for word in words:
        assert word in failure.message
    assert failure.row_number == 7 and failure.stage == "manifest" and failure.input_id
    assert json.loads(failure.raw) == raw


def test_end_before_start_message_is_exact():
    failure = parse_row({"url": "https://a/x.mp4", "start": 5, "end": 3}, 7)
    assert failure.message == "row 7: 'end' (3.0) must be greater than 'start' (5.0)"


def test_failure_keeps_a_best_effort_id():
    assert parse_row({"id": "a.b", "url": "nope"}, 0).input_id == make_key("a.b")
    assert parse_row({"id": 42, "url": "nope"}, 0).input_id == "42"
    assert re.fullmatch(r"[0-9a-f]{16}", parse_row({"url": "nope"}, 0).input_id)


def test_jsonl_line_errors_duplicates_and_counts_add_up(tmp_path):
    lines = [
        json.dumps({"id": "a", "url": "https://a/1.mp4"}),
        "",  # blank lines are not rows
        "{not json",
        "[1, 2]",
        json.dumps({"id": "a", "url": "https://a/2.mp4"}),
        json.dumps({"url": "https://a/3.mp4", "start": 1}),
        json.dumps({"url": "https://a/3.mp4", "start": 1.0, "note": "same clip"}),
        json.dumps({"id": "a", "path": "/p"}),
        "   ",
        json.dumps({"path": "/ok"}),
    ]
    path = tmp_path / "m.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"path": "\xff"}\n')
    outcomes = list(read_manifest(path))
    assert [o.row_number for o in outcomes] == list(range(len(outcomes))) == list(range(9))
    ok = [o for o in outcomes if isinstance(o, ManifestRow)]
    failed = [o for o in outcomes if isinstance(o, ManifestFailure)]
    assert len(ok) + len(failed) == len(outcomes)
    assert [o.error_type for o in failed] == ["invalid_json", "not_an_object", "duplicate_id", "duplicate_id",
                                              "duplicate_id", "invalid_json"]
    # rows are named by their line as an editor shows it (1-based; blank lines count)
    assert [o.where for o in outcomes] == [f"line {n}" for n in (1, 3, 4, 5, 6, 7, 8, 10, 11)]
    assert failed[0].message.startswith("line 3: not JSON") and json.loads(failed[0].raw) == "{not json"
    assert failed[1].message.startswith("line 4: must be a JSON object")
    assert failed[2].message == "line 5: 'id' 'a' (key 'a') is already used by line 1"
    assert "already used by line 6" in failed[3].message and "clip range" in failed[3].message
    assert failed[4].message.startswith("line 8: ") and "already used by line 1" in failed[4].message
    assert failed[5].message.startswith("line 11: not UTF-8")


def _read_csv(tmp_path: Path, *lines: str) -> tuple[Path, list]:
    path = tmp_path / "m.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path, list(read_manifest(path))


def test_csv_image_lists_blank_cells_and_extra_cells(tmp_path):
    _, rows = _read_csv(tmp_path, '\ufeffurl,images,start,note\n', 'https://a/1.mp4,, ,\n',
                        ',"[""a.jpg"", ""b.jpg""]",,x\n', ', a.jpg | b.jpg ,,\n', 'https://a/2.mp4,,,,surplus\n')
    assert rows[0].kind == "video" and rows[0].start == 0.0 and rows[0].extra == "{}"
    assert rows[1].images == (str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")) and rows[1].extra == '{"note":"x"}'
    assert isinstance(rows[2], ManifestFailure) and rows[2].error_type == "duplicate_id"
    assert rows[2].input_id == rows[1].input_id  # the pipe form lists the same images
    assert isinstance(rows[3], ManifestFailure) and rows[3].error_type == "invalid_csv_row"
    assert rows[3].message.startswith("line 5: has more cells")


def test_csv_rows_are_named_by_the_line_they_start_on(tmp_path):
    """The header is line 1; blank lines count; a quoted cell spanning lines names its first line."""
    path, rows = _read_csv(tmp_path, 'url,note,start\n', 'https://a/1.mp4,"two\nlines",\n', '\n',
                           'https://a/2.mp4,,soon\n', 'https://a/3.mp4,,\n')
    assert [r.where for r in rows] == ["line 2", "line 5", "line 6"]
    assert json.loads(rows[0].extra) == {"note": "two\nlines"}
    assert isinstance(rows[1], ManifestFailure) and rows[1].message.startswith("line 5: 'start'")
    assert count_rows(path) == 3


def test_parquet_rows_are_named_by_row_index(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"url": ["https://a/1.mp4", "https://a/2.mp4", "nope"]}), path)
    rows = list(read_manifest(path))
    assert [r.where for r in rows] == ["row index 0", "row index 1", "row index 2"]
    assert rows[2].message.startswith("row index 2: 'url' must be an absolute URL")
    assert count_rows(path) == 3


def test_relative_locations_resolve_against_the_manifest_folder(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [{"path": "videos/a.mp4", "subtitle": "../subs/a.vtt"},
            {"images": ["img/0.jpg", "/abs/1.jpg", "https://x.org/2.jpg"]},
            {"image": "img/3.jpg", "group": "g"},
            {"url": "https://x.org/v.mp4", "subtitle": "file:///srv/v.vtt"},
            {"path": "/abs/b.mp4"}]
    (folder / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)  # another working directory: it must not matter
    for manifest in ("data/m.jsonl", str(folder / "m.jsonl"), f"file://{folder}/m.jsonl"):
        got = list(read_manifest(manifest))
        assert got[0].path == str(folder / "videos" / "a.mp4") and got[0].subtitle == str(tmp_path / "subs" / "a.vtt")
        assert got[1].images == (str(folder / "img" / "0.jpg"), "/abs/1.jpg", "https://x.org/2.jpg")
        assert got[2].images == (str(folder / "img" / "3.jpg"),)
        assert (got[3].url, got[3].subtitle) == ("https://x.org/v.mp4", "file:///srv/v.vtt")
        assert got[4].path == "/abs/b.mp4"
        # ids derive from the locations as written: moving the folder keeps them
        assert [g.input_id for g in got] == [parse_row(r, i).input_id for i, r in enumerate(rows)]
    assert next(read_manifest("data/m.jsonl", resolve=False)).path == "videos/a.mp4"


def test_relative_locations_in_an_fsspec_manifest_stay_in_that_file_system():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/sets/m.jsonl", (json.dumps({"path": "../v/a.mp4"}) + "\n"
                                     + json.dumps({"images": ["0.jpg", "sub/1.jpg"]}) + "\n").encode())
    try:
        video, images = read_manifest("memory://bucket/sets/m.jsonl")
    finally:
        fs.rm("/bucket", recursive=True)
    assert video.path == "memory:///bucket/v/a.mp4"
    assert images.images == ("memory:///bucket/sets/0.jpg", "memory:///bucket/sets/sub/1.jpg")


def test_gzip_jsonl_and_ndjson(tmp_path):
    gz = tmp_path / "m.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"url": "https://a/1.mp4"}) + "\n")
    nd = tmp_path / "m.ndjson"
    nd.write_text(json.dumps({"url": "https://a/1.mp4"}) + "\n")
    assert list(read_manifest(gz)) == list(read_manifest(nd)) == [parse_row({"url": "https://a/1.mp4"}, 0)]
    assert list(read_manifest(f"file://{nd}")) == list(read_manifest(nd))


def test_unreadable_manifests_raise_up_front(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="cannot tell its format"):
        read_manifest(tmp_path / "m.txt")
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_manifest(tmp_path / "bad.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="header row is required"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "semi.csv").write_text("url;start\nhttps://a/1.mp4;3\n")
    with pytest.raises(ValueError, match="check the header and the delimiter"):
        read_manifest(tmp_path / "semi.csv")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        read_manifest(tmp_path / "dir.jsonl")
    with pytest.raises(ValueError, match="unknown manifest format"):
        read_manifest(tmp_path / "m.jsonl", fmt="xml")


def test_large_parquet_streams_by_batches(tmp_path):
    n = 100_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({
        "url": [f"https://example.org/v/{i}.mp4" for i in range(n)],
        "end": [float(i % 50 + 1) for i in range(n)],
    }), path, row_group_size=10_000)
    table_bytes = pq.read_table(path).nbytes
    before = pa.total_allocated_bytes()
    outcomes = read_manifest(path, batch_size=1_000)
    first = next(outcomes)
    assert pa.total_allocated_bytes() - before < table_bytes / 2  # one row group, not the file
    started = time.perf_counter()
    count = 1 + sum(isinstance(o, ManifestRow) for o in outcomes)
    assert count == n
    assert first.row_number == 0
    assert time.perf_counter() - started < 60


def test_rows_and_failures_pickle():
    for outcome in (parse_row(GOOD_ROWS[0], 0), parse_row({"url": "x"}, 1)):
        assert pickle.loads(pickle.dumps(outcome)) == outcome


def test_manifest_format():
    assert [manifest_format(p) for p in ("a.JSONL", "a.ndjson", "s3://b/a.csv.gz", "a.parquet")] == [
        "jsonl", "jsonl", "csv", "parquet"]


@given(st.text(min_size=1, max_size=300) | st.sampled_from(["0\n", "a.b", "../x", "é", "-"]))
def test_make_key_is_a_safe_stable_key(text):
    key = make_key(text)
    assert re.fullmatch(KEY_PATTERN, key) and "." not in key and len(key) <= 128
    assert make_key(text) == key and make_key(key) == key


@pytest.mark.parametrize("text", ["ok-key", "a.b", "a_b", "clip 01/ü", "../x", "x" * 200])
def test_one_key_rule_for_input_ids_failure_keys_and_record_keys(text):
    from annotation.normalize import record_key
    from pipelines.ingest.steps import failure_record

    assert parse_row({"id": text, "url": "https://example.org/a.mp4"}, 0).input_id == make_key(text)
    assert failure_record(text, "fetch", "x", "m", "{}")["key"] == f"{make_key(text)}-fetch"
    assert record_key(text, "a1") == f"{make_key(text)}-a1"
    assert (make_key("a.b") != make_key("a_b")) and make_key("ok-key") == "ok-key"


_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(str.strip)
_seconds = st.floats(min_value=0, max_value=1e5, allow_nan=False)


@st.composite
def _valid_rows(draw):
    kind = draw(st.sampled_from(["video", "image_set", "image"]))
    row: dict = {}
    if draw(st.booleans()):
        row["id"] = draw(_names)
    if kind == "video":
        if draw(st.booleans()):
            row["url"] = "https://example.org/" + draw(_names)
        else:
            row["path"] = draw(_names)
        start = draw(_seconds)
        row["start"] = start
        if draw(st.booleans()):
            row["end"] = start + draw(st.floats(min_value=0.001, max_value=1e4))
    elif kind == "image_set":
        row["images"] = draw(st.lists(_names.map(str.strip), min_size=2, max_size=5, unique=True))
    else:
        row["image"], row["group"] = draw(_names), draw(_names)
    if draw(st.booleans()):
        row["split"] = draw(st.sampled_from(["train", "validation", "test"]))
    if draw(st.booleans()):
        row["extra_col"] = draw(_names)
    return row


@settings(max_examples=200, deadline=None)
@given(_valid_rows(), st.integers(min_value=0, max_value=10**6))
def test_to_manifest_dict_reads_back_to_the_same_row(raw, n):
    row = parse_row(raw, n)
    assert isinstance(row, ManifestRow), row
    assert re.fullmatch(KEY_PATTERN, row.input_id)
    assert parse_row(json.loads(json.dumps(row.to_manifest_dict())), n) == row
