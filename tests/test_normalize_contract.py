"""annotation.normalize and the issue 8 contract: provenance, real source and duration, occluded spans,
MultiImageQA pairs. Hand-built exports in Label Studio's shapes (``tests/ls_exports.py``)."""
from __future__ import annotations

import pytest

from annotation.normalize import NormalizeConfig, Origin, normalize_export
from annotation.tasks import video_point_task
from schemas.prompts import messages_for
from schemas.records import validate
from tests.ls_exports import (
    CLIPS, SEQ_A, SEQ_B, VIDEO, annotation, image_qa_data, keypoint, media_url, normalize, point_data,
    relation, span, task, text, track, track_data,
)


def _point_task(tid: int = 1, users=(1,)) -> dict:
    anns = [annotation(tid * 10 + n, [keypoint("k", 2, 50.0, 50.0)], user=u) for n, u in enumerate(users)]
    return task(tid, point_data(), anns)


# ----------------------------------------------------------------------------- provenance


def test_every_record_says_project_snapshot_task_annotation_and_annotator():
    out = normalize([_point_task(4)])
    (rec,) = out.records["VideoPoint"]
    assert rec["provenance"] == {"method": "human", "project": "proj", "snapshot_version": 3, "task_id": 4,
                                 "annotation_ids": [40], "annotators": ["1"], "generator": None, "backend": None,
                                 "model": None, "prompt_version": None, "seed": None}
    other = normalize([_point_task(4)], origin=Origin("video_point: demo", 7)).records["VideoPoint"][0]
    assert (other["provenance"]["project"], other["provenance"]["snapshot_version"]) == ("video_point: demo", 7)


def test_a_consensus_names_every_annotation_and_annotator():
    ann = [annotation(52, [keypoint("k", 2, 50.0, 50.0)], user=9),
           {**annotation(51, [keypoint("k", 2, 50.5, 50.0)]), "completed_by": {"id": 3, "email": "b@example.org"}}]
    out = normalize([task(5, point_data(), ann)])
    (merged,) = out.records["VideoPoint"]
    assert merged["key"].endswith("-merged")
    assert merged["provenance"]["annotation_ids"] == [51, 52]
    assert merged["provenance"]["annotators"] == ["b@example.org", "9"]
    assert merged["provenance"]["task_id"] == 5


def test_an_annotation_that_does_not_say_who_made_it_fails():
    bad = annotation(11, [keypoint("k", 2, 50.0, 50.0)])
    del bad["completed_by"]
    out = normalize([task(1, point_data(), [bad])])
    (failure,) = out.failures
    assert failure["error_type"] == "missing_field" and "completed_by" in failure["message"]
    assert "provenance" in failure["message"] and "VideoPoint" not in out.records


def test_origin_is_checked():
    for bad in (("", 1), ("proj", 0), ("proj", True)):
        with pytest.raises(ValueError, match="project title and a snapshot version"):
            Origin(*bad)
    with pytest.raises(TypeError, match="origin"):
        normalize_export([])  # a record must say where it came from: no default


# ----------------------------------------------------------------------------- source and duration


def test_source_and_duration_come_from_the_video_not_placeholders():
    rec = normalize([_point_task()]).records["VideoPoint"][0]
    assert (rec["source"], rec["duration"]) == (VIDEO["source"], VIDEO["duration"])  # from the task data
    # an old task (push wrote "labelstudio" and the clip end): the videos table wins
    old = dict(point_data(), source="labelstudio", video_duration=14.0)
    videos = {"vid-1": {**VIDEO, "source": "youtube", "duration": 312.5}}
    fixed = normalize([task(1, old, [annotation(11, [])])], known_videos=videos).records["VideoPoint"][0]
    assert (fixed["source"], fixed["duration"]) == ("youtube", 312.5)
    track = normalize([task(2, dict(track_data(), source="labelstudio"), [annotation(21, [track_a()])])], CLIPS,
                      known_videos=videos).records["VideoTrack"][0]
    assert track["source"] == "youtube"


