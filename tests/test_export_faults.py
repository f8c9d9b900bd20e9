"""One-defect variants of Label Studio exports: each is a failure record naming task, annotation and
reason, or (a result of a control the project does not know) a failure for that result while the
good results of the annotation still make the record. Never a crash, never silent.

Every case is a good task with exactly one thing changed, next to a good task that must survive.
"""
from __future__ import annotations

import copy
import math

import pytest

from annotation.tasks import video_point_task
from schemas.records import validate
from schemas.sampling import sample_times
from tests.ls_exports import (
    CLIPS, SEQ_A, SEQ_B, VIDEO, annotation, clip, good_point_task, image_set_data, keypoint, kf, media_url,
    normalize, point_data, task, text, track, track_data, video_data,
)

TID, AID = 5, 50


def _point(data: dict | None = None, result: list | None = None) -> list[dict]:
    data = point_data("clip-1", "bad 5") if data is None else data
    result = [keypoint("k1", 2, 10.0, 20.0), keypoint("k2", 7, 30.0, 40.0)] if result is None else result
    return [task(TID, data, [annotation(AID, result)])]


def _track(data: dict | None = None, result: list | None = None) -> list[dict]:
    data = track_data() if data is None else data
    result = [track("a", copy.deepcopy(SEQ_A)), track("b", copy.deepcopy(SEQ_B))] if result is None else result
    return [task(TID, data, [annotation(AID, result)])]


def _change(target: dict, changes: dict) -> None:
    """Set each key of ``target`` to its value in ``changes``, or delete it where the value is ``_DEL``."""
    for k, v in changes.items():
        if v is _DEL:
            del target[k]
        else:
            target[k] = v


def _with(data: dict, **changes) -> dict:
    out = copy.deepcopy(data)
    _change(out, changes)
    return out


def _value(result: dict, **changes) -> dict:
    out = copy.deepcopy(result)
    _change(out["value"], changes)
    return out


_DEL = object()
PD, TD = point_data("clip-1", "bad 5"), track_data()
AMA = video_data("ask_model_anything")
AMA_RESULT = [text("question", "Why?"), text("answer", "Because.")]


def _ama(data: dict) -> list[dict]:
    return [task(TID, data, [annotation(AID, AMA_RESULT)])]


def _caption(stars) -> list[dict]:
    rating = {"id": "r", "type": "rating", "from_name": "quality", "to_name": "video", "value": {"rating": stars}}
    return [task(TID, video_data("caption"), [annotation(AID, [text("caption", "A dog runs."), rating])])]


def _annotation_with(**changes) -> list[dict]:
    out = _point()
    _change(out[0]["annotations"][0], changes)
    return out


