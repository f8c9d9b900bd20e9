"""Reading a published version: equal samples per rank, resume, random access, verify, datasets.

A version of 7 training samples (in fewer shards than 2 ranks x 2 workers) and 2 validation
samples, with frame counts from 2 to 13 so that the sample with the most frames comes last.
"""
from __future__ import annotations

import collections
import io
import json
import tarfile
from pathlib import Path

import pytest

from pipelines.publish.config import PublishConfig
from pipelines.publish.version import publish
from shards.dataset import PublishedSplit, open_dataset, plan_positions
from shards.index import index_shard, parse_span
from shards.published import VersionNotFound, list_versions, read_manifest, verify_version
from shards.reader import MalformedShardError, ShardChecksumError
from tests.publish_inputs import ClipSpec, make_ingest, video_point, write_records

DURATIONS = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 6.0]  # 2 .. 13 frames; the longest clip sorts last
CLIPS = [ClipSpec(f"c{i}", f"v{i}", duration=d) for i, d in enumerate(DURATIONS)]
VALID = [ClipSpec(f"val{i}", f"w{i}", duration=1.0 + i, split="validation") for i in range(2)]


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    base = tmp_path_factory.mktemp("reading")
    ingest = make_ingest(base / "ingest", CLIPS + VALID)
    records = write_records(base / "records", {"VideoPoint": [video_point(f"vp_{c.key}", c, [0.0]) for c in CLIPS + VALID]})
    root = str(base / "root")
    result = publish(root, [str(ingest)], [str(records)], PublishConfig(version="1.0.0", shard_max_bytes=1 << 16))
    manifest = result.published["VideoPoint"]
    assert manifest["splits"]["train"]["samples"] == 7
    return {"root": root, "dir": Path(root) / "VideoPoint" / "1.0.0", "manifest": manifest}


def _reads(root, remainder, world_size=2, num_workers=2, **kw):
    per_rank = {}
    for rank in range(world_size):
        keys = []
        for worker in range(num_workers):
            pipe = open_dataset(root, "VideoPoint", "1.0.0", "train", rank=rank, world_size=world_size,
                                num_workers=num_workers, worker_id=worker, remainder=remainder, **kw)
            keys += [s["__key__"] for s in pipe]
        per_rank[rank] = keys
    return per_rank


def test_seven_samples_two_workers_two_ranks_equal_counts(version):
    shards = [s for s in version["manifest"]["shards"] if s["split"] == "train"]
    assert len(shards) < 2 * 2  # fewer shards than ranks x workers: whole-shard dealing would starve some
    everything = [f"c{i}" for i in range(7)]
    padded = _reads(version["root"], "pad")
    assert [len(v) for v in padded.values()] == [4, 4]
    counts = collections.Counter(k for keys in padded.values() for k in keys)
    assert set(counts) == set(everything)  # every sample at least once
    assert sum(n - 1 for n in counts.values()) == 2 * 4 - 7  # none twice beyond the padding
    dropped = _reads(version["root"], "drop")
    assert [len(v) for v in dropped.values()] == [3, 3]
    assert len(set(k for keys in dropped.values() for k in keys)) == 6  # one left out, none repeated
    for rank in range(2):
        pipe = open_dataset(version["root"], "VideoPoint", "1.0.0", "train", rank=rank, world_size=2, num_workers=2)
        assert len(pipe) == 4


def test_plan_positions_rules():
    assert plan_positions(7, rank=1, world_size=2) == [4, 5, 6, 0]
    assert plan_positions(7, rank=1, world_size=2, remainder="drop") == [3, 4, 5]
    assert plan_positions(2, rank=2, world_size=3) == [0]  # fewer samples than ranks: still one each
    assert plan_positions(7, rank=0, world_size=1, worker_id=1, num_workers=2, batch_size=2) == [2, 3, 6]
    with pytest.raises(ValueError, match="rank"):
        plan_positions(7, rank=2, world_size=2)
    with pytest.raises(ValueError, match="remainder"):
        plan_positions(7, rank=0, world_size=1, remainder="wrap")
    a = plan_positions(100, rank=0, world_size=1, shuffle_seed=3, epoch=1)
    assert sorted(a) == list(range(100)) and a != list(range(100))
    assert a == plan_positions(100, rank=0, world_size=1, shuffle_seed=3, epoch=1)
    assert a != plan_positions(100, rank=0, world_size=1, shuffle_seed=3, epoch=2)