def track_a() -> dict:
    return track("a", SEQ_A)


def test_unknown_source_or_video_is_a_failure_not_a_placeholder():
    no_source = {k: v for k, v in point_data().items() if k not in ("source",)}
    out = normalize([task(1, no_source, [annotation(11, [])])])
    assert [f["error_type"] for f in out.failures] == ["missing_field"]
    assert "source of video 'vid-1' is not known" in out.failures[0]["message"]
    assert "--ingest" in out.failures[0]["message"]
    configured = normalize([task(1, no_source, [annotation(11, [])])], config=NormalizeConfig(source="archive"))
    assert configured.records["VideoPoint"][0]["source"] == "archive"
    unknown = normalize([_point_task()], known_videos={"vid-2": VIDEO})
    assert [f["error_type"] for f in unknown.failures] == ["unknown_video"]
    no_duration = {k: v for k, v in point_data().items() if k != "video_duration"}
    out = normalize([task(1, no_duration, [annotation(11, [])])])
    assert "video_duration is missing" in out.failures[0]["message"]


# ----------------------------------------------------------------------------- occluded spans


def _states(obj: dict) -> list[str]:
    return ["absent" if p is None else "occluded" if p["occluded"] else "visible" for p in obj["points"]]


def _tracks(result: list[dict]):
    return normalize([task(3, track_data(), [annotation(31, result)])], CLIPS)


def test_an_unlinked_span_is_about_the_only_track():
    out = _tracks([track("a", SEQ_A), span("s1", (10, 12))])
    (obj,) = out.records["VideoTrack"][0]["objects"]
    # SEQ_A: on at frames 1-9 (9 is the disabled keyframe), off 10-12, back at 13
    assert _states(obj) == ["visible"] * 9 + ["occluded"] * 3 + ["visible"] * 8
    assert obj["points"][10] == {"x": None, "y": None, "occluded": True}  # the box is off: no position
    without = _tracks([track("a", SEQ_A)]).records["VideoTrack"][0]["objects"][0]
    assert _states(without) == ["visible"] * 9 + ["absent"] * 3 + ["visible"] * 8  # old snapshots: off = absent


def test_a_span_over_a_box_that_stays_on_keeps_the_estimated_position():
    out = _tracks([track("b", SEQ_B), span("s1", (6, 8))])
    obj = out.records["VideoTrack"][0]["objects"][0]
    assert _states(obj)[5:8] == ["occluded"] * 3 and _states(obj)[8] == "visible"
    on = _tracks([track("b", SEQ_B)]).records["VideoTrack"][0]["objects"][0]
    assert obj["points"][6] == {**on["points"][6], "occluded": True}


@pytest.mark.parametrize("link", [relation("s1", "a"), relation("a", "s1")])
def test_a_linked_span_is_about_its_track_only(link):
    out = _tracks([track("a", SEQ_A), track("b", SEQ_B), span("s1", (10, 12)), link])
    assert out.failures == [] and out.review == []
    a, b = out.records["VideoTrack"][0]["objects"]
    assert _states(a)[9:12] == ["occluded"] * 3
    assert "occluded" not in _states(b)


def test_an_unlinked_span_among_several_tracks_goes_to_review():
    out = _tracks([track("a", SEQ_A), track("b", SEQ_B), span("s1", (10, 12))])
    assert "VideoTrack" not in out.records and out.failures == []
    (item,) = out.review
    assert "occluded span at frames 10-12 is linked to none of the 2 box tracks" in item.reasons[0]
    (candidate,) = item.candidates
    assert all("occluded" not in _states(o) for o in candidate["objects"])  # kept, the span left out
    validate("VideoTrack", candidate)