# error type -> builders of one-defect exports
CASES = {
    # a track whose sequence is empty, or holds only interpolated frames past the clip, vanished silently
    "empty_track": [
        lambda: _track(result=[track("a", SEQ_A), track("b", [])]),
        lambda: _track(result=[track("a", SEQ_A), track("b", [dict(kf(21, 5, 5), auto=True)])]),
    ],
    # frames / timestamps / frame_indices (and the track's frame map) that do not agree
    "inconsistent_task": [
        lambda: _point(_with(PD, frames=PD["frames"][:-1])),
        lambda: _point(_with(PD, timestamps=PD["timestamps"] + [4.5])),
        lambda: _point(_with(PD, frame_indices=PD["frame_indices"][1:])),
        lambda: _track(_with(TD, frame_indices=TD["frame_indices"][:-1])),
        lambda: _track(_with(TD, frame_count=19)),
        lambda: _track(_with(TD, frame_times=[t * 2 for t in TD["frame_times"]])),
        lambda: _track(_with(TD, fps=10.0)),
        lambda: [task(TID, _with(image_set_data(), image_ids=["img-0", "img-1"]), [annotation(AID, [])])],
    ],
    # media missing, or outside the media root
    "missing_field": [
        lambda: _track(_with(TD, video=_DEL)),
        lambda: _ama(_with(AMA, video=_DEL)),
        lambda: _point(_with(PD, frames=_DEL)),
        lambda: _point(_with(PD, frame_indices=_DEL)),
        lambda: _track(_with(TD, frame_indices=_DEL)),
        lambda: _track(result=[_value(track("a", SEQ_A), framesCount=_DEL)]),
        lambda: _track(result=[_value(track("a", SEQ_A), duration=_DEL)]),
        lambda: _track(result=[track("a", [{k: v for k, v in kf(3, 5, 5).items() if k != "x"}])]),
        lambda: _track(result=[{k: v for k, v in track("a", SEQ_A).items() if k != "from_name"}]),
        lambda: _track(result=[{k: v for k, v in track("a", SEQ_A).items() if k != "value"}]),
        lambda: _annotation_with(was_cancelled=_DEL),
        lambda: _annotation_with(result=_DEL),
    ],
    "bad_media": [
        lambda: _track(_with(TD, video="/data/local-files/?d=../../etc/clip-1.mp4")),
        lambda: _track(_with(TD, video="/data/local-files/?d=/etc/video/clip-1.mp4")),
        lambda: _track(_with(TD, video="file:///data/video/clip-1.mp4")),
        lambda: _track(_with(TD, video="/data/local-files/?x=proj/video/clip-1.mp4")),
        lambda: _ama(_with(AMA, video="/data/local-files/?d=proj/../../video/clip-1.mp4")),
        lambda: _point(_with(PD, frames=PD["frames"][:3] + ["/data/local-files/?d=../x/clip-1/003.jpg"]
                             + PD["frames"][4:])),
        lambda: [task(TID, _with(image_set_data(), images=["/data/local-files/?d=/img/0.jpg"] * 3),
                      [annotation(AID, [])])],
    ],
    # the labels were made on another video, or on this one at another frame rate
    "clip_mismatch": [
        lambda: _track(_with(TD, video=media_url("video/clip-2.mp4"))),
        lambda: _ama(_with(AMA, video=media_url("video/clip-2.mp4"))),
        lambda: _point(_with(PD, frames=[u.replace("clip-1", "clip-2") for u in PD["frames"]])),
        lambda: _point(_with(PD, frames=PD["frames"][1:] + PD["frames"][:1])),  # frames out of order
        lambda: _track(result=[_value(track("a", SEQ_A), framesCount=40, duration=4.0)]),  # same video at 10 fps
        lambda: _track(result=[_value(track("a", SEQ_A), framesCount=20, duration=2.0)]),  # 20 frames at 10 fps
        lambda: _track(result=[_value(track("a", SEQ_A), framesCount=30, duration=6.0)]),  # another video
        lambda: _track(result=[_value(track("a", SEQ_A), framesCount=18)]),
        lambda: _point(_with(PD, timestamps=[t + 0.25 for t in PD["timestamps"]])),  # not the clip's times
        lambda: _point(_with(PD, frame_indices=[i + 1 for i in PD["frame_indices"]])),
        lambda: _track(_with(TD, frame_indices=[i + 1 for i in TD["frame_indices"]])),
        lambda: _track(_with(TD, fps=10.0, frame_times=[i / 10.0 for i in range(20)])),
        lambda: _ama(_with(AMA, fps=25.0)),
        lambda: _track(_with(TD, video_id="vid-9")),
        lambda: _track(_with(TD, width=320)),
    ],
    "bad_value": [
        lambda: _point(result=[keypoint("k1", 2, math.nan, 20.0)]),
        lambda: _point(result=[keypoint("k1", 2, 10.0, math.inf)]),
        lambda: _point(result=[keypoint("k1", "2", 10.0, 20.0)]),
        lambda: _point(result=[keypoint("k1", 2.0, 10.0, 20.0)]),
        lambda: _track(result=[_value(track("a", SEQ_A), framesCount=math.nan)]),
        lambda: _track(result=[_value(track("a", SEQ_A), duration="4")]),
        lambda: _track(result=[track("a", [dict(kf(3, 5, 5), width=math.nan)])]),
        lambda: _track(_with(TD, fps=math.nan)),
        lambda: _track(_with(TD, video=7)),
        lambda: _point(_with(PD, frame_indices=[-1] + PD["frame_indices"][1:])),
        lambda: _point(_with(PD, frame_indices=[0.0] + PD["frame_indices"][1:])),
        lambda: _point(_with(PD, timestamps=list(reversed(PD["timestamps"])))),
        lambda: _track(result=[dict(track("a", SEQ_A), type="rectanglelabels")]),
        lambda: _track(result=[dict(track("a", SEQ_A), to_name="frames")]),
        lambda: _annotation_with(was_cancelled="false"),
        lambda: _annotation_with(result={"0": keypoint("k1", 2, 10.0, 20.0)}),
        lambda: _caption(4.5),
        lambda: _caption("4"),
    ],
    "out_of_range": [
        lambda: _point(result=[keypoint("k1", 2, -0.5, 20.0)]),
        lambda: _point(result=[keypoint("k1", 2, 10.0, 100.5)]),
        lambda: _track(result=[track("a", [kf(3, 5, -1.0)])]),
        lambda: _track(result=[track("a", [kf(3, 95.0, 5, w=20.0)])]),  # centre beyond the right edge
        lambda: _caption(6),
        lambda: _caption(-1),
    ],
    "frame_out_of_clip": [
        lambda: _point(result=[keypoint("k1", 9, 10.0, 20.0)]),
        lambda: _point(result=[keypoint("k1", -1, 10.0, 20.0)]),
        lambda: _track(result=[track("a", [kf(0, 5, 5)])]),
    ],
    "unknown_control": [  # a control the project does not know, writing a result type its config uses
        lambda: _point(result=[dict(keypoint("k1", 2, 10.0, 20.0), from_name="pointz")]),
        lambda: _track(result=[track("a", SEQ_A), dict(track("b", SEQ_B), from_name="boxes")]),
    ],
    "duplicate_id": [
        lambda: _point(result=[keypoint("k1", 2, 10.0, 20.0), keypoint("k1", 3, 30.0, 40.0)]),
        lambda: _track(result=[track("a", SEQ_A), track("a", SEQ_B)]),
    ],
}