def test_dataloader_workers_give_the_rank_order_and_resume_from_start(version):
    import torch

    def loader(start=0):
        pipe = open_dataset(version["root"], "VideoPoint", "1.0.0", "train", rank=0, world_size=1, num_workers=2,
                            batch_size=2, start=start)
        batches = torch.utils.data.DataLoader(pipe, num_workers=2, batch_size=2, collate_fn=lambda b: b)
        return [s["__key__"] for batch in batches for s in batch]

    order = PublishedSplit(version["root"], "VideoPoint", "1.0.0", "train").keys()  # the split's position order
    assert sorted(order) == [f"c{i}" for i in range(7)]
    assert loader() == order
    assert loader(start=3) == order[3:]


def test_random_access_by_key_and_index(version):
    data = PublishedSplit(version["root"], "VideoPoint", "1.0.0", "train")
    assert len(data) == 7 and sorted(data.keys()) == [f"c{i}" for i in range(7)]
    for shard in {data._rows[p]["shard"] for p in range(7)}:  # sorted within each shard
        keys = [r["key"] for r in data._rows if r["shard"] == shard]
        assert keys == sorted(keys)
    sample = data["c6"]
    assert json.loads(sample["json"])["frames"] == [f"{i:03d}.jpg" for i in range(13)]
    with pytest.raises(KeyError, match="no sample 'nope'"):
        data["nope"]


def test_load_dataset_loads_every_split_with_every_frame(version, tmp_path):
    import datasets

    ds = datasets.load_dataset(str(version["dir"]), cache_dir=str(tmp_path / "hf"))
    assert {s: ds[s].num_rows for s in ds} == {"train": 7, "validation": 2}
    for row in ds["train"]:
        body = row["json"]
        frames = [k for k in row if k.endswith(".jpg") and row[k] is not None]
        assert frames == body["frames"], row["__key__"]
        assert body["records"][0]["key"] == f"vp_{row['__key__']}"
    longest = next(r for r in ds["train"] if r["__key__"] == "c6")
    assert longest["012.jpg"].size == (64, 48)


def test_verify_catches_a_flipped_byte(version, tmp_path):
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(Path(version["root"]), copy)
    assert verify_version(str(copy), "VideoPoint", "1.0.0").ok
    shard = copy / "VideoPoint" / "1.0.0" / "train-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01  # inside the first sample's first member
    shard.write_bytes(bytes(data))
    result = verify_version(str(copy), "VideoPoint", "1.0.0")
    assert not result.ok and "train-000000.tar: sha256" in result.problems[0]
    with pytest.raises(ShardChecksumError, match="sample 'c0'"):
        PublishedSplit(str(copy), "VideoPoint", "1.0.0", "train")["c0"]


def _tar_with(name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    return out.getvalue()


@pytest.mark.parametrize("name", ["../x.json", "/x.json", "a/../../x.json"])
def test_unsafe_member_names_are_refused_on_write_and_read(name, tmp_path):
    from shards.writer import write_shard

    key = name.rsplit(".", 1)[0]
    with pytest.raises(ValueError, match="sample key"):
        write_shard(tmp_path / "w.tar", [{"__key__": key, "json": {}}])
    shard = tmp_path / "r.tar"
    shard.write_bytes(_tar_with(name))
    with pytest.raises(MalformedShardError, match="refused"):
        index_shard(str(shard))
    with pytest.raises(MalformedShardError, match="refused"):
        parse_span(str(shard), key, _tar_with(name)[:1024])


def test_a_version_without_manifest_is_ignored_by_readers(version, tmp_path):
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(Path(version["root"]), copy)
    (copy / "VideoPoint" / "1.0.0" / "manifest.json").unlink()
    assert list_versions(str(copy), "VideoPoint") == []
    with pytest.raises(VersionNotFound, match="no committed version"):
        read_manifest(str(copy), "VideoPoint", "1.0.0")
    with pytest.raises(VersionNotFound):
        open_dataset(str(copy), "VideoPoint", "1.0.0", "train", rank=0, world_size=1)
