"""Projects, push and pull against a real Label Studio server on loopback (one per module).

A small ingest output (three procedural videos with constant-frame-rate mp4s and one image set)
is pushed into a project of every kind, twice; media URLs are fetched back through the server;
annotations are made through the API and pulled into versioned snapshots, which are then read
with no network at all.
"""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from annotation.projects import (
    LabelStudioAuthError, LabelStudioError, LabelStudioRefused, LabelStudioUnreachable, connect, ensure_project,
    find_project, project_kind,
)
from annotation.pull import SnapshotError, diff_exports, iter_snapshots, load_snapshots, pull, snapshot_folder
from annotation.push import PushCheckError, PushConflict, PushItem, push
from annotation.tasks import KINDS, label_config
from shards.reader import iter_samples
from shards.writer import write_shard

ls = pytest.importorskip("tests.labelstudio")

QUERY = "moving shapes"
PRED = {"model_version": "draft-v0", "score": 0.5,
        "result": [{"id": "p1", "from_name": "points", "to_name": "frames", "type": "keypointlabels",
                    "item_index": 0, "original_width": 256, "original_height": 192,
                    "value": {"x": 50.0, "y": 50.0, "width": 0.5, "keypointlabels": ["object"]}}]}
QA_DRAFT = {"model_version": "draft-v0", "score": 0.3,
            "result": [{"id": f"d-{name}", "from_name": name, "to_name": "images", "type": "textarea",
                        "value": {"text": [text]}}
                       for name, text in (("question_1", "Which image shows more circles?"), ("answer_1", "Image 1"))]}
"""A model draft of a multi_image_qa task, shown to the annotator as a prediction."""
IMAGE_SET_KINDS = ("multi_image_point", "multi_image_qa")


@pytest.fixture(scope="module")
def ingest_dir(tmp_path_factory) -> Path:
    from pipelines.ingest.pipeline import run
    from pipelines.procedural.scenes import SceneSpec, generate_corpus, write_test_media

    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("ingest")
    rows = [{"id": f"v{i}", "path": str(s.video)} for i, s in enumerate(generate_corpus(src, 3, seed=3))]
    images = [write_test_media("png" if i % 2 else "jpeg", src / f"img{i}.{'png' if i % 2 else 'jpg'}",
                               spec=SceneSpec(seed=50 + i)) for i in range(3)]
    rows.append({"id": "set_a", "images": [str(p) for p in images]})
    manifest = src / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(["--manifest", str(manifest), "--out", str(out), "--cfr-mp4"])
    return out


@pytest.fixture(scope="module")
def records(ingest_dir):
    """Clip and image-set samples of the ingest output: key -> sample (record + member bytes)."""
    paths = sorted(str(p) for p in ingest_dir.glob("*/*.tar"))
    return {s["__key__"]: s for s in iter_samples(paths, decode_json=True)}


@pytest.fixture(scope="module")
def server(labelstudio):
    """The session's Label Studio server (tests/conftest.py)."""
    from annotation.server import load_credentials

    url, token = load_credentials(labelstudio.data_dir)
    return {"info": labelstudio, "url": url, "token": token, "media_root": Path(labelstudio.media_root)}


@pytest.fixture(scope="module")
def client(server):
    return connect(server["url"], server["token"])


def clip_ids(records):
    return sorted(k for k, s in records.items() if "timestamps" in s["json"])


def items_for(kind, records):
    if kind == "multi_image_point":
        return [PushItem("set_a", query="red circles", label="circle")]
    if kind == "multi_image_qa":
        return [PushItem("set_a", predictions=(QA_DRAFT,))]
    if kind in ("video_point", "video_track"):
        preds = (PRED,) if kind == "video_point" else ()
        return [PushItem(k, query=QUERY, predictions=preds) for k in clip_ids(records)]
    return None  # every clip


def get_media(server, url: str) -> bytes:
    r = requests.get(server["url"] + url, headers={"Authorization": f"Token {server['token']}"}, timeout=30)
    assert r.status_code == 200, (url, r.status_code)
    return r.content


def server_tasks(client, project_id):
    return list(client.tasks.list(project=project_id, fields="all", page_size=100))


