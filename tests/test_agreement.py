"""Tests for annotation.agreement: point matching, track and text agreement, merge or review."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation.agreement import (
    AgreementConfig,
    assess,
    match_points,
    normalize_text,
    point_scores,
    track_scores,
)
from schemas.records import validate

coord = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
point_sets = st.lists(st.tuples(coord, coord), min_size=0, max_size=25)
THRESHOLD = 0.05


@settings(max_examples=200, deadline=None)
@given(point_sets)
def test_f1_of_a_set_against_itself_is_one(points):
    s = point_scores(points, points, THRESHOLD)
    assert s.f1 == 1.0 and s.precision == 1.0 and s.recall == 1.0 and len(s.matches) == len(points)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_f1_against_a_perturbed_copy_within_threshold_is_one(data):
    points = data.draw(point_sets)
    # each coordinate moved by at most threshold / 2: the displacement is at most threshold / sqrt(2)
    step = st.floats(min_value=-THRESHOLD / 2, max_value=THRESHOLD / 2, allow_nan=False)
    moved = [(x + data.draw(step), y + data.draw(step)) for x, y in points]
    order = data.draw(st.permutations(range(len(points))))
    shuffled = [moved[i] for i in order]
    assert point_scores(points, shuffled, THRESHOLD).f1 == 1.0


@settings(max_examples=100, deadline=None)
@given(point_sets, point_sets)
def test_scores_are_symmetric_and_bounded(a, b):
    ab, ba = point_scores(a, b, THRESHOLD), point_scores(b, a, THRESHOLD)
    assert len(ab.matches) == len(ba.matches)
    assert ab.f1 == pytest.approx(ba.f1) and ab.precision == pytest.approx(ba.recall)
    assert 0.0 <= ab.f1 <= 1.0


def test_matching_maximizes_the_number_of_pairs_not_greedy_nearest():
    # greedy nearest would pair a0-b0 (0.01 apart) and leave a1 and b1 unmatched
    a = [(0.50, 0.5), (0.47, 0.5)]
    b = [(0.51, 0.5), (0.54, 0.5)]
    assert match_points(a, b, 0.05) == [(0, 1), (1, 0)]


def test_groups_keep_points_of_different_frames_apart_and_empty_sets():
    assert match_points([(0.5, 0.5)], [(0.5, 0.5)], 0.05, [0.5], [1.0]) == []
    assert point_scores([], [], 0.05).f1 == 1.0
    empty_b = point_scores([(0.1, 0.1)], [], 0.05)
    assert (empty_b.precision, empty_b.recall, empty_b.f1) == (1.0, 0.0, 0.0)


def test_normalize_text():
    assert normalize_text("  The DOG, it runs!\n") == normalize_text("the dog it runs")
    assert normalize_text("Ｃａｆé…") == "café"
    assert normalize_text("a cat") != normalize_text("a dog")


def test_config_fails_fast():
    with pytest.raises(ValueError):
        AgreementConfig(point_distance=0)
    with pytest.raises(ValueError):
        AgreementConfig(min_point_f1=1.5)
    with pytest.raises(ValueError):
        AgreementConfig(video_time="nearest")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- records


PROVENANCE = {"method": "human", "project": "p", "snapshot_version": 1, "task_id": 1, "annotation_ids": [1],
              "annotators": ["1"]}


def video_point(key: str, points: list[tuple[float, float, float]], unsure: bool = False) -> dict:
    pts = [{"time": t, "x": x, "y": y} for t, x, y in sorted(points)]
    return {"key": key, "provenance": PROVENANCE, "video_id": "v", "clip_id": "c", "clip_start": 0.0,
            "clip_end": 10.0, "source": "ls",
            "duration": 10.0, "label": "dog", "question": "dogs", "count": len(pts), "points": pts,
            "category": "object", "annotator_unsure": unsure}


def test_video_points_same_frame_versus_normalized_time():
    a = video_point("a", [(1.0, 0.5, 0.5)])
    b = video_point("b", [(1.5, 0.5, 0.5)])  # the same place one sampled frame later
    same = assess("VideoPoint", [a, b], ["1", "2"], "m")
    assert same.decision == "review" and same.figures["f1"] == 0.0
    # normalized: (0.5 s / 10 s) = 0.05 apart, within 0.06
    loose = assess("VideoPoint", [a, b], ["1", "2"], "m", AgreementConfig(video_time="normalized", point_distance=0.06))
    assert loose.decision == "merged" and loose.merged["points"] == [{"time": 1.0, "x": 0.5, "y": 0.5}]


def test_three_annotators_keep_points_everyone_matched():
    a = video_point("a", [(1.0, 0.2, 0.2), (2.0, 0.6, 0.6)] + [(3.0, 0.1 * i, 0.9) for i in range(1, 9)])
    b = video_point("b", [(1.0, 0.21, 0.2), (2.0, 0.6, 0.61)] + [(3.0, 0.1 * i, 0.9) for i in range(1, 9)],
                    unsure=True)
    c = video_point("c", [(1.0, 0.23, 0.2)] + [(3.0, 0.1 * i, 0.9) for i in range(1, 9)])
    agr = assess("VideoPoint", [a, b, c], ["1", "2", "3"], "merged-key")
    assert agr.decision == "merged" and len(agr.pairs) == 3
    assert agr.figures["f1"] == pytest.approx(2 * 9 / 19)  # the worst pair: a or b against c
    merged = agr.merged
    assert merged["key"] == "merged-key" and merged["count"] == 9 and merged["annotator_unsure"] is True
    assert merged["points"][0] == {"time": 1.0, "x": pytest.approx((0.2 + 0.21 + 0.23) / 3),
                                   "y": pytest.approx(0.2)}
    assert [p["time"] for p in merged["points"]] == [1.0] + [3.0] * 8  # c has no point at 2 s
    validate("VideoPoint", merged)


def test_multi_image_points_match_only_within_an_image():
    rec = {"key": "k", "image_set_id": "s", "image_ids": ["i0", "i1"], "label": "cup", "question": "cups"}
    a = {**rec, "count": 1, "points": [{"image_index": 0, "x": 0.5, "y": 0.5}]}
    b = {**rec, "count": 1, "points": [{"image_index": 1, "x": 0.5, "y": 0.5}]}
    agr = assess("MultiImagePoint", [a, b], ["1", "2"], "m")
    assert agr.decision == "review" and agr.figures["matches"] == 0.0


def video_track(key: str, objects: list[list[tuple[float, float] | str | None]]) -> dict:
    """A track; per frame (x, y) visible, ``"occluded"`` (no position) or None (absent)."""
    n = len(objects[0]) if objects else 4

    def entry(p):
        if p is None:
            return None
        if p == "occluded":
            return {"x": None, "y": None, "occluded": True}
        return {"x": p[0], "y": p[1], "occluded": False}

    return {"key": key, "provenance": PROVENANCE, "video_id": "v", "clip_id": "c", "clip_start": 0.0,
            "clip_end": 2.0, "source": "ls",
            "expression": "dogs", "fps": 2.0, "width": 64, "height": 48, "start_frame": 0, "end_frame": n - 1,
            "timestamps": [i * 0.5 for i in range(n)],
            "objects": [{"object_id": i + 1, "points": [entry(p) for p in obj]} for i, obj in enumerate(objects)]}


LEFT = [(0.1, 0.5), (0.2, 0.5), (0.3, 0.5), (0.4, 0.5), (0.5, 0.5)]
RIGHT = [(0.9, 0.5), (0.8, 0.5), (0.7, 0.5), (0.6, 0.5), (0.5, 0.6)]


def test_track_agreement_identical_and_shifted_tracks_merge():
    a = video_track("a", [LEFT, RIGHT])
    b = video_track("b", [[(x + 0.01, y) for x, y in RIGHT], [(x + 0.01, y) for x, y in LEFT]])  # ids in another order
    scores = track_scores(a, b)
    assert scores["frame_f1"] == 1.0 and scores["id_switches"] == 0.0 and scores["id_consistency"] == 1.0
    assert scores["matched_objects"] == 2.0 and scores["mean_distance"] == pytest.approx(0.01)
    agr = assess("VideoTrack", [a, b], ["1", "2"], "m")
    assert agr.decision == "merged"
    first = agr.merged["objects"][0]["points"]
    assert first[0] == {"x": pytest.approx(0.105), "y": pytest.approx(0.5), "occluded": False}
    validate("VideoTrack", agr.merged)


def test_track_id_swap_and_occlusion_are_counted():
    a = video_track("a", [LEFT, RIGHT])
    swapped = video_track("b", [LEFT[:3] + RIGHT[3:], RIGHT[:3] + LEFT[3:]])  # ids swap after frame 3
    scores = track_scores(a, swapped)
    assert scores["frame_f1"] == 1.0 and scores["id_switches"] == 2.0 and scores["id_consistency"] == pytest.approx(0.6)
    agr = assess("VideoTrack", [a, swapped], ["1", "2"], "m")
    assert agr.decision == "review" and any("id switches" in r for r in agr.reasons)
    hidden = video_track("c", [LEFT[:1] + [None] * 4, RIGHT])
    partial = track_scores(a, hidden)
    assert partial["frame_f1"] == pytest.approx(2 * 6 / 16) and partial["id_switches"] == 0.0
    assert assess("VideoTrack", [a, hidden], ["1", "2"], "m").decision == "review"


def test_track_occluded_in_one_annotation_keeps_the_other_in_the_merge():
    a = video_track("a", [LEFT])
    b = video_track("b", [LEFT[:4] + [None]])
    agr = assess("VideoTrack", [a, b], ["1", "2"], "m", AgreementConfig(min_track_f1=0.8))
    assert agr.decision == "merged" and agr.figures["frame_f1"] == pytest.approx(8 / 9)
    assert agr.merged["objects"][0]["points"][4] == {"x": 0.5, "y": 0.5, "occluded": False}
    assert not math.isnan(agr.figures["mean_distance"])


def test_merged_track_keeps_occluded_apart_from_absent():
    a = video_track("a", [LEFT[:2] + ["occluded", None, LEFT[4]]])
    b = video_track("b", [LEFT[:2] + ["occluded", "occluded", LEFT[4]]])
    agr = assess("VideoTrack", [a, b], ["1", "2"], "m")
    assert agr.decision == "merged" and agr.figures["frame_f1"] == 1.0  # occlusion is not scored per frame
    points = agr.merged["objects"][0]["points"]
    # nobody sees it at frames 2 and 3; someone marks it occluded there, so it is occluded, not absent
    assert points[2] == points[3] == {"x": None, "y": None, "occluded": True}
    assert points[4] == {"x": 0.5, "y": 0.5, "occluded": False}
    placed = video_track("c", [LEFT[:2] + [None, None, LEFT[4]]])
    placed["objects"][0]["points"][3] = {"x": 0.4, "y": 0.5, "occluded": True}  # an estimated position
    merged = assess("VideoTrack", [a, placed], ["1", "2"], "m").merged["objects"][0]["points"]
    assert merged[2] == {"x": None, "y": None, "occluded": True} and merged[3] == {"x": 0.4, "y": 0.5,
                                                                                   "occluded": True}
    never = assess("VideoTrack", [video_track("d", [LEFT[:2] + [None, None, LEFT[4]]])] * 2, ["1", "2"], "m")
    assert never.merged["objects"][0]["points"][2] is None  # absent for both: absent
    validate("VideoTrack", agr.merged)


def test_multi_image_qa_pairs_agree_in_order():
    rec = {"key": "k", "provenance": PROVENANCE, "image_set_id": "s", "image_ids": ["i0", "i1"]}
    a = {**rec, "qa_pairs": [{"question": "Which image has more dots?", "answer": "Image 2."},
                             {"question": "How many dots in all?", "answer": "Seven"}]}
    b = {**rec, "qa_pairs": [{"question": "which image has more dots", "answer": "image 2"},
                             {"question": "How many dots in all?", "answer": "seven."}]}
    agr = assess("MultiImageQA", [a, b], ["1", "2"], "m")
    assert agr.decision == "merged" and agr.merged["qa_pairs"] == a["qa_pairs"] and agr.merged["key"] == "m"
    fewer = {**b, "qa_pairs": b["qa_pairs"][:1]}
    assert assess("MultiImageQA", [a, fewer], ["1", "2"], "m").decision == "review"
    other = {**b, "qa_pairs": [b["qa_pairs"][0], {"question": "How many dots in all?", "answer": "Six"}]}
    worse = assess("MultiImageQA", [a, other], ["1", "2"], "m")
    assert worse.decision == "review" and "qa_pairs differ" in worse.reasons[0]


def test_text_exact_and_normalized_match():
    base = {"key": "k", "video_id": "v", "clip_id": "c", "clip_start": 0.0, "clip_end": 1.0}
    a = {**base, "question": "What runs?", "answer": "The dog."}
    b = {**base, "question": "what runs", "answer": "the  dog"}
    agr = assess("AskModelAnything", [a, b], ["1", "2"], "m")
    assert agr.decision == "merged" and agr.figures["exact"] == 0.0 and agr.figures["normalized"] == 1.0
    assert agr.merged["answer"] == "The dog."
    c = {**base, "question": "What runs?", "answer": "A cat."}
    bad = assess("AskModelAnything", [a, c], ["1", "2"], "m")
    assert bad.decision == "review" and bad.figures["token_f1"] == 0.0 and "differ" in bad.reasons[0]
    cap = {**base, "clip_caption": "A dog runs.", "annotation_score": 4.0}
    both = assess("Cap", [cap, {**cap, "annotation_score": None}, {**cap, "annotation_score": 2.0}], ["1", "2", "3"], "m")
    assert both.decision == "merged" and both.merged["annotation_score"] == 3.0


def test_assess_rejects_bad_calls():
    with pytest.raises(ValueError):
        assess("VideoPoint", [video_point("a", [])], ["1"], "m")
    with pytest.raises(ValueError):
        assess("CapQA", [{}, {}], ["1", "2"], "m")
