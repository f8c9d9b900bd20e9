"""Tests for shards.writer and shards.reader: determinism, validation, atomicity, reading, splitting."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import tarfile
import unicodedata
from pathlib import Path

import pytest
import webdataset as wds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.records import canonical_json
from shards.atomic import is_temp_name
from shards.reader import (
    MalformedShardError,
    ShardChecksumError,
    ShardReadError,
    iter_samples,
    iter_shards,
    split_by_node_and_worker,
)
from shards.writer import (
    DEFAULT_MTIME,
    MEMBER_MODE,
    ShardFile,
    ShardInfo,
    ShardWriter,
    encode_sample,
    file_sha256,
    validate_key,
    write_shard,
)

HSETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def make_samples(n: int = 5) -> list[dict]:
    return [
        {
            "__key__": f"vid{i:03d}/clip_{i:02d}",
            "mp4": bytes([i % 256]) * (100 + 37 * i),
            "json": {"id": i, "caption": f"clip {i} ünïcödé", "points": [[0.5, 0.25]]},
            "txt": f"line {i}",
        }
        for i in range(n)
    ]


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- keys for hypothesis: letters/digits from any script, '_' and '-', '/'-separated parts --------
_part = st.text(
    alphabet=st.one_of(st.characters(categories=("L", "N")), st.sampled_from("_-")), min_size=1, max_size=6
)


def _valid(key: str) -> bool:
    try:
        validate_key(key)
    except ValueError:
        return False
    return True


keys_st = (
    st.lists(_part, min_size=1, max_size=3)
    .map("/".join)
    .map(lambda k: unicodedata.normalize("NFC", k))
    .filter(_valid)
)
samples_st = st.dictionaries(
    keys_st,
    st.fixed_dictionaries(
        {"bin": st.binary(max_size=700)},
        optional={
            "json": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3)
        },
    ),
    min_size=1,
    max_size=8,
).map(lambda d: [{"__key__": k, **v} for k, v in d.items()])


# -- determinism ---------------------------------------------------------------------------------
@HSETTINGS
@given(samples=samples_st, data=st.data())
def test_any_input_order_gives_identical_bytes(tmp_path, samples, data):
    shuffled = data.draw(st.permutations(samples))
    a = write_shard(tmp_path / "a.tar", samples, fsync=False)
    b = write_shard(tmp_path / "b.tar", shuffled, fsync=False)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert a.sha256 == b.sha256 and a.num_bytes == b.num_bytes


def test_shard_writer_and_write_shard_agree(tmp_path):
    samples = make_samples(7)
    info = write_shard(tmp_path / "one.tar", reversed(samples))
    with ShardWriter(str(tmp_path / "many-%03d.tar")) as sink:
        for s in samples:
            sink.write(s)
    (only,) = sink.shards
    assert only.sha256 == info.sha256


def test_golden_sha256(tmp_path):
    """Pins the byte layout: a change in tarfile or in the writer that alters bytes fails here."""
    samples = [
        {"__key__": "b", "txt": "hi", "json": {"z": 1, "a": "é"}},
        {"__key__": "a/ü", "bin": b"\x00" * 700},
    ]
    info = write_shard(tmp_path / "g.tar", samples)
    assert info.sha256 == "d65ea8e095235ac0627f9f835792062cdaf1f28eb0b9d724628ec8a47bd2c32a"
    assert info.num_bytes == 10240


def test_same_bytes_as_webdataset_tarwriter(tmp_path):
    samples = make_samples(6) + [{"__key__": "ключ/é" + "x" * 120, "bin": b"long non-ascii name"}]
    info = write_shard(tmp_path / "ours.tar", samples)
    buf = io.BytesIO()
    with wds.TarWriter(buf, user="", group="", mtime=0, encoder=False) as tw:
        for key, members in sorted(encode_sample(s) for s in samples):
            tw.write({"__key__": key, **dict(members)})
    assert buf.getvalue() == (tmp_path / "ours.tar").read_bytes()
    assert hashlib.sha256(buf.getvalue()).hexdigest() == info.sha256


# -- readable by others ---------------------------------------------------------------------------
def test_tarfile_sees_sorted_members_and_fixed_metadata(tmp_path):
    samples = make_samples(4) + [{"__key__": "Zürich_ß", "txt": "x"}]
    write_shard(tmp_path / "s.tar", list(reversed(samples)))
    with tarfile.open(tmp_path / "s.tar") as tar:
        members = tar.getmembers()
    expected = sorted((s["__key__"], ext) for s in samples for ext in s if ext != "__key__")
    assert [m.name for m in members] == [f"{k}.{e}" for k, e in expected]
    for m in members:
        assert m.isreg()
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (DEFAULT_MTIME, 0, 0, "", "", MEMBER_MODE)
    assert members[0].pax_headers == {"path": "Zürich_ß.txt"}  # a PAX header carries the UTF-8 name
    assert all(m.pax_headers == {} for m in members[1:])  # ASCII names: plain ustar headers


def test_webdataset_reads_our_shards(tmp_path):
    samples = make_samples(5) + [{"__key__": "日本語/キー", "json": {"k": "v"}}]
    with ShardWriter(str(tmp_path / "p-%02d.tar"), max_samples=2) as sink:
        for s in sorted(samples, key=lambda s: s["__key__"]):
            sink.write(s)
    urls = [i.path for i in sink.shards]
    got = list(wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None))
    assert [g["__key__"] for g in got] == sorted(s["__key__"] for s in samples)
    by_key = {s["__key__"]: s for s in samples}
    for g in got:
        want = dict(encode_sample(by_key[g["__key__"]])[1])
        assert {k: v for k, v in g.items() if not k.startswith("__")} == want


def test_mtime_is_configurable(tmp_path):
    write_shard(tmp_path / "m.tar", make_samples(1), mtime=1_700_000_000)
    with tarfile.open(tmp_path / "m.tar") as tar:
        assert {m.mtime for m in tar} == {1_700_000_000}
    with pytest.raises(ValueError, match="mtime"):
        write_shard(tmp_path / "bad.tar", make_samples(1), mtime=1.5)


# -- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, rule",
    [
        ("a.b", "must not contain '.'"),
        ("..", "'..'"),
        ("a/../b", "'..'"),
        ("../x", "'..'"),
        ("/x", "absolute"),
        ("/abs/path", "absolute"),
        ("", "empty"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("a\x00b", "control character"),
        ("tab\there", "control character"),
        ("__url__", "reserved"),
        (unicodedata.normalize("NFD", "é"), "NFC"),
        (5, "must be a str"),
    ],
)
def test_bad_keys_rejected(tmp_path, key, rule):
    with pytest.raises(ValueError, match=rule) as err:
        write_shard(tmp_path / "x.tar", [{"__key__": key, "txt": "x"}])
    if isinstance(key, str) and key:
        assert repr(key) in str(err.value)
    assert names_in(tmp_path) == []


@pytest.mark.parametrize("ext", ["", "a/b", "JSON", "_meta", ".json", "json.", "mp 4"])
def test_bad_extensions_rejected(tmp_path, ext):
    with pytest.raises(ValueError, match="extension"):
        write_shard(tmp_path / "x.tar", [{"__key__": "k", ext: b"x"}])


def test_duplicate_keys_rejected(tmp_path):
    samples = make_samples(3) + [make_samples(3)[1]]
    with pytest.raises(ValueError, match="duplicate key") as err:
        write_shard(tmp_path / "d.tar", samples)
    assert "vid001/clip_01" in str(err.value)
    assert names_in(tmp_path) == []


def test_value_encoding_rules():
    key, members = encode_sample(
        {"__key__": "k", "json": {"b": [1, 2], "a": "ü"}, "seg.json": [1], "__url__": "meta"}
    )
    assert members == [("json", '{"a":"ü","b":[1,2]}'.encode()), ("seg.json", b"[1]")]
    assert members[0][1] == canonical_json({"a": "ü", "b": [1, 2]}).encode()  # the one canonical JSON
    with pytest.raises(TypeError, match="needs extension 'json'"):
        encode_sample({"__key__": "k", "txt": {"a": 1}})
    with pytest.raises(TypeError, match="int"):
        encode_sample({"__key__": "k", "bin": 3})
    with pytest.raises(ValueError):
        encode_sample({"__key__": "k", "json": {"x": float("nan")}})
    with pytest.raises(ValueError, match="no member"):
        encode_sample({"__key__": "k", "__url__": "only metadata"})
    with pytest.raises(ValueError, match="__key__"):
        encode_sample({"txt": "no key"})


# -- atomicity and empty shards -------------------------------------------------------------------
def test_no_samples_writes_nothing(tmp_path):
    assert write_shard(tmp_path / "e.tar", []) is None
    with ShardWriter(str(tmp_path / "e-%d.tar")) as sink:
        pass
    assert sink.close() == []
    assert names_in(tmp_path) == []


def test_exception_inside_with_leaves_no_final_or_temp_file(tmp_path):
    done = []
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(str(tmp_path / "x-%d.tar"), max_samples=2, on_shard_done=done.append) as sink:
            for s in make_samples(3):
                sink.write(s)
            raise RuntimeError("boom")
    # the first shard (2 samples) was complete and committed; the open one is gone without a trace
    assert names_in(tmp_path) == ["x-0.tar"]
    assert [d.path for d in done] == [str(tmp_path / "x-0.tar")]
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(make_samples(4)[3])


def test_failing_sample_stream_leaves_nothing(tmp_path):
    def samples():
        yield from make_samples(2)
        raise OSError("download failed")

    with pytest.raises(OSError):
        write_shard(tmp_path / "f.tar", samples())
    assert names_in(tmp_path) == []


def test_rejected_sample_does_not_poison_the_writer(tmp_path):
    with ShardWriter(str(tmp_path / "r-%d.tar")) as sink:
        sink.write({"__key__": "a", "txt": "ok"})
        with pytest.raises(ValueError):
            sink.write({"__key__": "b.c", "txt": "bad key"})
        sink.write({"__key__": "b", "txt": "ok"})
    assert sink.shards[0].num_samples == 2


def test_temp_file_lives_next_to_the_final_name(tmp_path):
    seen = []
    with ShardWriter(str(tmp_path / "t-%d.tar")) as sink:
        sink.write(make_samples(1)[0])
        seen = names_in(tmp_path)
    (tmp,) = seen
    assert is_temp_name(tmp) and tmp.startswith(f".t-0.tar.tmp-{os.getpid()}-")
    assert names_in(tmp_path) == ["t-0.tar"]


def test_shard_file_streams_one_shard_in_key_order(tmp_path):
    samples = make_samples(6)
    with ShardFile(tmp_path / "one.tar", fsync=False) as shard:
        for s in samples:
            shard.write(s)
        assert shard.num_samples == 6
    ref = write_shard(tmp_path / "ref.tar", reversed(samples), fsync=False)
    assert shard.info == ShardInfo(**{**ref.to_dict(), "path": str(tmp_path / "one.tar")})
    with ShardFile(tmp_path / "empty.tar") as empty:
        pass
    assert empty.info is None and not (tmp_path / "empty.tar").exists()
    with pytest.raises(ValueError, match="strictly increasing"):
        with ShardFile(tmp_path / "bad.tar") as bad:
            bad.write(samples[1])
            bad.write(samples[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.tar", "ref.tar"]


# -- rollover, ordering, hooks --------------------------------------------------------------------
def test_rollover_by_max_samples(tmp_path):
    samples = make_samples(10)
    with ShardWriter(str(tmp_path / "s-%04d.tar"), max_samples=3, start_index=5) as sink:
        for s in samples:
            sink.write(s)
    infos = sink.close()
    assert [i.num_samples for i in infos] == [3, 3, 3, 1]
    assert names_in(tmp_path) == ["s-0005.tar", "s-0006.tar", "s-0007.tar", "s-0008.tar"]
    assert [i.first_key for i in infos] == [samples[j]["__key__"] for j in (0, 3, 6, 9)]
    keys = [s["__key__"] for s in iter_samples([i.path for i in infos])]
    assert keys == [s["__key__"] for s in samples]


def test_rollover_by_max_bytes(tmp_path):
    samples = [{"__key__": f"k{i:02d}", "bin": os.urandom(3000)} for i in range(12)]
    samples.insert(5, {"__key__": "k04z", "bin": os.urandom(40_000)})  # alone bigger than the limit
    max_bytes = 20_480
    with ShardWriter(str(tmp_path / "b-%d.tar"), max_bytes=max_bytes) as sink:
        for s in samples:
            sink.write(s)
    infos = sink.shards
    assert len(infos) > 2
    assert sum(i.num_samples for i in infos) == len(samples)
    for info in infos:
        assert info.num_bytes == os.path.getsize(info.path)
        assert info.num_bytes <= max_bytes or info.num_samples == 1
    assert any(i.num_bytes > max_bytes and i.first_key == "k04z" for i in infos)
    # filled greedily: adding the next sample's bytes would have crossed the limit
    assert infos[0].num_samples == 5


@pytest.mark.parametrize("second", ["a", "Z", "0"])
def test_out_of_order_key_raises(tmp_path, second):
    with ShardWriter(str(tmp_path / "o-%d.tar")) as sink:
        sink.write({"__key__": "a", "txt": "1"})
        with pytest.raises(ValueError, match="strictly increasing") as err:
            sink.write({"__key__": second, "txt": "2"})
        assert repr(second) in str(err.value) and "'a'" in str(err.value)


def test_hook_runs_after_rename_for_every_shard(tmp_path):
    def mark_done(info: ShardInfo) -> None:
        assert os.path.exists(info.path) and file_sha256(info.path) == info.sha256
        Path(info.path + ".done.json").write_text(info.to_json())

    with ShardWriter(str(tmp_path / "h-%d.tar"), max_samples=2, on_shard_done=mark_done) as sink:
        for s in make_samples(5):
            sink.write(s)
    assert names_in(tmp_path) == [f"h-{i}.tar{suffix}" for i in range(3) for suffix in ("", ".done.json")]
    for info in sink.shards:
        assert ShardInfo.from_json(Path(info.path + ".done.json").read_text()) == info
    single = []
    write_shard(tmp_path / "w.tar", make_samples(1), on_shard_done=single.append)
    assert len(single) == 1


def test_bad_pattern_and_limits(tmp_path):
    with pytest.raises(ValueError, match="pattern"):
        ShardWriter(str(tmp_path / "no-field.tar"))
    with pytest.raises(ValueError, match="max_samples"):
        ShardWriter(str(tmp_path / "x-%d.tar"), max_samples=0)


# -- checksums -------------------------------------------------------------------------------------
def test_returned_sha256_and_size_match_the_file(tmp_path):
    info = write_shard(tmp_path / "c.tar", make_samples(8))
    data = (tmp_path / "c.tar").read_bytes()
    assert info.sha256 == hashlib.sha256(data).hexdigest() == file_sha256(tmp_path / "c.tar")
    assert info.num_bytes == len(data) and len(data) % tarfile.RECORDSIZE == 0
    assert (info.num_samples, info.path) == (8, str(tmp_path / "c.tar"))
    assert json.loads(info.to_json())["sha256"] == info.sha256


def test_reader_verifies_sha256(tmp_path):
    info = write_shard(tmp_path / "v.tar", make_samples(3))
    assert len(list(iter_samples(info.path, expected_sha256=info.sha256))) == 3
    assert len(list(iter_samples([info.path], expected_sha256={info.path: info.sha256}))) == 3
    wrong = "0" * 64
    it = iter_samples(info.path, expected_sha256=wrong)
    assert [next(it)["__key__"], next(it)["__key__"]] == ["vid000/clip_00", "vid001/clip_01"]
    with pytest.raises(ShardChecksumError, match=wrong):
        next(it)  # raised in place of the last sample: the file was read once, hashed as it streamed


def test_flipped_byte_is_caught_while_streaming(tmp_path):
    info = write_shard(tmp_path / "f.tar", make_samples(3))
    data = bytearray(Path(info.path).read_bytes())
    data[512 + 3] ^= 0x01  # inside the first member's data: the tar stays well-formed
    (tmp_path / "f.tar").write_bytes(bytes(data))
    assert len(list(iter_samples(info.path))) == 3  # no expected sha256: structure only
    with pytest.raises(ShardChecksumError, match="f.tar"):
        list(iter_samples(info.path, expected_sha256=info.sha256))


def test_iter_shards_confirms_each_shard_before_its_end(tmp_path):
    paths = [write_shard(tmp_path / f"s{i}.tar", make_samples(2 + i)) for i in range(3)]
    sums = {i.path: i.sha256 for i in paths}
    committed = []
    for shard in iter_shards([i.path for i in paths], expected_sha256=sums):
        staged = [s["__key__"] for s in shard]
        assert shard.verified and shard.sha256 == sums[shard.path]
        committed.append((Path(shard.path).name, len(staged)))
    assert committed == [("s0.tar", 2), ("s1.tar", 3), ("s2.tar", 4)]
    # a bad middle shard: with skip, its staged work is dropped and the others go through
    bad = dict(sums, **{paths[1].path: "f" * 64})
    counts: collections.Counter[str] = collections.Counter()
    kept = []
    for shard in iter_shards([i.path for i in paths], expected_sha256=bad, on_error="skip",
                             error_counts=counts, max_skip_fraction=0.5):
        staged = list(shard)
        if shard.verified:
            kept.append(Path(shard.path).name)
        else:
            assert isinstance(shard.error, ShardChecksumError) and len(staged) == 2  # all but the last
    assert kept == ["s0.tar", "s2.tar"] and counts == {"ShardChecksumError": 1}
    # without an expected sha256 nothing is verified, but the sha256 is known at the end
    (shard,) = iter_shards(paths[0].path)
    assert len(list(shard)) == 2 and not shard.verified and shard.sha256 == paths[0].sha256


def _tar_with(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            ti = tarfile.TarInfo(name)
            ti.size = 1
            tar.addfile(ti, io.BytesIO(b"x"))
    return buf.getvalue()


@pytest.mark.parametrize("name, words", [
    ("../x.txt", "'..'"),
    ("/x.txt", "absolute"),
    ("a/../../etc/passwd.txt", "'..'"),
    ("ok/" + "d" * 120 + "/../x.txt", "'..'"),  # long: the name travels in a PAX header
    ("a.TXT", "lowercase"),
    ("__key__.txt", "reserved"),
    ("a//b.txt", "empty path component"),
    ("noext", "key.ext"),
])
def test_reader_refuses_names_the_writer_refuses(tmp_path, name, words):
    path = tmp_path / "evil.tar"
    path.write_bytes(_tar_with(["fine.txt", name]))
    with pytest.raises(MalformedShardError, match=words) as err:
        list(iter_samples(path))
    assert str(path) in str(err.value) and repr(name) in str(err.value)


def test_reader_and_writer_through_fsspec(tmp_path):
    import fsspec

    samples = make_samples(4)
    mem = write_shard("memory://shards-test/m.tar", samples)
    local = write_shard(tmp_path / "l.tar", samples)
    assert mem.sha256 == local.sha256 and mem.path == "memory://shards-test/m.tar"
    got = list(iter_samples(mem.path, expected_sha256=mem.sha256, decode_json=True))
    assert [g["__key__"] for g in got] == [s["__key__"] for s in samples] and got[0]["__url__"] == mem.path
    fs = fsspec.filesystem("memory")
    assert [p.rpartition("/")[2] for p in fs.ls("/shards-test", detail=False)] == ["m.tar"]  # no temp left
    url = f"file://{tmp_path / 'l.tar'}"
    assert len(list(iter_samples(url, expected_sha256=local.sha256))) == 4
    with ShardWriter("memory://shards-test/r-%d.tar", max_samples=3) as sink:
        for s in samples:
            sink.write(s)
    assert [i.num_samples for i in sink.shards] == [3, 1]
    assert file_sha256(sink.shards[0].path) == sink.shards[0].sha256
    fs.rm("/shards-test", recursive=True)


# -- reader ----------------------------------------------------------------------------------------
@HSETTINGS
@given(samples=samples_st)
def test_round_trip_non_ascii_keys(tmp_path, samples):
    info = write_shard(tmp_path / "rt.tar", samples, fsync=False)
    got = list(iter_samples(info.path, decode_json=True))
    assert [g["__key__"] for g in got] == sorted(s["__key__"] for s in samples)
    by_key = {s["__key__"]: s for s in samples}
    for g in got:
        want = by_key[g["__key__"]]
        assert {k: v for k, v in g.items() if k != "__url__"} == want
    # a sample read back (with its __url__ metadata) writes the same bytes again
    again = write_shard(tmp_path / "again.tar", iter_samples(info.path), fsync=False)
    assert again.sha256 == info.sha256


def test_reader_default_is_bytes(tmp_path):
    write_shard(tmp_path / "b.tar", make_samples(1))
    (s,) = iter_samples(tmp_path / "b.tar")
    assert isinstance(s["json"], bytes) and s["__url__"] == str(tmp_path / "b.tar")


def _corruptions(data: bytes) -> dict[str, bytes]:
    second_header = 512 + 512  # first member: vid000/clip_00.json, one header + one data block
    broken = bytearray(data)
    broken[second_header + 148 : second_header + 156] = b"9999999\0"  # bad checksum field
    return {
        "empty": b"",
        "garbage": b"not a tar at all" * 100,
        "cut mid data": data[: second_header + 512 + 50],  # inside the .mp4 data
        "cut at a header boundary": data[:second_header],
        "corrupt second header": bytes(broken),
        "trailing data": data + b"extra",
    }


@pytest.mark.parametrize("case", list(_corruptions(b"\0" * 20480)))
def test_malformed_shards_raise(tmp_path, case):
    info = write_shard(tmp_path / "ok.tar", make_samples(3))
    bad = tmp_path / "bad.tar"
    bad.write_bytes(_corruptions(Path(info.path).read_bytes())[case])
    with pytest.raises(MalformedShardError, match="bad.tar"):
        list(iter_samples(bad))


def test_non_contiguous_key_raises(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("a.txt", "b.txt", "a.json"):
            ti = tarfile.TarInfo(name)
            ti.size = 1
            tar.addfile(ti, io.BytesIO(b"x"))
    (tmp_path / "n.tar").write_bytes(buf.getvalue())
    with pytest.raises(MalformedShardError, match="not contiguous"):
        list(iter_samples(tmp_path / "n.tar"))


def test_skipping_is_explicit_counted_and_bounded(tmp_path):
    good = [write_shard(tmp_path / f"g{i}.tar", make_samples(2)).path for i in range(3)]
    (tmp_path / "bad.tar").write_bytes(b"garbage" * 200)
    paths = good[:2] + [str(tmp_path / "bad.tar")] + good[2:]
    with pytest.raises(MalformedShardError):
        list(iter_samples(paths))
    with pytest.raises(ValueError, match="error_counts"):
        list(iter_samples(paths, on_error="skip"))
    counts: collections.Counter[str] = collections.Counter()
    got = list(iter_samples(paths, on_error="skip", error_counts=counts, max_skip_fraction=0.25))
    assert len(got) == 6 and counts == {"MalformedShardError": 1}
    with pytest.raises(ShardReadError, match="max_skip_fraction"):
        list(iter_samples(paths, on_error="skip", error_counts=collections.Counter(), max_skip_fraction=0.1))


# -- splitting ---------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(n_shards=st.integers(0, 60), world_size=st.integers(1, 9), num_workers=st.integers(1, 9))
def test_split_assigns_every_shard_exactly_once(n_shards, world_size, num_workers):
    shards = [f"s-{i:05d}.tar" for i in range(n_shards)]
    assigned = [
        s
        for rank in range(world_size)
        for worker in range(num_workers)
        for s in split_by_node_and_worker(shards, rank, world_size, worker, num_workers)
    ]
    assert sorted(assigned) == shards
    counts = [
        len(split_by_node_and_worker(shards, r, world_size, w, num_workers))
        for r in range(world_size)
        for w in range(num_workers)
    ]
    assert max(counts) - min(counts) <= 1  # balanced
    assert split_by_node_and_worker(shards, 0, world_size, 0, num_workers) == split_by_node_and_worker(
        list(shards), rank=0, world_size=world_size, worker_id=0, num_workers=num_workers
    )


@pytest.mark.parametrize(
    "args",
    [(0, 0, 0, 1), (2, 2, 0, 1), (-1, 2, 0, 1), (0, 1, 1, 1), (0, 1, 0, 0), (0, 1, True, 2), (0.0, 1, 0, 1)],
)
def test_split_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        split_by_node_and_worker(["a", "b"], *args)


def test_split_rejects_duplicate_shards():
    with pytest.raises(ValueError, match="twice"):
        split_by_node_and_worker(["a", "b", "a"], 0, 1, 0, 1)