# ------------------------------------------------------------------------------------------ projects
def test_ensure_project_every_kind_is_idempotent(client, monkeypatch):
    made = {kind: ensure_project(client, kind, f"proj {kind}") for kind in KINDS}
    assert len({p.id for p in made.values()}) == len(KINDS)
    updates = []
    monkeypatch.setattr(client.projects, "update", lambda *a, **k: updates.append((a, k)))
    for kind, project in made.items():
        again = ensure_project(client, kind, f"proj {kind}")
        assert again.id == project.id and project_kind(again) == kind
        assert "<View>" in again.label_config and again.expert_instruction
    assert updates == []  # nothing changed, nothing sent
    monkeypatch.undo()
    changed = ensure_project(client, "caption", "proj caption", description="Captions, batch 2")
    assert changed.id == made["caption"].id and changed.description.startswith("Captions, batch 2")
    with pytest.raises(ValueError, match="unknown project kind"):
        ensure_project(client, "pointz", "proj x")
    with pytest.raises(LabelStudioError, match="made for kind 'caption'"):
        ensure_project(client, "video_point", "proj caption")


def test_connect_errors_name_the_url_and_hide_the_token(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(LabelStudioUnreachable, match=f"127.0.0.1:{port}"):
        connect(f"http://127.0.0.1:{port}", "whatever", timeout=5)
    bad = "not-the-token-0123456789"
    with pytest.raises(LabelStudioAuthError, match="rejected the API token") as err:
        connect(server["url"], bad)
    assert bad not in str(err.value) and server["url"] in str(err.value)


# ------------------------------------------------------------------------------------------ push
# ``review`` tasks are built from generated records, not from media: tests/test_synth_review.py
@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"review"}))
def test_push_twice_creates_nothing_twice_and_media_resolve(kind, client, server, ingest_dir, records):
    project = ensure_project(client, kind, f"push {kind}")
    items = items_for(kind, records)
    seen = []
    first = push(client, project, ingest_dir, server["media_root"], items, batch_size=2,
                 progress=lambda done, total: seen.append((done, total)))
    n = 1 if kind in IMAGE_SET_KINDS else len(clip_ids(records))
    assert (first.created, first.existing, first.conflicts) == (n, 0, [])
    assert first.batches == -(-n // 2) and seen[-1] == (n, n)
    second = push(client, project, ingest_dir, server["media_root"], items)
    assert (second.created, second.existing, second.batches) == (0, n, 0)
    assert second.task_ids == first.task_ids
    tasks = server_tasks(client, project.id)
    assert len(tasks) == n
    assert len(client.import_storage.local.list(project=project.id)) == 1
    videos = {r["key"]: r for r in pq.read_table(ingest_dir / "videos.parquet").to_pylist()}
    for task in tasks:
        d = task.data
        assert first.task_ids[d["task_key"]] == task.id and d["kind"] == kind
        if kind in IMAGE_SET_KINDS:
            sample = records[d["set_id"]]
            assert d["image_ids"] == [i["image_id"] for i in sample["json"]["images"]]
            exts = sorted(k for k in sample if k[0].isdigit())
            assert [get_media(server, u) for u in d["images"]] == [sample[e] for e in exts]
            drafts = [(p.model_version, p.result) for p in task.predictions]
            assert drafts == ([("draft-v0", QA_DRAFT["result"])] if kind == "multi_image_qa" else [])
            continue
        clip = records[d["clip_id"]]["json"]
        if kind in ("video_point", "video_track"):  # the source video's real values, from videos.parquet
            video = videos[clip["video_id"]]
            assert d["source"] == video["source"]
            assert d.get("video_duration") == (video["duration"] if kind == "video_point" else None)
        if kind == "video_point":
            assert d["timestamps"] == clip["timestamps"] and d["frame_indices"] == clip["frame_indices"]
            assert [get_media(server, u) for u in d["frames"]] == [
                records[d["clip_id"]][f"{i:03d}.jpg"] for i in range(len(clip["timestamps"]))]
            assert [(p.model_version, p.result) for p in task.predictions] == [("draft-v0", PRED["result"])]
        else:
            assert d["fps"] == clip["mp4_fps"]
            assert get_media(server, d["video"]) == (ingest_dir / clip["mp4"]).read_bytes()
            assert not task.predictions
        if kind == "video_track":
            assert d["frame_indices"] == clip["mp4_frame_indices"]
            assert d["frame_times"] == [i / clip["mp4_fps"] for i in range(len(clip["mp4_frame_indices"]))]


def test_push_conflicts_skip_update_raise(client, server, ingest_dir, records):
    project = ensure_project(client, "video_point", "conflicts")
    key = clip_ids(records)[0]
    push(client, project, ingest_dir, server["media_root"], [PushItem(key, query=QUERY, label="shape")])
    other = [PushItem(key, query="other words", label="shape")]  # same task key, different data
    skipped = push(client, project, ingest_dir, server["media_root"], other)
    assert (skipped.created, skipped.conflicts, skipped.updated) == (0, [f"video_point:{key}:shape"], 0)
    assert server_tasks(client, project.id)[0].data["query"] == QUERY
    with pytest.raises(PushConflict, match="different data"):
        push(client, project, ingest_dir, server["media_root"], other, on_conflict="raise")
    updated = push(client, project, ingest_dir, server["media_root"], other, on_conflict="update")
    assert updated.updated == 1 and [t.data["query"] for t in server_tasks(client, project.id)] == ["other words"]


def test_push_with_cloud_urls_registers_no_local_storage(client, server, ingest_dir, records):
    project = ensure_project(client, "caption", "cloud caption")
    res = push(client, project, ingest_dir, server["media_root"], url_for=lambda rel: f"s3://bucket/media/{rel}")
    assert res.created == len(clip_ids(records))
    assert client.import_storage.local.list(project=project.id) == []
    videos = sorted(t.data["video"] for t in server_tasks(client, project.id))
    assert videos == [f"s3://bucket/media/cloud_caption/video/{k}.mp4" for k in clip_ids(records)]


def variant(ingest_dir: Path, dest: Path, change) -> Path:
    """A copy of the ingest output whose clips table (and clip shard) went through ``change(row) -> row``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(ingest_dir, dest)
    table = pq.read_table(dest / "clips.parquet")
    rows = [change(dict(r)) for r in table.to_pylist()]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), dest / "clips.parquet")
    shards = sorted((dest / "clips").glob("*.tar"))
    by_key = {r["key"]: r for r in rows}
    samples = [{**{k: v for k, v in s.items() if k == "__key__" or not k.startswith("__")},
                "json": by_key[s["__key__"]]} for s in iter_samples([str(p) for p in shards], decode_json=True)]
    for shard in shards:
        shard.unlink()
    write_shard(dest / "clips" / "clips-000000.tar", samples, fsync=False)
    (dest / "shards.json").unlink()
    return dest


def without_mp4(row: dict) -> dict:
    return {**row, "mp4": None, "mp4_fps": None, "mp4_frame_indices": None}


def off_grid(row: dict) -> dict:
    """The first clip sampled at 3 fps: every 0.333 s, off VideoPoint's 0.5 s grid."""
    from schemas.sampling import sample_times

    if row["key"] != OFF_GRID_KEY[0]:
        return row
    times = sample_times(row["end"] - row["start"], row["max_frames"], 3.0)
    return {**row, "max_fps": 3.0, "timestamps": times, "frame_indices": list(range(len(times)))}


OFF_GRID_KEY: list[str] = []


def test_push_errors_are_clear(client, server, ingest_dir, records, tmp_path):
    plain = client.projects.create(title="made by hand", label_config=label_config("caption"))
    with pytest.raises(LabelStudioError, match="unknown kind"):
        push(client, plain, ingest_dir, server["media_root"])
    caption = ensure_project(client, "caption", "errors caption")
    with pytest.raises(PushCheckError, match="not in .*no-such-clip"):
        push(client, caption, ingest_dir, server["media_root"], [PushItem("no-such-clip")])
    with pytest.raises(PushCheckError, match="need a query"):
        push(client, ensure_project(client, "video_track", "push video_track"), ingest_dir, server["media_root"],
             [PushItem(clip_ids(records)[0])])
    with pytest.raises(PushCheckError, match="media root .* does not exist"):
        push(client, caption, ingest_dir, tmp_path / "nowhere")
    # an ingest output without --cfr-mp4: the clips have no mp4
    no_mp4 = variant(ingest_dir, tmp_path / "no-mp4", without_mp4)
    with pytest.raises(PushCheckError, match="without a constant-frame-rate mp4.*--cfr-mp4"):
        push(client, caption, no_mp4, server["media_root"])
    assert server_tasks(client, caption.id) == []  # refused before anything was made


def run_cli(args: list[str], capfd) -> tuple[int, str, str]:
    """``molmo2-data ARGS`` in this process: (exit code, stdout, stderr)."""
    from molmo2_data.cli import main

    code = main(args)
    out, err = capfd.readouterr()
    return code, out, err


def test_push_checks_everything_before_it_creates_anything(client, server, ingest_dir, records, tmp_path, capfd):
    data_dir = str(server["info"].data_dir)
    base = ["annotate", "push", "--data-dir", data_dir]
    OFF_GRID_KEY[:] = clip_ids(records)[:1]
    cases = [  # (arguments, what the one line must say)
        (["--kind", "caption", "--project", "never made 1", "--ingest", str(variant(ingest_dir, tmp_path / "a",
                                                                                      without_mp4))],
         "3 clips without a constant-frame-rate mp4"),
        (["--kind", "video_point", "--project", "never made 2", "--query", "dots", "--ingest",
          str(variant(ingest_dir, tmp_path / "b", off_grid))], "not sampled on Molmo 2's 0.5 s grid"),
        (["--kind", "caption", "--project", "never made 3", "--ingest", str(tmp_path / "nope")],
         f"--ingest {tmp_path / 'nope'} does not exist: run 'molmo2-data ingest --manifest ... --out "
         f"{tmp_path / 'nope'}' first"),
        (["--kind", "caption", "--project", "never made 4", "--ingest", str(tmp_path)],
         f"--ingest {tmp_path} is not an ingest output (no clips.parquet): run 'molmo2-data ingest"),
        (["--kind", "video_point", "--project", "never made 5", "--ingest", str(ingest_dir)], "need a query"),
        (["--kind", "caption", "--project", "never made 6", "--ingest", str(ingest_dir), "--items",
          str(tmp_path / "items.jsonl")], f"--items {tmp_path / 'items.jsonl'} does not exist"),
        (["--kind", "caption", "--project", "never made 7", "--ingest", str(ingest_dir), "--media-root",
          str(tmp_path / "media")], f"the media root {tmp_path / 'media'} does not exist"),
        (["--kind", "caption", "--project", "???", "--ingest", str(ingest_dir)], "no characters usable"),
    ]
    for args, said in cases:
        code, out, err = run_cli(base + args, capfd)
        assert code == 2 and said in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and out == "", err
        assert find_project(client, args[3]) is None  # nothing was created
    code, out, err = run_cli(base + cases[1][0] + ["--skip-off-grid"], capfd)
    assert code == 0, err
    assert "warning: left out 1 clip not sampled" in err and OFF_GRID_KEY[0] in err and "--window 63" in err
    assert "2 created" in out and "1 off-grid clip(s) left out" in out
    made = find_project(client, "never made 2")
    assert sorted(t.data["clip_id"] for t in server_tasks(client, made.id)) == clip_ids(records)[1:]


def test_api_errors_are_one_line_naming_the_cause_and_never_a_secret(client, server, ingest_dir, capfd):
    with pytest.raises(LabelStudioRefused, match="refused to create project 'ab': title: at least 3 characters") \
            as err:
        ensure_project(client, "caption", "ab")
    assert err.value.status_code == 400 and err.value.__cause__ is None and err.value.__suppress_context__
    code, out, err_text = run_cli(["annotate", "push", "--data-dir", str(server["info"].data_dir), "--kind",
                                   "caption", "--project", "ab", "--ingest", str(ingest_dir)], capfd)
    assert code == 2 and err_text.count("\n") == 1 and "title: at least 3 characters" in err_text
    for secret in ("sessionid", "Authorization", "Token ", "csrftoken", "Set-Cookie", server["token"]):
        assert secret not in out + err_text + str(err.value)


def test_materialize_commits_nothing_from_a_shard_whose_checksum_fails(ingest_dir, tmp_path):
    """Shards are verified while they stream: media from a shard appear only once it is confirmed."""
    from annotation.push import materialize
    from shards.reader import ShardChecksumError

    copy = tmp_path / "ingest"
    shutil.copytree(ingest_dir, copy, ignore=shutil.ignore_patterns(".work"))
    (tar,) = sorted((copy / "clips").glob("clips-*.tar"))
    import tarfile

    with tarfile.open(tar) as t:
        first = t.getmembers()[0]  # {key}.000.jpg
    data = bytearray(tar.read_bytes())
    data[first.offset_data + first.size // 2] ^= 0xFF  # a byte of a frame: still a valid tar
    tar.write_bytes(bytes(data))
    media_root = tmp_path / "media"
    with pytest.raises(ShardChecksumError, match="clips-000000.tar"):
        materialize(copy, "video_point", None, media_root, "corrupt")
    assert [p for p in media_root.rglob("*") if p.is_file()] == []  # nothing staged was committed
    sources = materialize(ingest_dir, "video_point", None, media_root, "intact")
    files = [p for p in media_root.rglob("*") if p.is_file()]
    assert len(files) == sum(len(s.media) for s in sources.values()) > 0


# ------------------------------------------------------------------------------------------ pull
def keypoint(x: float) -> list[dict]:
    return [{"id": "k1", "from_name": "points", "to_name": "frames", "type": "keypointlabels", "item_index": 2,
             "original_width": 256, "original_height": 192, "image_rotation": 0,
             "value": {"x": x, "y": 20.0, "width": 0.5, "keypointlabels": ["object"]}}]


def test_pull_versions_diffs_and_offline_reads(client, server, ingest_dir, records, tmp_path, monkeypatch):
    project = ensure_project(client, "video_point", "pull video_point")
    res = push(client, project, ingest_dir, server["media_root"], items_for("video_point", records))
    snaps = tmp_path / "snapshots"
    first = pull(client, project, snaps)
    assert first.changed and first.version == 1 and first.tasks == len(res.task_ids) and first.annotations == 0
    task_id = sorted(res.task_ids.values())[0]
    ann = client.annotations.create(task_id, result=keypoint(10.0))

    second = pull(client, project, snaps)
    assert second.changed and second.version == 2 and [a.annotation_id for a in second.changes.new] == [ann.id]
    saved = json.loads(second.path.read_text())
    task = next(t for t in saved if t["id"] == task_id)
    assert task["annotations"][0]["result"] == keypoint(10.0)
    assert task["data"]["clip_id"] in records and task["predictions"][0]["model_version"] == "draft-v0"

    third = pull(client, project, snaps)  # nothing changed: no new file, recorded in the index
    assert not third.changed and third.version == 2 and third.path is None
    folder = snapshot_folder(snaps, project)
    index = json.loads((folder / "index.json").read_text())
    assert index["last_pull"]["changed"] is False and len(index["snapshots"]) == 2

    client.annotations.update(ann.id, result=keypoint(30.0))
    fourth = pull(client, project, snaps)
    assert [a.annotation_id for a in fourth.changes.updated] == [ann.id] and not fourth.changes.new
    client.annotations.delete(ann.id)
    fifth = pull(client, project, snaps)
    assert [(a.task_id, a.annotation_id) for a in fifth.changes.deleted] == [(task_id, ann.id)]
    assert fifth.version == 4 and fifth.annotations == 0

    index = json.loads((folder / "index.json").read_text())
    files = sorted(p.name for p in folder.iterdir())  # no temporary file left behind
    assert files == [e["file"] for e in index["snapshots"]] + ["index.json"]
    assert [f[:7] for f in files[:-1]] == ["000001-", "000002-", "000003-", "000004-"]
    assert [e["changes"]["deleted"] for e in index["snapshots"]] == [0, 0, 0, 1]

    def no_network(*args, **kwargs):
        raise AssertionError("snapshots must load with no network")

    monkeypatch.setattr(socket, "socket", no_network)
    versions = list(iter_snapshots(snaps, "pull video_point"))
    assert [s.version for s in versions] == [1, 2, 3, 4]
    assert [s.annotations for s in versions] == [0, 1, 1, 0]
    latest = load_snapshots(snaps, "pull video_point")
    assert sum(len(t["annotations"]) for t in latest) == 0
    v3 = load_snapshots(snaps, "pull video_point", version=3)
    assert next(t for t in v3 if t["id"] == task_id)["annotations"][0]["result"] == keypoint(30.0)


def test_pull_exports_tracks_with_interpolated_frames(client, server, ingest_dir, records, tmp_path):
    project = ensure_project(client, "video_track", "pull video_track")
    res = push(client, project, ingest_dir, server["media_root"], items_for("video_track", records))
    task_id = sorted(res.task_ids.values())[0]
    seq = [{"frame": 1, "enabled": True, "rotation": 0, "x": 10, "y": 10, "width": 20, "height": 20, "time": 0.1},
           {"frame": 5, "enabled": False, "rotation": 0, "x": 30, "y": 10, "width": 20, "height": 20, "time": 0.5}]
    client.annotations.create(task_id, result=[{
        "id": "track1", "from_name": "box", "to_name": "video", "type": "videorectangle", "origin": "manual",
        "value": {"framesCount": 30, "duration": 3.0, "labels": ["object"], "sequence": seq}}])
    result = pull(client, project, tmp_path)
    task = next(t for t in load_snapshots(tmp_path, project) if t["id"] == task_id)
    frames = task["annotations"][0]["result"][0]["value"]["sequence"]
    assert [f["frame"] for f in frames] == [1, 2, 3, 4, 5] and result.annotations == 1
    assert [f.get("auto", False) for f in frames] == [False, True, True, True, False]
    assert [f["x"] for f in frames] == [10, 15, 20, 25, 30]


# ------------------------------------------------------------------------------------------ offline
def test_diff_and_snapshot_integrity_without_a_server(tmp_path):
    def ann(i, at):
        return {"id": i, "updated_at": at}

    old = [{"id": 1, "updated_at": "a", "annotations": [ann(10, "t0"), ann(11, "t0")]},
           {"id": 2, "updated_at": "a", "annotations": []}]
    new = [{"id": 1, "updated_at": "b", "annotations": [ann(10, "t1"), ann(12, "t0")]},
           {"id": 3, "updated_at": "a", "annotations": [], "predictions": [{"id": 5, "updated_at": "p"}]}]
    d = diff_exports(old, new)
    assert [a.annotation_id for a in d.new] == [12] and [a.annotation_id for a in d.updated] == [10]
    assert [a.annotation_id for a in d.deleted] == [11]
    assert (d.tasks_new, d.tasks_updated, d.tasks_deleted, d.predictions_changed) == ([3], [1], [2], 1)
    assert not diff_exports(new, json.loads(json.dumps(new)))
    with pytest.raises(SnapshotError, match="run a pull first"):
        load_snapshots(tmp_path, "nothing here")


def test_tampered_snapshot_is_refused(client, server, ingest_dir, records, tmp_path):
    project = ensure_project(client, "caption", "push caption")
    push(client, project, ingest_dir, server["media_root"])
    result = pull(client, project, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / result.path.parent.name, copy / result.path.parent.name)
    (copy / result.path.parent.name / result.path.name).write_text("[]")
    with pytest.raises(SnapshotError, match="sha256"):
        load_snapshots(copy, project)


def test_command_line_push_and_pull(server, ingest_dir, tmp_path):
    """`molmo2-data annotate push|pull` against the session server, found through its data dir."""
    import subprocess
    import sys

    base = [sys.executable, "-m", "molmo2_data", "annotate"]
    data_dir = str(server["info"].data_dir)
    push_cmd = base + ["push", "--data-dir", data_dir, "--kind", "video_point", "--project", "cli points",
                       "--ingest", str(ingest_dir), "--query", "red circle"]
    first = subprocess.run(push_cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "3 created, 0 already there" in first.stdout
    again = subprocess.run(push_cmd, capture_output=True, text=True, timeout=300)
    assert "0 created, 3 already there" in again.stdout
    pulled = subprocess.run(base + ["pull", "--data-dir", data_dir, "--project", "cli points",
                                    "--snapshots", str(tmp_path / "snaps")], capture_output=True, text=True, timeout=300)
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert "3 tasks, 0 annotations; version 1" in pulled.stdout
    for proc in (first, again, pulled):
        assert server["token"] not in proc.stdout + proc.stderr
    missing = subprocess.run(base + ["pull", "--data-dir", data_dir, "--project", "no such project",
                                     "--snapshots", str(tmp_path / "snaps")], capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "no project titled 'no such project'" in missing.stderr
