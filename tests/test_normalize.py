"""annotation.normalize: hand-built exports in the shapes ``../shared/reference/labelstudio.md`` documents."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.normalize import NormalizeConfig, record_key, resample_track
from schemas.records import validate
from schemas.sampling import sample_times
from tests.ls_exports import (
    CLIPS, FPS, ORIGIN, SEQ_A, SEQ_B, VIDEO, annotation, good_point_task, image_set_data, keypoint, kf, normalize,
    point_data, task, text, track, track_data, unsure, video_data,
)



def test_video_point_percent_and_item_index_to_timestamp():
    data = point_data()
    out = normalize([task(1, data, [annotation(11, [keypoint("a", 3, 25.0, 50.0),
                                                           keypoint("b", 0, 100.0, 0.0)])])])
    assert out.failures == [] and out.review == []
    (rec,) = out.records["VideoPoint"]
    assert rec["key"] == record_key(data["task_key"], "a11")
    assert rec["points"] == [{"time": 0.0, "x": 1.0, "y": 0.0}, {"time": 1.5, "x": 0.25, "y": 0.5}]
    assert rec["count"] == 2 and rec["annotator_unsure"] is False
    assert (rec["clip_id"], rec["clip_start"], rec["clip_end"]) == ("clip-1", 10.0, 14.0)
    assert rec["label"] == "red circle" and rec["question"] == "red circles"
    validate("VideoPoint", rec)


def test_unsure_choice_sets_annotator_unsure_and_empty_result_is_zero_points():
    out = normalize([task(1, point_data(), [annotation(11, [unsure()])])])
    (rec,) = out.records["VideoPoint"]
    assert rec["annotator_unsure"] is True and rec["count"] == 0 and rec["points"] == []


def test_multi_image_point_item_index_is_image_index_and_unsure_is_kept():
    data = image_set_data()
    res = [keypoint("a", 2, 10.0, 20.0, to="images"), keypoint("b", 0, 50.0, 50.0, to="images")]
    out = normalize([task(1, data, [annotation(11, res)]), task(2, {**data, "task_key": "other"},
                                                                        [annotation(12, res + [unsure("images")])])])
    sure, doubtful = sorted(out.records["MultiImagePoint"], key=lambda r: r["annotator_unsure"])
    for rec in (sure, doubtful):
        assert rec["points"] == [{"image_index": 0, "x": 0.5, "y": 0.5}, {"image_index": 2, "x": 0.1, "y": 0.2}]
        assert rec["image_ids"] == ["img-0", "img-1", "img-2"] and rec["image_set_id"] == "set-1"
    assert (sure["annotator_unsure"], doubtful["annotator_unsure"]) == (False, True)
    assert out.review == []


# ----------------------------------------------------------------------------- tracks


def _track_export(sequences: dict[str, list[dict]], tid: int = 1, aid: int = 11) -> list[dict]:
    return [task(tid, track_data(), [annotation(aid, [track(rid, seq) for rid, seq in sequences.items()])])]


def _track(out) -> dict:
    assert out.failures == [], out.failures
    (rec,) = out.records["VideoTrack"]
    return rec


def test_track_frame_maps_through_frame_times_not_the_late_time_field():
    rec = _track(normalize(_track_export({"dog": [kf(6, 10.0, 20.0), kf(10, 30.0, 20.0)]}), CLIPS))
    frame_times = track_data()["frame_times"]
    assert rec["timestamps"] == frame_times and len(rec["timestamps"]) == 20
    (obj,) = rec["objects"]
    first = next(i for i, p in enumerate(obj["points"]) if p is not None)
    assert rec["timestamps"][first] == pytest.approx(1.0)  # frame 6 is shown from (6 - 1) / 5
    assert rec["timestamps"][first] != pytest.approx(kf(6, 0, 0)["time"])  # the export says 1.2
    assert obj["points"][first] == {"x": pytest.approx(0.15), "y": pytest.approx(0.3), "occluded": False}  # centre
    # on the 2 fps grid, 1.0 s shows frame 6 (the first box); reading `time` would put it at 1.2 s -> 1.5 s
    grid = resample_track(rec)
    assert grid["timestamps"] == sample_times(4.0)
    visible = [t for t, p in zip(grid["timestamps"], grid["objects"][0]["points"]) if p is not None]
    assert visible[0] == 1.0
    assert validate("VideoTrack", grid)


def test_resample_picks_the_frame_displayed_at_each_time():
    rec = _track(normalize(_track_export({"dog": [kf(1, 0.0, 0.0, 10, 10), kf(20, 90.0, 0.0, 10, 10)]}),
                                  CLIPS))
    grid = resample_track(rec, [0.0, 0.5, 0.59, 3.9])
    xs = [p["x"] for p in grid["objects"][0]["points"]]
    # 0.5 s and 0.59 s both show frame 3 (from 0.4 s); 3.9 s shows frame 20 (from 3.8 s)
    assert xs == pytest.approx([0.05, 0.05 + 0.9 * 2 / 19, 0.05 + 0.9 * 2 / 19, 0.95])
    with pytest.raises(ValueError):
        resample_track(rec, [0.5, 0.5])


def label_studio_interpolation(sequence: list[dict], frames_count: int) -> list[dict]:
    """What an export made with interpolate_key_frames holds (the SDK's rule, written out here):
    keyframes, plus ``auto`` copies between an enabled keyframe and the next one and after the
    last enabled keyframe until ``framesCount``; nothing after a disabled keyframe."""
    out = [dict(k) for k in sequence]
    for i, a in enumerate(sequence):
        if not a["enabled"]:
            continue
        b = sequence[i + 1] if i + 1 < len(sequence) else None
        end = b["frame"] if b else frames_count + 1
        for f in range(a["frame"] + 1, end):
            r = (f - a["frame"]) / (b["frame"] - a["frame"]) if b else 0.0
            item = dict(a, frame=f, auto=True, time=round(f / FPS, 2))
            for k in ("x", "y", "width", "height", "rotation"):
                item[k] = a[k] + ((b[k] - a[k]) * r if b else 0.0)
            out.append(item)
    return sorted(out, key=lambda k: k["frame"])


def test_keyframes_only_equals_interpolated_export():
    keyframes = _track(normalize(_track_export({"a": SEQ_A, "b": SEQ_B}), CLIPS))
    interpolated = _track(normalize(_track_export({"a": label_studio_interpolation(SEQ_A, 21),
                                                          "b": label_studio_interpolation(SEQ_B, 21)}), CLIPS))
    assert any(k.get("auto") for k in label_studio_interpolation(SEQ_A, 21))  # one frame past the mp4: dropped
    assert len(keyframes["objects"]) == len(interpolated["objects"]) == 2
    for oa, ob in zip(keyframes["objects"], interpolated["objects"]):
        assert oa["object_id"] == ob["object_id"]
        for pa, pb in zip(oa["points"], ob["points"]):
            assert (pa is None) == (pb is None)
            if pa is not None:
                assert (pa["x"], pa["y"]) == pytest.approx((pb["x"], pb["y"]))
    # frame 3 lies halfway between frames 1 and 5: x 20, width 15 -> centre 27.5 %
    assert keyframes["objects"][0]["points"][2] == {"x": pytest.approx(0.275), "y": pytest.approx(0.4),
                                                    "occluded": False}


def test_disabled_keyframe_is_absent_until_the_next_keyframe_with_the_same_id():
    rec = _track(normalize(_track_export({"zzz": SEQ_A, "aaa": SEQ_B}), CLIPS))
    a, b = rec["objects"]
    assert (a["object_id"], b["object_id"]) == (1, 2)  # by first appearance (frame 1, then 3), not result id
    assert all(p is None for p in b["points"][:2])
    assert a["points"][8] is not None  # frame 9, the disabled keyframe itself, is still shown
    assert a["points"][9:12] == [None, None, None]  # frames 10-12: switched off, no occluded span: absent
    assert a["points"][12] == {"x": pytest.approx(0.15), "y": pytest.approx(0.2), "occluded": False}  # back, id 1
    assert all(p == a["points"][12] for p in a["points"][12:])  # held to the end of the clip


def test_track_task_without_clip_bounds_needs_the_clip_records():
    data = track_data()
    del data["clip_start"], data["clip_end"]
    export = [task(1, data, [annotation(11, [track("a", SEQ_A)])])]
    out = normalize(export, known_clips=set(CLIPS))
    (failure,) = out.failures
    assert failure["error_type"] == "missing_field" and "data.clip_start" in failure["message"]
    assert "task 1 annotation 11" in failure["message"]
    assert normalize(export, CLIPS).failures == []  # the clip records fill the bounds in


# ----------------------------------------------------------------------------- text, cancelled


def test_ask_model_anything_and_caption_text():
    ama = video_data("ask_model_anything")
    cap = video_data("caption")
    rating = {"id": "r", "type": "rating", "from_name": "quality", "to_name": "video", "value": {"rating": 4}}
    out = normalize([
        task(1, ama, [annotation(11, [text("question", " Why does the dog stop? "), text("answer", "It sees a cat.")])]),
        task(2, cap, [annotation(12, [text("caption", "A dog runs, then stops."), rating])]),
    ], CLIPS)
    assert out.failures == []
    (q,) = out.records["AskModelAnything"]
    assert (q["question"], q["answer"]) == ("Why does the dog stop?", "It sees a cat.")
    (c,) = out.records["Cap"]
    assert c["clip_caption"] == "A dog runs, then stops." and c["annotation_score"] == 4.0


def test_cancelled_annotation_is_dropped_with_a_failure_record():
    out = normalize([task(1, point_data(), [annotation(11, [], cancelled=True),
                                                   annotation(12, [keypoint("a", 1, 10.0, 10.0)], user=2)])])
    (failure,) = out.failures
    assert failure["error_type"] == "cancelled" and failure["stage"] == "annotation"
    assert failure["outcome"] == "failed" and "task 1 annotation 11" in failure["message"]
    assert json.loads(failure["input"])["annotation"]["id"] == 11
    validate("failure", failure)
    (rec,) = out.records["VideoPoint"]
    assert rec["key"].endswith("-a12") and out.agreements == []


# ----------------------------------------------------------------------------- several annotators


def test_two_annotators_who_agree_are_merged():
    data = point_data()
    a = annotation(11, [keypoint("a", 1, 20.0, 20.0), keypoint("b", 4, 60.0, 40.0)])
    b = annotation(12, [keypoint("c", 1, 21.0, 20.0), keypoint("d", 4, 60.0, 42.0)], user=2)
    out = normalize([task(1, data, [a, b])])
    (rec,) = out.records["VideoPoint"]
    assert rec["key"] == record_key(data["task_key"], "merged")
    assert rec["points"] == [{"time": 0.5, "x": pytest.approx(0.205), "y": pytest.approx(0.2)},
                             {"time": 2.0, "x": pytest.approx(0.6), "y": pytest.approx(0.41)}]
    (agr,) = out.agreements
    assert agr.decision == "merged" and agr.figures["f1"] == 1.0 and agr.task_id == 1 and out.review == []


def test_two_annotators_who_disagree_go_to_review_with_the_figure():
    a = annotation(11, [keypoint("a", 1, 20.0, 20.0), keypoint("b", 4, 60.0, 40.0)])
    b = annotation(12, [keypoint("c", 1, 80.0, 80.0), keypoint("d", 4, 60.0, 41.0)], user=2)
    out = normalize([task(1, point_data(), [a, b]), good_point_task(2, 21)])
    assert [r["key"][-3:] for r in out.records["VideoPoint"]] == ["a21"]  # only the other task
    (agr,) = out.agreements
    assert agr.decision == "review" and agr.figures["f1"] == pytest.approx(0.5)
    assert "F1 0.50" in agr.reasons[0]
    (held,) = out.review
    assert held.task_id == 1 and [c["key"][-3:] for c in held.candidates] == ["a11", "a12"]


def test_tracks_and_text_agreement_through_the_export():
    shifted = [dict(k, x=k["x"] + 1.0) for k in SEQ_A]
    tracks = task(1, track_data(), [annotation(11, [track("a", SEQ_A), track("b", SEQ_B)]),
                                    annotation(12, [track("x", shifted), track("y", SEQ_B)], user=2)])
    ama = video_data("ask_model_anything")
    same = task(2, ama, [annotation(21, [text("question", "Why?"), text("answer", "The cat.")]),
                         annotation(22, [text("question", "why"), text("answer", "the  cat")], user=2)])
    differ = task(3, {**ama, "task_key": "ama-2"}, [annotation(31, [text("question", "Why?"), text("answer", "A cat")]),
                                                    annotation(32, [text("question", "Why?"), text("answer", "A dog")])])
    out = normalize([tracks, same, differ], CLIPS)
    assert out.failures == []
    (merged_track,) = out.records["VideoTrack"]
    assert merged_track["objects"][0]["points"][0]["x"] == pytest.approx(0.155)  # (15 % + 16 %) / 2
    (merged_text,) = out.records["AskModelAnything"]
    assert merged_text["answer"] == "The cat." and merged_text["key"].endswith("-merged")
    assert [a.decision for a in out.agreements] == ["merged", "merged", "review"]
    assert out.agreements[2].figures["normalized"] == 0.0 and [r.task_id for r in out.review] == [3]


# ----------------------------------------------------------------------------- bad exports


def _bad(result: list[dict], tid: int = 5) -> dict:
    return task(tid, point_data("clip-1", f"bad {tid}"), [annotation(50, result)])


BAD_CASES = {
    "missing_field": lambda: [_bad([{**keypoint("k", 0, 1, 1), "value": {"y": 5.0, "keypointlabels": ["object"]}}])],
    "out_of_range": lambda: [_bad([keypoint("k", 0, 120.0, 5.0)])],
    "unknown_label": lambda: [_bad([keypoint("k", 0, 10.0, 5.0, label="dog")])],
    "frame_out_of_clip": lambda: [_bad([keypoint("k", 9, 10.0, 5.0)])],
    "duplicate_id": lambda: [_bad([keypoint("k", 0, 1, 1)]), _bad([keypoint("k", 1, 1, 1)])],
    "unknown_clip": lambda: [task(5, {**point_data("clip-1", "bad 5"), "clip_id": "nope"}, [annotation(50, [])])],
    "unknown_control": lambda: [_bad([{**keypoint("k", 0, 1, 1), "from_name": "pointz"}])],
    "bad_value": lambda: [_bad([keypoint("k", 0, "12", 5.0)])],
    "track_frame_out_of_clip": lambda: [task(5, track_data(), [annotation(50, [track("t", [kf(25, 1, 1)])])])],
    "duplicate_annotation_id": lambda: [task(5, point_data("clip-1", "x"), [annotation(50, []), annotation(50, [])])],
    "duplicate_track_result_id": lambda: [task(5, track_data(), [annotation(50, [track("t", SEQ_B),
                                                                                 track("t", SEQ_A)])])],
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_export_case_is_a_failure_and_the_good_task_survives(case):
    export = BAD_CASES[case]() + [good_point_task(1, 11)]
    out = normalize(export, CLIPS)
    assert out.failures, case
    want = case.replace("track_", "").replace("_annotation_id", "_id").replace("_result_id", "_id")
    for failure in out.failures:
        assert failure["error_type"] == ("duplicate_id" if want.startswith("duplicate") else want)
        assert "task 5" in failure["message"]
        validate("failure", failure)
    assert len({f["key"] for f in out.failures}) == len(out.failures)
    assert [r["label"] for r in out.records["VideoPoint"]] == ["good 1"]


def test_not_json_file_is_one_failure(tmp_path: Path):
    path = tmp_path / "snapshot.json"
    path.write_bytes(b"<html>502 Bad Gateway</html>")
    out = normalize(path)
    (failure,) = out.failures
    assert failure["error_type"] == "not_json" and str(path) in failure["message"]
    assert failure["input_id"] == str(path) and out.records == {}
    assert [f["error_type"] for f in normalize(b"\xff\xfe\x00garbage").failures] == ["not_json"]
    assert [f["error_type"] for f in normalize('{"tasks": []}').failures] == ["bad_export"]
    assert [f["error_type"] for f in normalize([7, good_point_task()]).failures] == ["bad_task"]


def test_output_is_deterministic_and_keys_are_safe_and_unique():
    export = [good_point_task(1, 11), good_point_task(2, 12), _bad([keypoint("k", 0, 120.0, 5.0)])]
    first, second = normalize(json.dumps(export)), normalize(export)
    assert first.records == second.records and first.failures == second.failures
    keys = [r["key"] for r in first.records["VideoPoint"]]
    assert len(set(keys)) == 2 and all("." not in k and ":" not in k and " " not in k for k in keys)
    assert record_key("a:b", "m") != record_key("a_b", "m")
    assert NormalizeConfig().agreement.point_distance == 0.05


def _paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=5),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_single_corruption_never_crashes_never_vanishes_and_the_good_task_survives(data):
    kind = data.draw(st.sampled_from(["point", "track", "text", "images"]))
    if kind == "point":
        bad = task(5, point_data("clip-1", "bad 5"), [annotation(50, [keypoint("k", 2, 10.0, 5.0), unsure()])])
    elif kind == "track":
        bad = task(5, track_data(), [annotation(50, [track("t", SEQ_A), track("u", SEQ_B)])])
    elif kind == "text":
        bad = task(5, video_data("ask_model_anything"), [annotation(50, [text("question", "Q?"), text("answer", "A")])])
    else:
        bad = task(5, image_set_data(), [annotation(50, [keypoint("k", 1, 10.0, 5.0, to="images")])])
    bad = copy.deepcopy(bad)  # the keyframes are shared module constants
    path = data.draw(st.sampled_from([p for p in _paths(bad) if p]))
    target = bad
    for k in path[:-1]:
        target = target[k]
    if data.draw(st.booleans()):
        target[path[-1]] = data.draw(junk)
    else:  # a missing key or list item
        del target[path[-1]]
    out = normalize([bad, good_point_task(1, 11)], CLIPS)
    assert [r["label"] for r in out.records["VideoPoint"]][-1] == "good 1"
    for failure in out.failures:
        validate("failure", failure)
    others = [r for records in out.records.values() for r in records if r.get("label") != "good 1"]
    outcomes = len(others) + len(out.review) + len(out.failures) + len(out.unannotated)
    assert outcomes >= 1, path  # the bad task never vanishes
    if kind == "track" and others and not out.failures:  # and none of its tracks does
        results = bad["annotations"][0]["result"]
        assert len(others[0]["objects"]) == sum(r.get("type") == "videorectangle" for r in results), path
