"""`molmo2-data annotate normalize`: one folder per project, written atomically, with a manifest that
pins the snapshot read and hashes every input and output. Offline: snapshots are saved the way
``annotate pull`` saves them (``annotation.pull.save_snapshot``), no server."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotation import outputs
from annotation.outputs import MANIFEST, OutputError, read_manifest
from annotation.pull import save_snapshot, snapshot_folder
from molmo2_data.cli import main
from tests.ls_exports import CLIPS, annotation, keypoint, point_data, task


def export(label: str, *xs: float) -> bytes:
    """One VideoPoint task, one annotation with a point at each x (percent), updated at a time set by xs."""
    result = [keypoint(f"k{i}", 1, x, 50.0) for i, x in enumerate(xs)]
    ann = dict(annotation(11, result), updated_at=f"2025-01-0{len(xs)}T12:00:05.000000Z")
    return json.dumps([task(1, point_data("clip-1", label), [ann])]).encode()


@pytest.fixture
def setup(tmp_path):
    snaps, out = tmp_path / "snaps", tmp_path / "out"
    save_snapshot(snaps, SimpleNamespace(id=1, title="Points A"), export("cat", 10.0))
    save_snapshot(snaps, SimpleNamespace(id=2, title="Points B"), export("dog", 20.0, 30.0))
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    pq.write_table(pa.Table.from_pylist(list(CLIPS.values())), ingest / "clips.parquet")
    return SimpleNamespace(snaps=snaps, out=out, ingest=ingest, tmp=tmp_path)


def normalize(s, project: str, *extra: str) -> int:
    return main(["annotate", "normalize", "--project", project, "--snapshots", str(s.snaps), "--out", str(s.out),
                 *extra])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_projects_of_one_kind_each_get_a_folder_with_a_manifest(setup, capfd):
    assert normalize(setup, "Points A", "--ingest", str(setup.ingest)) == 0
    assert normalize(setup, "Points B") == 0
    a, b = setup.out / "Points_A", setup.out / "Points_B"
    labels = {p: pq.read_table(p / "VideoPoint.parquet").column("label").to_pylist() for p in (a, b)}
    assert labels == {a: ["cat"], b: ["dog"]}  # neither overwrote the other
    assert sorted(p.name for p in setup.out.iterdir()) == ["Points_A", "Points_B"]  # no staging left
    for folder, title in ((a, "Points A"), (b, "Points B")):
        manifest = read_manifest(folder)
        index = json.loads((snapshot_folder(setup.snaps, title) / "index.json").read_text())
        (snap,) = manifest["snapshots"]
        assert (snap["version"], snap["sha256"], snap["file"]) == (1, index["snapshots"][0]["sha256"],
                                                                   index["snapshots"][0]["file"])
        assert snap["sha256"] == sha(snapshot_folder(setup.snaps, title) / snap["file"])
        assert sorted(manifest["outputs"]) == sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
        for name, entry in manifest["outputs"].items():
            assert entry["sha256"] == sha(folder / name) and entry["bytes"] == (folder / name).stat().st_size
        assert manifest["project"] == title and manifest["counts"]["records"] == {"VideoPoint": 1}
    assert read_manifest(a)["inputs"]["clips"]["sha256"] == sha(setup.ingest / "clips.parquet")
    assert read_manifest(b)["inputs"] == {}
    out = capfd.readouterr().out
    assert f"outputs in {a}" in out and "snapshot version 1" in out


def test_rerun_is_byte_identical_and_a_version_can_be_pinned(setup):
    assert normalize(setup, "Points A") == 0
    folder = setup.out / "Points_A"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert normalize(setup, "Points A") == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    save_snapshot(setup.snaps, SimpleNamespace(id=1, title="Points A"), export("cat", 10.0, 90.0))
    assert normalize(setup, "Points A") == 0
    assert read_manifest(folder)["snapshots"][0]["version"] == 2
    assert pq.read_table(folder / "VideoPoint.parquet").column("count").to_pylist() == [2]
    assert normalize(setup, "Points A", "--version", "1") == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_failed_write_leaves_the_previous_outputs_whole(setup, monkeypatch):
    assert normalize(setup, "Points A") == 0
    folder = setup.out / "Points_A"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def dies(staging, result):
        (staging / "VideoPoint.parquet").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "_stage", dies)
    save_snapshot(setup.snaps, SimpleNamespace(id=1, title="Points A"), export("cat", 10.0, 90.0))
    with pytest.raises(OSError):
        outputs.write_outputs(setup.out, "Points A", SimpleNamespace(), [])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in setup.out.iterdir()) == ["Points_A"]


def test_leftovers_of_a_dead_run_are_swept_and_foreign_folders_left_alone(setup, capfd):
    setup.out.mkdir()
    dead = setup.out / ".Points_A.tmp-999999999-0123abcd"  # shards.atomic's temporary name, a dead pid
    dead.mkdir()
    (dead / "VideoPoint.parquet").write_bytes(b"half")
    assert normalize(setup, "Points A") == 0
    assert sorted(p.name for p in setup.out.iterdir()) == ["Points_A"]
    mine = setup.out / "Points_B"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    capfd.readouterr()
    assert normalize(setup, "Points B") == 2
    err = capfd.readouterr().err
    assert "is not a normalize output" in err and len(err.splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_path_arguments_that_cannot_work_say_what_to_do(setup, capfd):
    (setup.tmp / "afile").write_text("x")
    cases = [
        (["--project", "Points A", "--snapshots", str(setup.tmp / "nope")],
         f"the snapshots folder {setup.tmp / 'nope'} does not exist"),
        (["--project", "Points C"], "no snapshot of 'Points C'"),
        (["--project", "Points A", "--version", "7"], "no snapshot version 7 of 'Points A'"),
        (["--project", "Points A", "--ingest", str(setup.tmp / "nope")], "does not exist: run 'molmo2-data ingest"),
        (["--project", "Points A", "--ingest", str(setup.tmp)], "is not an ingest output (no clips.parquet)"),
        (["--project", "Points A", "--out", str(setup.tmp / "afile")], "is a file, not a folder"),
    ]
    for args, said in cases:
        base = {"--snapshots": str(setup.snaps), "--out": str(setup.out)}
        for flag in list(base):
            if flag in args:
                del base[flag]
        code = main(["annotate", "normalize", *args, *[x for kv in base.items() for x in kv]])
        out, err = capfd.readouterr()
        assert code == 2 and said in err and len(err.splitlines()) == 1 and "Traceback" not in err, (args, err)
    with pytest.raises(OutputError, match="no normalized.json"):
        read_manifest(setup.tmp)