@pytest.mark.parametrize("extra, error_type, needle", [
    (span("s1", (18, 25)), "frame_out_of_clip", "frames 18-25 are outside the clip's frames 1..20"),
    (span("s1", (9, 4)), "bad_value", "end 4 is before start 9"),
    (span("s1", (9, 10), label="hidden"), "unknown_label", "unknown label(s) ['hidden']"),
    (relation("s1", "nope"), "bad_value", "links occluded span 's1' to region 'nope', which is not a box track"),
])
def test_bad_spans_and_relations_fail_the_annotation(extra, error_type, needle):
    result = [track("a", SEQ_A), track("b", SEQ_B), extra] + ([] if extra["type"] == "timelinelabels" else
                                                              [span("s1", (10, 12))])
    out = _tracks(result)
    assert [f["error_type"] for f in out.failures] == [error_type], out.failures
    assert needle in out.failures[0]["message"] and "task 3 annotation 31" in out.failures[0]["message"]


def test_occluded_and_absent_reach_the_training_text():
    """Normalized records resampled to the clip's times render as the official formatter: an occluded
    end is dropped in the start/end variant, an absent object's last appearance is printed."""
    hidden = _tracks([track("a", SEQ_A), span("s1", (10, 20))]).records["VideoTrack"][0]
    gone = _tracks([track("a", SEQ_A[:3])]).records["VideoTrack"][0]  # switched off at 9 and never back
    clip = CLIPS["clip-1"]
    per_frame = [messages_for("VideoTrack", r, clip)[1]["content"] for r in (hidden, gone)]
    assert per_frame[0] == per_frame[1]  # per frame, hidden and gone both leave the object out
    start_end = [messages_for("VideoTrack", r, clip, "video_point_track_start_end")[1]["content"]
                 for r in (hidden, gone)]
    # the 1.5 s sample shows frame 8 (box x 45 %, width 12.5 %: centre 51.25 %), 2.0 s frame 11 (hidden or gone)
    assert start_end[1] == '<tracks coords="0.0 1 150 300;1.5 1 512 500">the running dog</tracks>'
    # occluded to the end of the clip: its last appearance is an occluded entry, dropped with no fallback
    assert start_end[0] == '<tracks coords="0.0 1 150 300">the running dog</tracks>'


# ----------------------------------------------------------------------------- MultiImageQA


def _qa(result: list[dict]):
    return normalize([task(8, image_qa_data(), [annotation(81, result)])])


def test_multi_image_qa_pairs_in_slot_order():
    out = _qa([text("answer_2", "Seven.", "images"), text("question_1", "Which image has more dots?", "images"),
               text("question_2", "How many dots in all?", "images"), text("answer_1", "Image 2.", "images")])
    (rec,) = out.records["MultiImageQA"]
    assert rec["qa_pairs"] == [{"question": "Which image has more dots?", "answer": "Image 2."},
                               {"question": "How many dots in all?", "answer": "Seven."}]
    assert rec["image_set_id"] == "set-1" and rec["image_ids"] == ["img-0", "img-1", "img-2"]
    assert rec["provenance"]["task_id"] == 8
    validate("MultiImageQA", rec)


@pytest.mark.parametrize("result, needle", [
    ([text("question_1", "Q?", "images")], "pair 1 has a question but no answer"),
    ([text("question_1", "Q?", "images"), text("answer_1", "A", "images"), text("answer_3", "A3", "images")],
     "pair 3 has an answer but no question"),
    ([], "has no question/answer pair"),
])
def test_incomplete_pairs_fail(result, needle):
    out = _qa(result)
    assert [f["error_type"] for f in out.failures] == ["missing_field"] and needle in out.failures[0]["message"]


def test_video_point_task_without_video_fields_leaves_them_out():
    data = video_point_task(CLIPS["clip-1"], "q", "l", lambda i: media_url(f"frames/clip-1/{i:03d}.jpg"))
    assert "source" not in data and "video_duration" not in data