def _annotation_outcome(out, tid: int = TID, aid: int = AID) -> list[dict]:
    return [f for f in out.failures if f"task {tid}" in f["message"]]


@pytest.mark.parametrize("error_type,i", [(e, i) for e, builders in sorted(CASES.items())
                                          for i in range(len(builders))])
def test_one_defect_is_one_failure_naming_task_annotation_and_reason(error_type, i):
    export = CASES[error_type][i]() + [good_point_task(1, 11)]
    out = normalize(export, CLIPS)
    failures = _annotation_outcome(out)
    assert [f["error_type"] for f in failures] == [error_type], [f["message"] for f in out.failures]
    (failure,) = failures
    assert f"task {TID} annotation {AID}" in failure["message"]
    assert failure["input_id"] == f"task {TID} annotation {AID}"
    validate("failure", failure)
    assert [r["label"] for r in out.records["VideoPoint"]] == ["good 1"]  # nothing of task 5 is kept
    assert sum(len(v) for v in out.records.values()) == 1 and out.review == []


def test_the_unchanged_cases_pass():
    """The builders above are good exports until one thing is changed."""
    for export in (_point(), _track(), _ama(AMA), _caption(5), _caption(0),
                   _track(result=[_value(track("a", SEQ_A), framesCount=21)]),
                   _track(result=[_value(track("a", SEQ_A), framesCount=19, duration=3.9)])):
        out = normalize(export, CLIPS)
        assert out.failures == [] and sum(len(v) for v in out.records.values()) == 1, out.failures


NOTES = {"id": "n1", "type": "textarea", "from_name": "notes", "to_name": "video", "origin": "manual",
         "value": {"text": ["looks fine"]}}
"""A result of a control the video_track config does not have, writing a type it never writes."""
TIMELINE = {"id": "tl1", "type": "timelinelabels", "from_name": "videoLabels", "to_name": "video",
            "origin": "manual", "value": {"ranges": [{"start": 3, "end": 9}], "timelinelabels": ["running"]}}
