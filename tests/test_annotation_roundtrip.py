"""Acceptance [3/7]: ground truth -> Label Studio annotations -> snapshot -> records, against the truth.

Procedural videos (one object leaves the frame and comes back, a dark bar sweeps over the others)
are ingested with ``--cfr-mp4`` and pushed to the session's Label Studio as VideoPoint (one task
per clip and label), VideoTrack (one per clip), MultiImagePoint and MultiImageQA (a set of scene
frames with known points; QA templated from them), AskModelAnything and Cap tasks. ``pipelines.procedural.simulated_annotators`` writes each task's
annotation through the API as a careful annotator would; a few tasks get a second annotation,
agreeing (off by one pixel, restyled text) or not (a missed object, swapped track ids, another
caption). Pulled snapshots are normalized and every record is compared with the ground truth:

* points and track centres within one pixel (|dx| <= 1/width, |dy| <= 1/height after the percent
  round trip), at exactly the sampled / mp4 frame times;
* one record object per scene object, ids kept across leaving and returning, occluded exactly
  where the bar hides it (an ``occluded`` timeline span linked to its track) and None exactly
  where it is out of frame, the right counts;
* every record's provenance names the project, the pulled snapshot version, the task, the
  annotation(s) created and their annotator; VideoPoint and VideoTrack hold the source video's
  ``source`` and duration (``videos.parquet``);
* every annotated task gives one record or one review item, and nothing fails;
* disagreement gives an agreement figure and a review item, agreement a merged record;
* the snapshot file alone (no network) rebuilds the same output.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from annotation.normalize import Origin, normalize_export, record_key
from annotation.projects import connect, ensure_project
from annotation.pull import find_snapshot, load_snapshots, pull, snapshot_folder
from annotation.push import PushItem, existing_tasks, push
from pipelines.procedural.scenes import draw_frame, generate_corpus, load_ground_truth
from pipelines.procedural.simulated_annotators import Perturbation, restyle, simulate
from shards.reader import iter_samples

pytest.importorskip("tests.labelstudio")

SCENES = dict(fps=12.0, duration=4.0, n_objects=3, labels=("red circle", "blue square", "red circle"),
              behaviors=("return", "stay", "cross"), enter_exit=True, occluder=True, codec="h264", vfr=False,
              subtitles=False)
KINDS = ("video_point", "video_track", "multi_image_point", "multi_image_qa", "ask_model_anything", "caption")
DATASET = {"video_point": "VideoPoint", "video_track": "VideoTrack", "multi_image_point": "MultiImagePoint",
           "multi_image_qa": "MultiImageQA", "ask_model_anything": "AskModelAnything", "caption": "Cap"}
SET_ID, SET_LABEL = "frames_set", "red circle"
RATING = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Scenes, an image set of scene frames with known points, and their ingest output."""
    from pipelines.ingest.pipeline import run

    src, out = tmp_path_factory.mktemp("rt_src"), tmp_path_factory.mktemp("rt_ingest")
    files = generate_corpus(src, 3, seed=11, **SCENES)
    scenes = {f"v{i}": load_ground_truth(f.ground_truth.read_text()) for i, f in enumerate(files)}
    rows = [{"id": vid, "path": str(f.video)} for vid, f in zip(scenes, files)]
    images, points = [], []
    for vid, scene in scenes.items():  # one frame per scene, where a red circle is visible
        idx = next(f.index for f in scene.frames[len(scene.frames) // 3:]
                   if any(s.visible and s.label == SET_LABEL for s in f.objects))
        path = src / f"{vid}_{idx}.png"
        Image.fromarray(draw_frame(scene, idx)).save(path)
        images.append(str(path))
        points.append({s.object_id: (s.x_norm, s.y_norm) for s in scene.frames[idx].objects
                       if s.visible and s.label == SET_LABEL})
    rows.append({"id": SET_ID, "images": images})
    (src / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(["--manifest", str(src / "manifest.jsonl"), "--out", str(out), "--cfr-mp4"])
    samples = {s["__key__"]: s["json"] for s in iter_samples(sorted(map(str, out.glob("*/*.tar"))),
                                                               decode_json=True)}
    clips = {k: r for k, r in samples.items() if "timestamps" in r}
    assert sorted(r["video_id"] for r in clips.values()) == sorted(scenes)
    videos = {r["key"]: r for r in pq.read_table(out / "videos.parquet").to_pylist()}
    counts = [len(p) for p in points]
    pairs = [(f"How many {SET_LABEL}s are there in all the images together?", str(sum(counts))),
             (f"How many {SET_LABEL}s does Image 1 show?", str(counts[0]))]
    return {"scenes": scenes, "clips": clips, "videos": videos, "ingest": out, "set_points": points,
            "set_pairs": pairs, "image_set": samples[SET_ID]}


def items(kind, corpus):
    clips = sorted(corpus["clips"])
    if kind == "video_point":  # one task per clip and label
        return [PushItem(c, query=f"{label}s", label=label) for c in clips
                for label in sorted({o.label for o in corpus["scenes"][corpus["clips"][c]["video_id"]].objects})]
    if kind == "video_track":
        return [PushItem(c, query="moving shapes", label="object") for c in clips]
    if kind == "multi_image_point":
        return [PushItem(SET_ID, query=f"{SET_LABEL}s", label=SET_LABEL)]
    if kind == "multi_image_qa":  # a model draft (the first pair, with a wrong answer) shown as a prediction
        draft = [{"id": f"d{n}", "from_name": name, "to_name": "images", "type": "textarea", "value": {"text": [t]}}
                 for n, (name, t) in enumerate((("question_1", corpus["set_pairs"][0][0]), ("answer_1", "2")))]
        return [PushItem(SET_ID, predictions=({"model_version": "draft-v0", "result": draft},))]
    return None  # ask_model_anything, caption: every clip


def second_annotators(tasks_by_key, corpus):
    """Task key -> the second annotator's perturbation: (agree, disagree) pairs per kind."""
    keys = sorted(tasks_by_key)
    by_kind = {k: [t for t in keys if t.startswith(k + ":")] for k in KINDS}
    red = [t for t in by_kind["video_point"] if t.endswith(":red circle")]
    scene = corpus["scenes"][tasks_by_key[red[0]][1]["video_id"]]
    red_ids = [o.object_id for o in scene.objects if o.label == "red circle"]
    return {
        red[0]: Perturbation(miss=frozenset(red_ids[:1])),                  # 1 of 2 points: F1 2/3 -> review
        red[1]: Perturbation(dx_px=1.0, dy_px=-1.0),                         # one pixel off -> merged
        by_kind["video_track"][0]: Perturbation(swap=(0, 1)),                # id switch -> review
        by_kind["video_track"][1]: Perturbation(dx_px=-1.0, dy_px=1.0),      # -> merged
        by_kind["multi_image_point"][0]: Perturbation(dx_px=1.0),            # -> merged
        by_kind["multi_image_qa"][0]: Perturbation(restyle=True),            # -> merged
        by_kind["ask_model_anything"][0]: Perturbation(restyle=True),        # same after normalization -> merged
        by_kind["caption"][0]: Perturbation(text="Nothing moves; the screen stays grey."),  # -> review
    }


@pytest.fixture(scope="module")
def roundtrip(labelstudio, corpus, tmp_path_factory):
    """Push, annotate (simulated), pull and normalize every kind; returns what each step gave."""
    from annotation.server import load_credentials

    client = connect(*load_credentials(labelstudio.data_dir))
    snaps = tmp_path_factory.mktemp("rt_snapshots")
    projects, tasks, normalized, snapshot_files = {}, {}, {}, {}
    for kind in KINDS:
        projects[kind] = ensure_project(client, kind, f"roundtrip {kind}", maximum_annotations=2)
        res = push(client, projects[kind], corpus["ingest"], labelstudio.media_root, items(kind, corpus))
        assert res.created == len(res.task_ids) and not res.conflicts
        tasks.update(existing_tasks(client, projects[kind].id))

    def annotate(key, perturb=Perturbation()):
        task_id, data = tasks[key]
        scene = corpus["scenes"].get(data.get("video_id"))
        result = simulate(data["kind"], data, scene, perturb, points=corpus["set_points"], pairs=corpus["set_pairs"],
                          **({"rating": RATING} if data["kind"] == "caption" else {}))
        return client.annotations.create(task_id, result=result, lead_time=12.5).id

    first = {key: annotate(key) for key in sorted(tasks)}
    second = {key: annotate(key, p) for key, p in second_annotators(tasks, corpus).items()}
    origins = {}
    for kind in KINDS:
        assert pull(client, projects[kind], snaps).changed
        snapshot_files[kind] = snapshot_folder(snaps, projects[kind])
        origins[kind] = Origin(projects[kind].title, find_snapshot(snaps, projects[kind]).version)
        normalized[kind] = normalize_export(load_snapshots(snaps, projects[kind]), known_clips=corpus["clips"],
                                            origin=origins[kind], known_videos=corpus["videos"])
    return {"tasks": tasks, "first": first, "second": second, "normalized": normalized, "snaps": snaps,
            "projects": projects, "snapshot_files": snapshot_files, "origins": origins,
            "user": client.users.whoami()}


def records_of(roundtrip, kind, merged=None):
    """(task key, record) of one kind; ``merged``: only merged (True) or single-annotator (False) ones."""
    bases = {record_key(k, "")[:-1]: k for k, (_, d) in roundtrip["tasks"].items() if d["kind"] == kind}
    out = []
    for record in roundtrip["normalized"][kind].records.get(DATASET[kind], []):
        base, suffix = record["key"].rsplit("-", 1)
        if merged is None or merged == (suffix == "merged"):
            out.append((bases[base], record))
    return out


def near(point, x, y, width, height):
    return abs(point["x"] - x) <= 1.0 / width and abs(point["y"] - y) <= 1.0 / height


# ------------------------------------------------------------------------------------------ tests
def test_every_annotated_task_gives_one_record_or_one_review_and_nothing_fails(roundtrip):
    tasks = roundtrip["tasks"]
    for kind in KINDS:
        out = roundtrip["normalized"][kind]
        n_tasks = sum(1 for _, d in tasks.values() if d["kind"] == kind)
        records = out.records.get(DATASET[kind], [])
        assert out.failures == [] and out.unannotated == []
        assert len(records) + len(out.review) == n_tasks, kind
        assert len({r["key"] for r in records}) == len(records)
    assert len(roundtrip["first"]) == len(tasks) == 6 + 3 + 1 + 1 + 3 + 3


def test_video_points_count_each_object_once_at_its_first_visible_sampled_frame(roundtrip, corpus):
    checked = 0
    for key, record in records_of(roundtrip, "video_point"):
        data = roundtrip["tasks"][key][1]
        scene, clip = corpus["scenes"][data["video_id"]], corpus["clips"][data["clip_id"]]
        w, h = clip["frame_width"], clip["frame_height"]
        # the frame annotators see at sample i is the one the ground truth describes there
        assert [scene.frame_index_at(clip["start"] + t) for t in clip["timestamps"]] == clip["frame_indices"]
        expected = []
        for obj in scene.objects:
            if obj.label != data["label"]:
                continue
            seen = [(t, scene.ground_truth_at(clip["start"] + t).state(obj.object_id)) for t in clip["timestamps"]]
            first = next(((t, s) for t, s in seen if s.visible), None)
            if first is not None:
                expected.append((first[0], first[1].x_norm, first[1].y_norm))
        expected.sort()
        assert record["count"] == len(record["points"]) == len(expected), key
        assert record["label"] == data["label"] and record["question"] == data["query"]
        for p, (t, x, y) in zip(record["points"], expected):
            assert p["time"] == t and near(p, x, y, w, h), (key, p, (t, x, y))
        assert record["clip_start"] == clip["start"] and record["clip_end"] == clip["end"]
        checked += 1
    assert checked == 6 - 1  # one of the six tasks is in review (test_disagreement_...)
    assert any(r["count"] == 2 for _, r in records_of(roundtrip, "video_point"))


def gt_tracks(scene, clip):
    """Ground truth of a VideoTrack: per object visible somewhere, its state or None on every mp4 frame,
    ordered as the records number objects (first visible frame, then x, y there)."""
    times = [i / clip["mp4_fps"] for i in range(len(clip["mp4_frame_indices"]))]
    frames = [scene.ground_truth_at(clip["start"] + t) for t in times]
    assert [f.index for f in frames] == clip["mp4_frame_indices"]  # mp4 frame f shows source frame f - 1
    tracks = []
    for obj in scene.objects:
        states = [f.state(obj.object_id) for f in frames]
        first = next((i for i, s in enumerate(states) if s.visible), None)
        if first is not None:
            tracks.append(((first, states[first].x_norm, states[first].y_norm), states))
    return times, [states for _, states in sorted(tracks, key=lambda t: t[0])]


def test_tracks_keep_one_id_across_leaving_and_occlusion_and_tell_occluded_from_absent(roundtrip, corpus):
    returns = occlusions = 0
    for key, record in records_of(roundtrip, "video_track"):
        data = roundtrip["tasks"][key][1]
        scene, clip = corpus["scenes"][data["video_id"]], corpus["clips"][data["clip_id"]]
        w, h = clip["frame_width"], clip["frame_height"]
        times, truth = gt_tracks(scene, clip)
        assert record["timestamps"] == times and record["fps"] == clip["mp4_fps"]
        assert record["start_frame"] == clip["mp4_frame_indices"][0]
        assert record["end_frame"] == clip["mp4_frame_indices"][-1]
        assert [o["object_id"] for o in record["objects"]] == list(range(1, len(truth) + 1))
        for obj, states in zip(record["objects"], truth):
            assert len(obj["points"]) == len(states)
            for p, s in zip(obj["points"], states):
                if s.visible:
                    assert p is not None and near(p, s.x_norm, s.y_norm, w, h), (key, obj["object_id"], p, s)
                    assert p["occluded"] is False
                elif s.status == "occluded":  # the box is off there, the span marks it hidden: no position
                    assert p == {"x": None, "y": None, "occluded": True}, (key, obj["object_id"], p)
                else:
                    assert p is None, (key, obj["object_id"], s.status)
            status = [s.status for s in states]
            runs = [v for i, v in enumerate(status) if i == 0 or v != status[i - 1]]
            gaps = [runs[i] for i in range(1, len(runs) - 1) if runs[i - 1] == runs[i + 1] == "visible"]
            returns += "out_of_frame" in gaps
            occlusions += "occluded" in gaps
    # the scenes hold what the test is about: a track that leaves and comes back, one hidden by the bar
    assert returns >= 1 and occlusions >= 1, (returns, occlusions)


def test_image_points_and_texts_match_the_ground_truth(roundtrip, corpus):
    image_set = corpus["image_set"]
    [(key, record)] = records_of(roundtrip, "multi_image_point")
    assert record["key"].endswith("-merged") and record["image_ids"] == [i["image_id"] for i in image_set["images"]]
    expected = sorted((i, x, y) for i, pts in enumerate(corpus["set_points"]) for x, y in pts.values())
    assert record["count"] == len(expected) >= 3
    for p, (i, x, y) in zip(record["points"], expected):
        img = image_set["images"][i]
        assert p["image_index"] == i and near(p, x, y, img["width"], img["height"])
    for key, record in records_of(roundtrip, "ask_model_anything"):
        qa = corpus["scenes"][roundtrip["tasks"][key][1]["video_id"]].qa[0]
        assert (record["question"], record["answer"]) == (qa.question, qa.answer)
    for key, record in records_of(roundtrip, "caption"):
        scene = corpus["scenes"][roundtrip["tasks"][key][1]["video_id"]]
        assert record["clip_caption"] == scene.caption and record["annotation_score"] == RATING
    assert len(records_of(roundtrip, "ask_model_anything")) == 3 and len(records_of(roundtrip, "caption")) == 2
    [(key, record)] = records_of(roundtrip, "multi_image_qa")
    assert record["key"].endswith("-merged") and record["image_set_id"] == SET_ID
    assert record["image_ids"] == [i["image_id"] for i in image_set["images"]]
    assert [(qa["question"], qa["answer"]) for qa in record["qa_pairs"]] == corpus["set_pairs"]  # not the draft


def test_every_record_says_how_it_was_made(roundtrip, corpus):
    """Provenance: project, snapshot version, task, the annotations created and who made them; the
    source video's real source and duration, not placeholders."""
    tasks, first, second = roundtrip["tasks"], roundtrip["first"], roundtrip["second"]
    user = roundtrip["user"]
    for kind in KINDS:
        origin = roundtrip["origins"][kind]
        assert origin.project == f"roundtrip {kind}" and origin.snapshot_version == 1
        for key, record in records_of(roundtrip, kind):
            prov = record["provenance"]
            assert (prov["method"], prov["project"], prov["snapshot_version"]) == ("human", origin.project, 1)
            assert prov["task_id"] == tasks[key][0]
            made = sorted([first[key]] + ([second[key]] if key in second else []))
            assert prov["annotation_ids"] == made, key
            assert prov["annotators"] in ([str(user.id)] * len(made), [user.email] * len(made))
            assert all(prov[f] is None for f in ("generator", "backend", "model", "prompt_version", "seed"))
            if kind in ("video_point", "video_track"):
                video = corpus["videos"][record["video_id"]]
                assert record["source"] == video["source"] and record["source"] != "labelstudio"
                if kind == "video_point":
                    assert record["duration"] == video["duration"]


def test_disagreement_is_scored_and_reviewed_agreement_is_merged(roundtrip, corpus):
    tasks, second = roundtrip["tasks"], roundtrip["second"]
    agreements = {a.task_key: a for kind in KINDS for a in roundtrip["normalized"][kind].agreements}
    reviews = {r.task_key: r for kind in KINDS for r in roundtrip["normalized"][kind].review}
    assert set(agreements) == set(second)
    decisions = {key: a.decision for key, a in agreements.items()}
    reviewed = {k for k, d in decisions.items() if d == "review"}
    assert reviewed == set(reviews) and len(reviewed) == 3
    for key, a in agreements.items():
        assert a.task_id == tasks[key][0] and len(a.annotators) == 2 and a.figures
        kind = tasks[key][1]["kind"]
        if kind == "video_point":
            assert a.figures["f1"] == (2 / 3 if key in reviewed else 1.0)
        elif kind == "video_track":
            assert (a.figures["id_switches"] >= 1) == (key in reviewed)
            assert a.figures["frame_f1"] == 1.0  # swapped ids, same boxes on every frame
        elif kind == "caption":
            assert key in reviewed and a.figures["normalized"] == 0.0 and len(reviews[key].candidates) == 2
        else:
            assert key not in reviewed and a.figures.get("normalized", 1.0) == 1.0
    for key in reviewed:
        assert reviews[key].reasons and all(not r["key"].endswith("-merged") for r in reviews[key].candidates)
    merged = [(k, r) for kind in KINDS for k, r in records_of(roundtrip, kind, merged=True)]
    assert sorted(k for k, _ in merged) == sorted(set(second) - reviewed)
    ama_key, ama = next((k, r) for k, r in merged if tasks[k][1]["kind"] == "ask_model_anything")
    qa = corpus["scenes"][tasks[ama_key][1]["video_id"]].qa[0]
    assert (ama["question"], ama["answer"]) == (qa.question, qa.answer)  # the first annotator's text

def test_snapshots_alone_rebuild_the_same_output_offline(roundtrip, corpus, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("normalizing a snapshot must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    for kind in KINDS:
        files = sorted(Path(roundtrip["snapshot_files"][kind]).glob("0*.json"))
        again = normalize_export(files[-1], known_clips=corpus["clips"], origin=roundtrip["origins"][kind],
                                 known_videos=corpus["videos"])
        before = roundtrip["normalized"][kind]
        assert again.records == before.records and again.failures == before.failures
        assert [(r.task_key, r.reasons, r.candidates) for r in again.review] == \
               [(r.task_key, r.reasons, r.candidates) for r in before.review]
        assert [(a.task_key, a.decision, a.figures) for a in again.agreements] == \
               [(a.task_key, a.decision, a.figures) for a in before.agreements]


def test_simulated_annotator_sparse_keyframes_and_bad_arguments_offline(corpus, monkeypatch):
    """No server: keyframes every 5th frame keep the tracks' ids and hidden frames; misuse is refused."""
    from annotation.agreement import normalize_text
    from annotation.tasks import video_track_task

    monkeypatch.setattr(socket, "socket", lambda *a, **k: pytest.fail("no network here"))
    clip = corpus["clips"][sorted(corpus["clips"])[0]]
    scene = corpus["scenes"][clip["video_id"]]
    data = video_track_task(clip, "moving shapes", "object", f"/data/local-files/?d=rt/video/{clip['key']}.mp4")
    full, sparse = simulate("video_track", data, scene), simulate("video_track", data, scene, step=5)
    boxes = [r for r in full if r["type"] == "videorectangle"]
    assert [r["id"] for r in boxes] == [r["id"] for r in sparse if r["type"] == "videorectangle"] == [
        f"obj{o.object_id}" for o in scene.objects]
    spans = [r for r in full if r["type"] == "timelinelabels"]
    links = {(r["from_id"], r["to_id"]) for r in full if r["type"] == "relation"}
    assert spans and links == {(r["id"], r["id"].split("_")[0].replace("occ", "obj")) for r in spans}
    for a, b in zip(boxes, sparse):
        assert len(b["value"]["sequence"]) < len(a["value"]["sequence"])
        off = [k["frame"] for k in a["value"]["sequence"] if not k["enabled"]]
        assert off and off == [k["frame"] for k in b["value"]["sequence"] if not k["enabled"]]
    export = [{"id": n, "data": {**data, "task_key": f"t{n}"}, "annotations": [{"id": n, "result": result,
                                                                               "was_cancelled": False}]}
              for n, result in ((1, full), (2, sparse))]
    for task in export:
        task["annotations"][0]["completed_by"] = 1
    out = normalize_export(export, known_clips=corpus["clips"], origin=Origin("offline", 1),
                           known_videos=corpus["videos"])
    assert out.failures == []
    dense, coarse = (r["objects"] for r in out.records["VideoTrack"])
    for a, b in zip(dense, coarse):
        assert [p is None for p in a["points"]] == [p is None for p in b["points"]]
        assert [bool(p and p["occluded"]) for p in a["points"]] == [bool(p and p["occluded"]) for p in b["points"]]
    plain = simulate("video_track", data, scene, Perturbation(no_occlusion=True))
    assert [r for r in plain if r["type"] != "videorectangle"] == [] and plain == full[:len(plain)]
    assert normalize_text(restyle(scene.caption)) == normalize_text(scene.caption) != restyle(scene.caption)
    with pytest.raises(ValueError, match="step"):
        simulate("video_track", data, scene, step=0)
    with pytest.raises(ValueError, match="not tracked"):
        simulate("video_track", data, scene, Perturbation(swap=(0, 99)))
    with pytest.raises(ValueError, match="unknown kind"):
        simulate("pointz", data, scene)
    with pytest.raises(ValueError, match="needs the clip's scene"):
        simulate("caption", data)
    with pytest.raises(ValueError, match="entries for a set of 3 images"):
        simulate("multi_image_point", {"widths": [1, 1, 1], "heights": [1, 1, 1]}, points=[{}])
    with pytest.raises(ValueError, match="multi_image_qa needs pairs"):
        simulate("multi_image_qa", {})
    with pytest.raises(ValueError, match="1 to 3 pairs"):
        simulate("multi_image_qa", {}, pairs=[("q", "a")] * 4)
