"""Tests for shards.commit (done marker, fingerprint, reuse on resume, per-shard table),
shards.atomic (one temporary-name scheme, one sweep) and shards.tables, on local folders and memory://."""
from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from shards.atomic import (
    atomic_dir, atomic_open, atomic_path, is_temp_name, move_into_place, scratch_dir, sweep, temp_name, write_bytes,
    write_json,
)
from shards.commit import ShardSlot, commit_shard, committed, fingerprint, remove_stale
from shards.reader import iter_samples
from shards.tables import concat_tables, write_table


def _records(n: int, tag: str = "") -> list[dict]:
    return [{"key": f"k{i:02d}", "input_id": f"in{i}{tag}", "stage": "decode", "error_type": "x",
             "message": f"m{i}", "input": "{}", "outcome": "failed", "duplicate_of": None, "schema_version": 1}
            for i in range(n)]


def _samples(records: list[dict]):
    return ({"__key__": r["key"], "json": r, "bin": r["key"].encode() * 100} for r in records)


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "out")
    else:
        url = f"memory://commit-{uuid.uuid4().hex}"
        yield url
        fsspec.filesystem("memory").rm(url.removeprefix("memory:/"), recursive=True)


def _names(root: str, folder: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(root)
    return sorted(p.rstrip("/").rpartition("/")[2] for p in fs.ls(f"{path}/{folder}", detail=False))


def _read(root: str, rel: str) -> bytes:
    fs, path = fsspec.core.url_to_fs(root)
    return fs.cat_file(f"{path}/{rel}")


# -- the commit protocol -----------------------------------------------------------------------------
def test_commit_writes_tar_table_and_marker_last(root):
    records = _records(3)
    slot = ShardSlot.numbered(root, "failures", 7)
    fp = fingerprint((r["key"], r) for r in records)
    status = commit_shard(slot, _samples(records), content_fingerprint=fp, table=("failure", records),
                          extra={"num_members": 6})
    assert _names(root, "failures") == ["failures-000007.parquet", "failures-000007.tar",
                                        "failures-000007.tar.done.json"]
    marker = _read(root, "failures/failures-000007.tar.done.json")
    assert marker == json.dumps(status, sort_keys=True).encode()  # the bytes ingest has always written
    assert status["shard"] == "failures/failures-000007.tar" and status["table"] == "failures/failures-000007.parquet"
    assert (status["num_samples"], status["first_key"], status["last_key"], status["num_members"]) == (3, "k00", "k02", 6)
    got = list(iter_samples(slot.path(slot.tar), expected_sha256=status["sha256"], decode_json=True))
    assert [g["json"] for g in got] == records
    fs, _ = fsspec.core.url_to_fs(root)
    with fs.open(slot.path(slot.table), "rb") as f:
        assert pq.read_table(f).to_pylist() == records
    assert committed(slot, fp) == status


def test_reuse_needs_same_content_and_intact_files(root):
    records = _records(2)
    slot = ShardSlot.numbered(root, "clips", 0)
    fp = fingerprint((r["key"], r) for r in records)
    status = commit_shard(slot, _samples(records), content_fingerprint=fp, table=("failure", records))
    assert committed(slot, fp) == status
    assert committed(slot, fingerprint((r["key"], r) for r in _records(2, "other"))) is None  # other content
    assert committed(ShardSlot.numbered(root, "clips", 1), fp) is None  # nothing there
    fs, _ = fsspec.core.url_to_fs(root)
    table = slot.path(slot.table)
    good = fs.cat_file(table)
    fs.pipe_file(table, good[:-1] + bytes([good[-1] ^ 1]))  # a damaged table
    assert committed(slot, fp) is None
    fs.pipe_file(table, good)
    assert committed(slot, fp) == status
    assert committed(slot, fp, table=True) == status
    fs.rm(slot.path(slot.done))  # killed between the table and the marker: not committed
    assert committed(slot, fp) is None


def test_fingerprint_is_order_free_and_content_bound():
    a = _records(3)
    assert fingerprint((r["key"], r) for r in a) == fingerprint((r["key"], r) for r in reversed(a))
    b = [dict(r) for r in a]
    b[1]["message"] = "changed"
    assert fingerprint((r["key"], r) for r in a) != fingerprint((r["key"], r) for r in b)


def test_failed_commit_leaves_no_marker_and_no_temp(root):
    records = _records(3)
    slot = ShardSlot.numbered(root, "clips", 0)
    fp = fingerprint((r["key"], r) for r in records)
    commit_shard(slot, _samples(records), content_fingerprint=fp, table=("failure", records))

    def broken():
        yield from _samples(records[:2])
        raise OSError("frame file vanished")

    with pytest.raises(OSError, match="vanished"):
        commit_shard(slot, broken(), content_fingerprint="new", table=("failure", records))
    names = _names(root, "clips")
    assert "clips-000000.tar.done.json" not in names  # the old marker went first
    assert not [n for n in names if is_temp_name(n)]
    assert committed(slot, fp) is None
    with pytest.raises(ValueError, match="at least one sample"):
        commit_shard(slot, iter(()), content_fingerprint="empty")
    with pytest.raises(ValueError, match="overwrite"):
        commit_shard(slot, _samples(records), content_fingerprint=fp, extra={"sha256": "x"})


def test_remove_stale_drops_slots_of_a_larger_earlier_run(root):
    for i in range(3):
        records = _records(1, str(i))
        commit_shard(ShardSlot.numbered(root, "clips", i), _samples(records),
                     content_fingerprint=str(i), table=("failure", records))
    removed = remove_stale(root, "clips", "clips", {"clips/clips-000000.tar", "clips/clips-000002.tar"})
    assert removed == ["clips/clips-000001.tar"]
    assert [n for n in _names(root, "clips") if "000001" in n] == []
    assert len(_names(root, "clips")) == 6


# -- atomic writes -----------------------------------------------------------------------------------
def test_one_temp_name_scheme():
    name = temp_name("clips.parquet")
    assert name.startswith(f".clips.parquet.tmp-{os.getpid()}-") and is_temp_name(name)
    assert temp_name("x") != temp_name("x")  # two threads of one process never share one
    for other in ("clips.parquet", ".hidden", ".x.tmp", "x.tmp-1-abcdef12", ".x.tmp-12", ".x.partial"):
        assert not is_temp_name(other), other


def test_atomic_writes_leave_the_old_file_on_error(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json(path, {"b": 1, "a": [1]}, indent=1, newline=True)
    assert path.read_text() == '{\n "a": [\n  1\n ],\n "b": 1\n}\n'
    with pytest.raises(RuntimeError):
        with atomic_open(path, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"a": [1], "b": 1}
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]
    write_bytes(tmp_path / "secret", b"token", private=True)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_atomic_dir_keeps_the_first_complete_folder(tmp_path):
    final = tmp_path / "frames" / "clip"
    with atomic_dir(final) as tmp:
        Path(tmp, "000.jpg").write_bytes(b"first")
    with atomic_dir(final) as tmp:  # another worker, same content: its copy is dropped
        Path(tmp, "000.jpg").write_bytes(b"second")
    assert (final / "000.jpg").read_bytes() == b"first"
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "frames" / "other") as tmp:
            raise RuntimeError("decoder died")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["clip"]


