"""The publish, verify, list, diff, preview and inspect --key commands: output and exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from molmo2_data import cli
from tests.publish_inputs import ClipSpec, make_ingest, video_point, video_track, write_records

CLIPS = [ClipSpec(f"q{i}", f"v{i}", duration=1.5 + i) for i in range(3)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    ingest = make_ingest(base / "ingest", CLIPS + [ClipSpec("closed", "vc", license="Proprietary-1.0")])
    records = write_records(base / "records", {
        "VideoPoint": [video_point(f"p{c.key}", c, [0.0, 0.5]) for c in CLIPS],
        "VideoTrack": [video_track(f"t{c.key}", c) for c in CLIPS]})
    return {"base": base, "ingest": str(ingest), "records": str(records), "root": str(base / "root")}


def _publish(tree, *extra, root=None):
    return cli.main(["publish", "--version", "1.0.0", "--root", root or tree["root"], "--ingest", tree["ingest"],
                     "--records", tree["records"], *extra])


def test_publish_prints_what_was_committed_and_where_the_report_is(tree, capsys):
    assert _publish(tree) == 0
    out = capsys.readouterr().out
    assert "VideoPoint 1.0.0: committed (train 3 samples/3 records; 1 shards)" in out
    assert f"report: {tree['root']}/VideoTrack/1.0.0/report.html" in out
    assert _publish(tree) == 0
    assert "VideoPoint: unchanged (the same version exists; nothing written)" in capsys.readouterr().out


def test_publish_errors_are_one_line_with_exit_2(tree, capsys):
    assert _publish(tree, "--shard-max-bytes", "100000") == 2  # a different 1.0.0
    err = capsys.readouterr().err
    assert "refusing to publish over an existing version" in err and "config.shard_max_bytes" in err
    assert cli.main(["publish", "--version", "1.0", "--root", tree["root"], "--ingest", tree["ingest"],
                     "--records", tree["records"]]) == 2
    assert "version '1.0' must be X.Y.Z" in capsys.readouterr().err
    assert cli.main(["publish", "--version", "1.0.0", "--root", tree["root"], "--ingest", "/nope",
                     "--records", tree["records"]]) == 2
    err = capsys.readouterr().err
    assert "ingest output /nope: not a folder" in err and "Traceback" not in err
    assert _publish(tree, "--direct_num_worker=2") == 2
    assert "did you mean --direct_num_workers" in capsys.readouterr().err


def test_a_blocked_dataset_exits_1_naming_rule_and_keys(tree, tmp_path, capsys):
    records = write_records(tmp_path / "records", {"VideoPoint": [video_point("pc", ClipSpec("closed", "vc"), [0.0])]})
    code = cli.main(["publish", "--version", "1.0.0", "--root", str(tmp_path / "root"), "--ingest", tree["ingest"],
                     "--records", str(records)])
    assert code == 1
    out = capsys.readouterr().out
    assert "VideoPoint: BLOCKED, nothing committed" in out
    assert "rule license:" in out and "keys: closed (Proprietary-1.0)" in out


def test_verify_list_diff_preview_and_inspect(tree, tmp_path, capsys):
    assert _publish(tree) in (0,)
    capsys.readouterr()
    version = f"{tree['root']}/VideoPoint/1.0.0"
    assert cli.main(["verify", version]) == 0
    assert "VideoPoint 1.0.0: ok: 1 shards, 3 samples" in capsys.readouterr().out
    assert cli.main(["verify", f"{tree['root']}/VideoPoint/9.9.9"]) == 2
    assert "no committed version" in capsys.readouterr().err
    assert cli.main(["list", tree["root"]]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith("VideoPoint 1.0.0: train: 3 samples, 3 records")
    assert listing[1].startswith("VideoTrack 1.0.0: train: 3 samples, 3 records")
    assert cli.main(["diff", version, version]) == 0
    assert "0 added, 0 removed, 0 changed, 0 moved split, 3 unchanged" in capsys.readouterr().out
    png = tmp_path / "q1.png"
    assert cli.main(["preview", f"{tree['root']}/VideoTrack/1.0.0", "q1", "--out", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG") and "VideoTrack q1: 1 record(s)" in capsys.readouterr().out
    assert cli.main(["preview", version, "nope"]) == 2
    assert "no sample 'nope'" in capsys.readouterr().err
    assert cli.main(["inspect", version, "--key", "q2"]) == 0
    shown = capsys.readouterr().out
    assert "-- record pq2" in shown and "<|im_start|>assistant" in shown and "license   : CC-BY-4.0" in shown


def test_verify_reports_a_changed_file_with_exit_1(tree, tmp_path, capsys):
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(tree["root"], copy)
    stats = copy / "VideoTrack" / "1.0.0" / "stats.json"
    stats.write_text(json.dumps({"edited": True}))
    assert cli.main(["verify", str(copy / "VideoTrack" / "1.0.0"), "--quick"]) == 1
    out = capsys.readouterr().out
    assert "VideoTrack 1.0.0: 1 problem(s)" in out and "stats.json: sha256" in out
    (copy / "VideoTrack" / "1.0.0" / "train-000001.tar").write_bytes(Path(copy / "VideoTrack" / "1.0.0" /
                                                                          "train-000000.tar").read_bytes())
    assert cli.main(["verify", str(copy / "VideoTrack" / "1.0.0"), "--quick"]) == 1
    assert "train-000001.tar: a shard the manifest does not list" in capsys.readouterr().out
