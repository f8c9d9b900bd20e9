"""schemas.metrics: point, video point, count, track, multiple-choice and free-form QA metrics."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation import agreement
from schemas import metrics
from schemas.metrics import (
    choice_correct,
    count_close,
    count_scores,
    multiple_choice_accuracy,
    normalized_match,
    read_choice,
    score_point_text,
    score_track_text,
    token_f1,
    track_array,
    track_scores,
    video_point_scores,
)
from schemas.pointing import format_multi_image_points, format_video_points, format_video_tracks


def test_agreement_uses_the_schemas_definitions():
    # one definition: annotation re-exports these, it does not define its own
    for name in ("PointScores", "match_points", "point_scores", "normalize_text"):
        assert getattr(agreement, name) is getattr(metrics, name)


@pytest.mark.parametrize("true, low, high", [(0, 0, 1), (1, 0, 2), (10, 9, 11), (19, 18, 20), (20, 18, 22),
                                            (40, 37, 43), (100, 94, 106)])
def test_count_close_rule(true, low, high):
    # |pred - true| <= 1 + floor(0.05 * true): the tolerance is 1 below 20, 2 from 20, 3 from 40 ...
    assert all(count_close(p, true) for p in range(low, high + 1))
    assert not count_close(high + 1, true)
    assert low == 0 or not count_close(low - 1, true)


@pytest.mark.parametrize("text, true, expected", [
    ("Counting the <points coords=\"1 1 100 100\">cup</points> shows a total of 3.", 3, (3, True, True)),
    ("There are 4 <points coords=\"1 1 100 100\">cup</points>.", 3, (4, False, True)),
    ("5", 3, (5, False, False)),
    ("There are none.", 0, (0, True, True)),
    ("I cannot tell.", 0, (None, False, False)),
])
def test_count_scores_read_the_count_from_text(text, true, expected):
    s = count_scores(text, true)
    assert (s["count"], s["exact"], s["close"]) == expected


def test_video_points_match_over_normalized_time():
    true = [(1.0, 0.5, 0.5), (9.0, 0.2, 0.2)]
    # 1.0 s vs 1.5 s over a 20 s clip is 0.025 apart in t/duration: a hit at 0.05, not at 0.02
    pred = [(1.5, 0.5, 0.5), (9.0, 0.8, 0.8)]
    s = video_point_scores(true, pred, duration=20.0, max_distance=0.05)
    assert (len(s.matches), s.precision, s.recall) == (1, 0.5, 0.5)
    assert len(video_point_scores(true, pred, duration=20.0, max_distance=0.02).matches) == 0
    assert video_point_scores([], [], 10.0).f1 == 1.0


def test_point_text_scores_within_groups_or_over_time():
    target = format_video_points([0.5, 2.0], [[(0.1, 0.2), (0.3, 0.4)], [(0.5, 0.6)]], "dog", "point")
    assert score_point_text(target, target).f1 == 1.0
    moved = format_video_points([0.5, 2.5], [[(0.11, 0.2)], [(0.5, 0.6)]], "dog", "point_then_count")
    same_frame = score_point_text(moved, target)  # the 2.5 s point is on another frame
    assert (len(same_frame.matches), same_frame.n_a, same_frame.n_b) == (1, 3, 2)
    over_time = score_point_text(moved, target, duration=60.0)  # 0.5 s / 60 s is close enough
    assert len(over_time.matches) == 2
    multi = format_multi_image_points([1, 3], [[(0.1, 0.1)], [(0.9, 0.9)]], "cup", "point")
    wrong_image = format_multi_image_points([2, 3], [[(0.1, 0.1)], [(0.9, 0.9)]], "cup", "point")
    assert score_point_text(wrong_image, multi).f1 == 0.5
    assert score_point_text("There are none.", "There are none.").f1 == 1.0


def _tracks(frames: dict[float, dict[int, tuple[float, float]]]) -> str:
    entries = [{"time": t, "points": {k: {"point": xy} for k, xy in objs.items()}} for t, objs in frames.items()]
    return format_video_tracks(entries, "car")


def test_track_text_f1_and_id_switches():
    target = _tracks({0.0: {"a": (0.1, 0.5), "b": (0.9, 0.5)}, 0.5: {"a": (0.2, 0.5), "b": (0.8, 0.5)},
                      1.0: {"a": (0.3, 0.5), "b": (0.7, 0.5)}})
    assert score_track_text(target, target) == {"frame_f1": 1.0, "precision": 1.0, "recall": 1.0, "matches": 6.0,
                                                "id_switches": 0.0, "true_points": 6.0, "pred_points": 6.0}
    swapped = ('<tracks coords="0.0 1 100 500 2 900 500;0.5 1 200 500 2 800 500;'
               '1.0 2 300 500 1 700 500">car</tracks>')  # the ids swap at 1.0 s
    s = score_track_text(swapped, target)
    assert s["frame_f1"] == 1.0 and s["id_switches"] == 2.0
    dup = '<tracks coords="0.0 1 100 500;0.0 1 100 500 2 900 500">car</tracks>'  # a repeated entry costs precision
    d = score_track_text(dup, _tracks({0.0: {"a": (0.1, 0.5), "b": (0.9, 0.5)}}))
    assert (d["matches"], d["precision"], d["recall"]) == (2.0, pytest.approx(2 / 3), 1.0)
    assert score_track_text("No tracks available.", "No tracks available.")["frame_f1"] == 1.0


def _track_record(objects):
    return {"timestamps": [0.0, 0.5, 1.0], "objects": [{"object_id": i + 1, "points": pts}
                                                        for i, pts in enumerate(objects)]}


def test_track_array_treats_absent_and_occluded_alike():
    rec = _track_record([[{"x": 0.1, "y": 0.2}, None, {"x": 0.3, "y": 0.4, "occluded": True}]])
    arr = track_array(rec)
    assert arr[0, 0].tolist() == [0.1, 0.2] and math.isnan(arr[0, 1, 0]) and math.isnan(arr[0, 2, 0])
    full = _track_record([[{"x": 0.1, "y": 0.2}, {"x": 0.2, "y": 0.2}, {"x": 0.3, "y": 0.4}]])
    s = track_scores(full, rec)
    assert s["frame_f1"] == pytest.approx(2 / 4) and s["matched_objects"] == 1.0


@pytest.mark.parametrize("text, letter", [("B. a red cube", "B"), ("(C) yes", "C"), ("D", "D"), (" A)", "A"),
                                          ("E: maybe", "E"), ("A dog", None), ("", None), ("b. lower", None)])
def test_read_choice(text, letter):
    assert read_choice(text) == letter


def test_multiple_choice_accuracy():
    targets = ["B. a red cube", "A. two", "C. left"]
    assert choice_correct("B", targets[0]) and choice_correct("a red cube.", targets[0])
    assert not choice_correct("C. a red cube", targets[0])  # the letter decides when both have one
    assert multiple_choice_accuracy(["B. a red cube", "two", "A. left"], targets) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        multiple_choice_accuracy(["A"], targets)


def test_free_form_normalized_match_and_token_f1():
    assert normalized_match("The dog, it RUNS!", "the dog it runs")
    assert not normalized_match("a cat", "a dog")
    assert token_f1("a red cube", "the red cube") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 30), st.floats(0, 1), st.floats(0, 1)), max_size=12))
def test_video_point_scores_of_a_set_against_itself(points):
    s = video_point_scores(points, points, duration=30.0)
    assert s.f1 == 1.0 and len(s.matches) == len(points)