def test_sweep_removes_exactly_the_scheme(tmp_path):
    keep = ["a.tar", ".hidden", "b.tmp", ".c.tar.tmp"]
    for name in keep:
        (tmp_path / name).write_text("x")
    leftovers = [temp_name("a.tar"), temp_name("clips.parquet")]
    for name in leftovers:
        (tmp_path / name).write_text("half")
    (tmp_path / temp_name("clipdir")).mkdir()
    removed = sweep(tmp_path)
    assert len(removed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert sweep(tmp_path / "missing") == []


def test_sweep_and_writes_through_memory_fs():
    url = f"memory://sweep-{uuid.uuid4().hex}"
    write_bytes(f"{url}/x.bin", b"1")
    fs = fsspec.filesystem("memory")
    base = url.removeprefix("memory:/")
    fs.pipe_file(f"{base}/{temp_name('y.bin')}", b"half")
    assert len(sweep(url)) == 1
    assert [p.rpartition("/")[2] for p in fs.ls(base, detail=False)] == ["x.bin"]
    fs.rm(base, recursive=True)


# -- tables ------------------------------------------------------------------------------------------
def test_tables_from_records_and_parts_are_byte_stable(tmp_path):
    a, b = _records(2), _records(3, "b")[2:]
    sha = write_table(tmp_path / "p0.parquet", "failure", a)
    write_table(tmp_path / "p1.parquet", "failure", b)
    import hashlib

    assert sha == hashlib.sha256((tmp_path / "p0.parquet").read_bytes()).hexdigest()
    concat_tables(tmp_path / "all.parquet", "failure", [tmp_path / "p0.parquet", tmp_path / "p1.parquet"])
    assert pq.read_table(tmp_path / "all.parquet").to_pylist() == a + b
    concat_tables("memory://tables-test/all.parquet", "failure",
                  [str(tmp_path / "p0.parquet"), str(tmp_path / "p1.parquet")])
    fs = fsspec.filesystem("memory")
    assert fs.cat_file("/tables-test/all.parquet") == (tmp_path / "all.parquet").read_bytes()
    fs.rm("/tables-test", recursive=True)
    concat_tables(tmp_path / "empty.parquet", "failure", [])
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_scratch_dir_and_move_into_place(tmp_path):
    with scratch_dir(tmp_path / ".tmp", "fetch") as work:
        assert is_temp_name(Path(work).name)
        Path(work, "media.mp4").write_bytes(b"video")
        move_into_place(Path(work, "media.mp4"), tmp_path / "ab" / "abc.mp4")
    assert (tmp_path / "ab" / "abc.mp4").read_bytes() == b"video"
    assert list((tmp_path / ".tmp").iterdir()) == []  # the working folder went with the block
    src = tmp_path / "x.bin"
    src.write_bytes(b"1")
    url = f"memory://move-{uuid.uuid4().hex}"
    move_into_place(src, f"{url}/x.bin")
    fs = fsspec.filesystem("memory")
    assert fs.cat_file(f"{url}/x.bin") == b"1"
    fs.rm(url.removeprefix("memory:/"), recursive=True)


def test_atomic_dir_replace_swaps_an_outdated_folder_or_keeps_it_on_failure(tmp_path, monkeypatch):
    final = tmp_path / "project"
    with atomic_dir(final) as tmp:
        Path(tmp, "a.parquet").write_text("old")
    with atomic_dir(final, replace=True) as tmp:
        Path(tmp, "a.parquet").write_text("new")
    assert [p.read_text() for p in final.iterdir()] == ["new"]
    real_rename, failed = os.rename, []

    def rename(src, dst):  # the swap fails once (e.g. a disk error) after the old folder was moved aside
        if is_temp_name(Path(src).name) and Path(dst) == final and not failed:
            failed.append(src)
            raise OSError(5, "I/O error")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="I/O"):
        with atomic_dir(final, replace=True) as tmp:
            Path(tmp, "a.parquet").write_text("newer")
    assert [p.read_text() for p in final.iterdir()] == ["new"]  # the previous folder is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_sweep_by_name_and_only_dead_writers(tmp_path):
    live = tmp_path / temp_name("A")  # this process: alive
    dead = tmp_path / ".A.tmp-999999999-0123abcd"
    other = tmp_path / ".B.tmp-999999999-0123abcd"
    for p in (live, dead, other):
        p.mkdir()
    assert sweep(tmp_path, name="A", only_dead=True) == [str(dead)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    assert sweep(tmp_path, name="A") == [str(live)]
    assert sweep(tmp_path) == [str(other)]