"""A timeline result of an unknown control: the config now writes timelinelabels (``occluded``)."""
RELATION = {"type": "relation", "from_id": "a", "to_id": "b", "direction": "right"}
"""A relation of two box tracks: it links no occluded span."""


@pytest.mark.parametrize("extra, error_type", [(NOTES, "unknown_control"), (dict(NOTES, from_name=None),
                                                                             "unknown_control"),
                                               (RELATION, "unused_relation")])
def test_a_result_the_record_does_not_need_fails_alone_and_the_good_tracks_are_kept(extra, error_type):
    out = normalize(_track(result=[track("a", SEQ_A), extra, track("b", SEQ_B)]), CLIPS)
    (rec,) = out.records["VideoTrack"]
    clean = normalize(_track(), CLIPS).records["VideoTrack"][0]
    assert rec == clean and len(rec["objects"]) == 2
    (failure,) = out.failures
    assert failure["error_type"] == error_type
    assert f"task {TID} annotation {AID} result" in failure["message"]
    assert failure["input_id"].startswith(f"task {TID} annotation {AID} result")
    validate("failure", failure)


def test_a_timeline_of_an_unknown_control_fails_the_annotation():
    """The config writes timelinelabels (occluded spans): an unknown control writing them may hold them."""
    out = normalize(_track(result=[track("a", SEQ_A), TIMELINE]), CLIPS)
    assert [f["error_type"] for f in out.failures] == ["unknown_control"] and "VideoTrack" not in out.records
    assert "from_name 'videoLabels' is not a control of the video_track config" in out.failures[0]["message"]


def test_unknown_results_next_to_a_bad_one_are_reported_with_the_annotation():
    out = normalize(_track(result=[track("a", SEQ_A), NOTES, track("b", [])]), CLIPS)
    assert [f["error_type"] for f in out.failures] == ["empty_track"] and "VideoTrack" not in out.records


def test_every_failure_key_is_unique_across_result_and_annotation_failures():
    export = (_track(result=[track("a", SEQ_A), NOTES, dict(NOTES, id="n2")])
              + [task(6, point_data("clip-1", "x"), [annotation(60, [keypoint("k", 99, 1, 1)])])])
    out = normalize(export, CLIPS)
    assert sorted(f["error_type"] for f in out.failures) == ["frame_out_of_clip", "unknown_control", "unknown_control"]
    assert len({f["key"] for f in out.failures}) == 3


@pytest.mark.parametrize("duration,max_frames", [(8.0, 16), (70.0, 128)])
def test_points_off_the_half_second_grid_are_held_for_review_never_dropped(duration, max_frames):
    """A clip pushed before push checked the grid: its labels wait for a person, with what to do."""
    times = sample_times(duration, max_frames)
    c = dict(clip("clip-9"), start=0.0, end=duration, timestamps=times, frame_indices=[round(t * 30) for t in times],
             max_frames=max_frames)
    data = video_point_task(c, "dogs", "dog", lambda i: media_url(f"frames/clip-9/{i:03d}.jpg"),
                            video_duration=max(VIDEO["duration"], duration), source=VIDEO["source"])
    result = [keypoint("a", 0, 10.0, 10.0), keypoint("b", 3, 20.0, 20.0), keypoint("c", len(times) - 1, 5.0, 5.0)]
    out = normalize([task(7, data, [annotation(70, result)]), good_point_task(1, 11)], {**CLIPS, "clip-9": c})
    assert out.failures == [] and [r["label"] for r in out.records["VideoPoint"]] == ["good 1"]
    (item,) = out.review
    assert item.task_id == 7 and "0.5 s grid" in item.reasons[0] and "--window 63" in item.reasons[0]
    (candidate,) = item.candidates
    assert [p["time"] for p in candidate["points"]] == [0.0, times[3], duration]  # every label is kept
    on_grid = normalize([task(7, data, [annotation(70, [result[0], result[2]])])], {"clip-9": c})
    assert on_grid.review == [] and on_grid.records["VideoPoint"][0]["count"] == 2  # 0 s and the last frame
