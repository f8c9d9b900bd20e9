"""Tests for schemas.pointing: spec examples byte for byte, ordering rules, round trips, parsers."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.pointing import (
    MODES,
    PointMark,
    TrackMark,
    format_image_points,
    format_multi_image_points,
    format_video_points,
    format_video_tracks,
    parse_count,
    parse_points,
    parse_tracks,
)

PENGUIN = '<points coords="0.5 1 100 200 2 305 400;2.0 3 550 600">penguin</points>'
DOG = '<points coords="1 1 156 104 2 469 417">dog</points>'
PERSON = '<tracks coords="0.0 1 078 417 2 156 208;0.5 1 094 396">person</tracks>'


def vis(x: float, y: float) -> dict:
    return {"point": (x, y)}


def occ(x: float = 0.0, y: float = 0.0) -> dict:
    return {"point": (x, y), "occluded": True}


# ---------------------------------------------------------------- spec examples, byte for byte


def test_video_points_spec_example():
    # Points given out of order inside the group: the formatter sorts them by (X, Y).
    text = format_video_points([0.5, 2.0], [[(0.305, 0.4), (0.1, 0.2)], [(0.55, 0.6)]], "penguin", "point")
    assert text == PENGUIN


def test_single_image_spec_example():
    assert format_image_points([(0.469, 0.417), (0.156, 0.104)], "dog", "point") == DOG


def test_multi_image_group_index_is_the_image_number():
    text = format_multi_image_points([1, 3], [[(0.1, 0.2)], [(0.3, 0.4), (0.2, 0.9)]], "cup", "point")
    assert text == '<points coords="1 1 100 200;3 2 200 900 3 300 400">cup</points>'


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("point", DOG),
        ("point_then_count", f"Counting the {DOG} shows a total of 2."),
        ("count_then_point", f"There are 2 {DOG}."),
        ("count", "2"),
    ],
)
def test_all_four_modes(mode, expected):
    assert format_image_points([(0.156, 0.104), (0.469, 0.417)], "dog", mode) == expected


def test_counting_spec_example_total_of_3():
    text = format_video_points([0.5, 2.0], [[(0.1, 0.2), (0.305, 0.4)], [(0.55, 0.6)]], "penguin", "point_then_count")
    assert text == f"Counting the {PENGUIN} shows a total of 3."
    assert format_video_points([0.5, 2.0], [[(0.1, 0.2), (0.305, 0.4)], [(0.55, 0.6)]], "penguin", "count") == "3"


@pytest.mark.parametrize("mode", MODES)
def test_zero_count_is_there_are_none_in_every_mode(mode):
    assert format_image_points([], "dog", mode) == "There are none."
    assert format_video_points([], [], "dog", mode) == "There are none."
    assert format_video_points([0.0, 0.5], [[], []], "dog", mode) == "There are none."
    assert format_multi_image_points([1, 2], [[], []], "dog", mode) == "There are none."


def test_one_point_still_reads_there_are_1():
    one = '<points coords="1 1 500 500">cat</points>'
    assert format_image_points([(0.5, 0.5)], "cat", "count_then_point") == f"There are 1 {one}."
    assert format_image_points([(0.5, 0.5)], "cat", "point_then_count") == f"Counting the {one} shows a total of 1."


def test_alt_attribute_only_when_given():
    assert "alt=" not in format_image_points([(0.5, 0.5)], "cat", "point")
    assert format_image_points([(0.5, 0.5)], "cat", "point", alt_text="a cat") == (
        '<points alt="a cat" coords="1 1 500 500">cat</points>'
    )
    tracks = [{"time": 0.0, "points": {1: vis(0.5, 0.5)}}]
    assert format_video_tracks(tracks, "cat", alt_text="x") == '<tracks alt="x" coords="0.0 1 500 500">cat</tracks>'


def test_tracks_spec_example():
    tracks = [
        {"time": 0.0, "points": {"b": vis(0.156, 0.208), "a": vis(0.078, 0.417)}},
        {"time": 0.5, "points": {"a": vis(0.094, 0.396), "b": occ()}},
    ]
    assert format_video_tracks(tracks, "person") == PERSON


def test_no_tracks_available():
    assert format_video_tracks([], "person") == "No tracks available."
    assert format_video_tracks([], "person", start_end_only=True) == "No tracks available."


def test_tracks_with_nothing_visible_say_no_tracks():
    # the official formatter returns "" here; an empty target is useless, so we follow the spec text
    tracks = [{"time": 0.0, "points": {1: occ()}}, {"time": 0.5, "points": {}}]
    assert format_video_tracks(tracks, "p") == "No tracks available."


def test_rounding_half_to_even_on_the_binary_value_and_padding():
    assert round(1000.0 * 0.5015) == 501  # 0.5015 is stored as 0.50149999...
    assert format_image_points([(0.5015, 1.0)], "x", "point") == '<points coords="1 1 501 1000">x</points>'
    assert format_image_points([(0.0, 0.007)], "x", "point") == '<points coords="1 1 000 007">x</points>'
    assert format_image_points([(0.0625, 0.0425)], "x", "point") == '<points coords="1 1 062 042">x</points>'


def test_timestamps_print_with_one_decimal():
    text = format_video_points([0, 1.25, 63], [[(0.1, 0.1)], [(0.1, 0.1)], [(0.1, 0.1)]], "x", "point")
    assert text == '<points coords="0.0 1 100 100;1.2 2 100 100;63.0 3 100 100">x</points>'


def test_empty_group_among_others_prints_its_prefix_like_the_official_code():
    text = format_video_points([0.0, 0.5], [[], [(0.1, 0.2)]], "x", "point")
    assert text == '<points coords="0.0 ;0.5 1 100 200">x</points>'


# ---------------------------------------------------------------- ordering rules


def test_sort_is_on_the_rounded_integers_and_stable():
    # As floats 0.0996 < 0.1004, but both round to X = 100, so Y decides.
    text = format_image_points([(0.0996, 0.3), (0.1004, 0.2)], "x", "point")
    assert text == '<points coords="1 1 100 200 2 100 300">x</points>'


def test_ids_continue_across_groups_and_groups_keep_the_given_order():
    text = format_video_points([2.0, 0.5], [[(0.9, 0.9), (0.1, 0.1)], [(0.5, 0.5)]], "x", "point")
    assert text == '<points coords="2.0 1 100 100 2 900 900;0.5 3 500 500">x</points>'
    text = format_multi_image_points([3, 1], [[(0.2, 0.2)], [(0.1, 0.1)]], "x", "point")
    assert text == '<points coords="3 1 200 200;1 2 100 100">x</points>'


def test_track_ids_by_first_visibility_frames_by_time_and_invisible_frames_left_out():
    tracks = [
        {"time": 1.0, "points": {"late": vis(0.01, 0.01), "a": vis(0.9, 0.9), "b": vis(0.5, 0.5)}},
        {"time": 0.5, "points": {"late": occ(), "a": occ()}},  # nothing visible: left out
        {"time": 0.0, "points": {"a": vis(0.8, 0.1), "b": vis(0.2, 0.3), "late": occ()}},
    ]
    # t=0.0: b (200,300) before a (800,100) -> b=1, a=2; t=1.0: "late" first seen -> 3,
    # printed in id order although it has the smallest x.
    assert format_video_tracks(tracks, "p") == (
        '<tracks coords="0.0 1 200 300 2 800 100;1.0 1 500 500 2 900 900 3 010 010">p</tracks>'
    )


def test_track_frames_at_equal_times_keep_list_order_when_not_start_end():
    tracks = [{"time": 0.5, "points": {1: vis(0.1, 0.1)}}, {"time": 0.5, "points": {2: vis(0.2, 0.2)}}]
    assert format_video_tracks(tracks, "p") == '<tracks coords="0.5 1 100 100;0.5 2 200 200">p</tracks>'


def test_start_end_only_keeps_first_and_last_by_position_with_no_fallback():
    tracks = [
        {"time": 0.0, "points": {"a": vis(0.1, 0.1)}},
        {"time": 0.5, "points": {"a": vis(0.2, 0.2), "b": vis(0.5, 0.5)}},
        {"time": 1.0, "points": {"b": vis(0.6, 0.6)}},  # b's last visible point: not used
        {"time": 1.5, "points": {"a": vis(0.3, 0.3), "b": occ()}},  # b's last entry is occluded
    ]
    assert format_video_tracks(tracks, "p", start_end_only=True) == (
        '<tracks coords="0.0 1 100 100;0.5 2 500 500;1.5 1 300 300">p</tracks>'
    )


def test_start_end_only_uses_list_position_not_time():
    tracks = [
        {"time": 2.0, "points": {"a": vis(0.2, 0.2)}},
        {"time": 0.0, "points": {"a": vis(0.9, 0.9)}},  # earliest time but a middle position
        {"time": 1.0, "points": {"a": vis(0.1, 0.1)}},
    ]
    assert format_video_tracks(tracks, "p", start_end_only=True) == (
        '<tracks coords="1.0 1 100 100;2.0 1 200 200">p</tracks>'
    )


def test_start_end_only_merges_entries_at_equal_times():
    tracks = [
        {"time": 0.0, "points": {"a": vis(0.1, 0.1)}},
        {"time": 1.0, "points": {"a": vis(0.2, 0.2)}},
        {"time": 1.0, "points": {"b": vis(0.05, 0.05)}},
        {"time": 2.0, "points": {"b": vis(0.4, 0.4)}},
    ]
    assert format_video_tracks(tracks, "p", start_end_only=True) == (
        '<tracks coords="0.0 1 100 100;1.0 1 200 200 2 050 050;2.0 2 400 400">p</tracks>'
    )
    assert format_video_tracks(tracks, "p").count("1.0 ") == 2  # no merge without the option


def test_start_end_only_occluded_start_is_dropped_too():
    tracks = [
        {"time": 0.0, "points": {"a": occ()}},
        {"time": 0.5, "points": {"a": vis(0.3, 0.3)}},
        {"time": 1.0, "points": {"a": vis(0.4, 0.4)}},
    ]
    assert format_video_tracks(tracks, "p", start_end_only=True) == '<tracks coords="1.0 1 400 400">p</tracks>'


# ---------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: format_image_points([(1.2, 0.5)], "x", "point"), "outside"),
        (lambda: format_image_points([(0.5, -0.01)], "x", "point"), "outside"),
        (lambda: format_image_points([(math.nan, 0.5)], "x", "point"), "finite"),
        (lambda: format_image_points([(math.inf, 0.5)], "x", "point"), "finite"),
        (lambda: format_image_points([(True, 0.5)], "x", "point"), "real number"),
        (lambda: format_image_points([(0.1, 0.2, 0.3)], "x", "point"), "pair"),
        (lambda: format_image_points([(0.1, 0.2)], "x", "points"), "unknown mode"),
        (lambda: format_image_points([(0.1, 0.2)], "x", None), "unknown mode"),
        (lambda: format_image_points([(0.1, 0.2)], "a<b", "point"), "label"),
        (lambda: format_image_points([(0.1, 0.2)], "x", "point", alt_text='say "hi"'), "alt_text"),
        (lambda: format_video_points([0.5], [[], []], "x", "point"), "entries"),
        (lambda: format_video_points([-0.5], [[(0.1, 0.1)]], "x", "point"), ">= 0"),
        (lambda: format_video_points([math.nan], [[(0.1, 0.1)]], "x", "point"), "finite"),
        (lambda: format_multi_image_points([0], [[(0.1, 0.1)]], "x", "point"), "1-based"),
        (lambda: format_multi_image_points([1.0], [[(0.1, 0.1)]], "x", "point"), "1-based"),
        (lambda: format_multi_image_points([1, 2], [[(0.1, 0.1)]], "x", "point"), "entries"),
        (lambda: format_video_tracks([{"points": {}}], "x"), "'time'"),
        (lambda: format_video_tracks([{"time": -1.0, "points": {}}], "x"), ">= 0"),
        (lambda: format_video_tracks([{"time": 0.0, "points": {1: vis(2.0, 0.1)}}], "x"), "outside"),
        (lambda: format_video_tracks([{"time": 0.0, "points": {1: {}}}], "x"), "no 'point'"),
    ],
)
def test_invalid_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_occluded_points_are_not_checked():
    tracks = [{"time": 0.0, "points": {1: {"point": (math.nan, -5), "occluded": True}, 2: vis(0.5, 0.5)}}]
    assert format_video_tracks(tracks, "x") == '<tracks coords="0.0 1 500 500">x</tracks>'


# ---------------------------------------------------------------- parsers


def test_parse_spec_examples():
    assert parse_points(PENGUIN) == [
        PointMark(0.5, 1, 0.1, 0.2, "penguin", None),
        PointMark(0.5, 2, 0.305, 0.4, "penguin", None),
        PointMark(2.0, 3, 0.55, 0.6, "penguin", None),
    ]
    assert parse_points(f"Counting the {DOG} shows a total of 2.")[1] == PointMark(1.0, 2, 0.469, 0.417, "dog", None)
    assert parse_tracks(PERSON) == [
        TrackMark(0.0, 1, 0.078, 0.417, "person", None),
        TrackMark(0.0, 2, 0.156, 0.208, "person", None),
        TrackMark(0.5, 1, 0.094, 0.396, "person", None),
    ]
    assert parse_points(PERSON) == [] and parse_tracks(PENGUIN) == []
    assert parse_tracks("No tracks available.") == [] and parse_points("There are none.") == []


def test_parse_molmo_v1_forms():
    assert parse_points('<point x="10.5" y="20.3" alt="dog">dog</point>') == [
        PointMark(1.0, 1, 0.105, 0.203, "dog", "dog")
    ]
    text = 'Here: <points x1="10.0" y1="20.0" x2="30.5" y2="40.0" x3="150" y3="5" alt="dogs">dogs</points>'
    assert parse_points(text) == [  # the 0-100 scale; x3 = 150 is out of range and skipped
        PointMark(1.0, 1, 0.1, 0.2, "dogs", "dogs"),
        PointMark(1.0, 2, 0.305, 0.4, "dogs", "dogs"),
    ]


def test_parsers_skip_malformed_groups_and_points():
    text = '<points alt="a" coords="0.5 1 100 200 2 30;x 3 100 100;1.0 4 1001 500 5 250 250">a</points>'
    assert parse_points(text) == [PointMark(0.5, 1, 0.1, 0.2, "a", "a"), PointMark(1.0, 5, 0.25, 0.25, "a", "a")]
    assert parse_points('<points coords="1 1 100 200">') == [PointMark(1.0, 1, 0.1, 0.2, "", None)]  # truncated
    assert parse_points('<points coords="1 1 100 200\t2 2 300 400">') == [  # html-v1 tab groups
        PointMark(1.0, 1, 0.1, 0.2, "", None),
        PointMark(2.0, 2, 0.3, 0.4, "", None),
    ]
    assert parse_tracks('<tracks coords="0.5 1 100 100 1 200 200">t</tracks>') == [  # a repeated id is kept
        TrackMark(0.5, 1, 0.1, 0.1, "t", None), TrackMark(0.5, 1, 0.2, 0.2, "t", None)
    ]


def test_parsers_keep_every_point_when_a_group_repeats_a_timestamp():
    # issue 8: the official parser (extract_multi_image_points) returns all four entries
    coords = "0.2 1 612 964;0.2 2 403 253;0.2 1 634 1000 3 824 107"
    assert parse_tracks(f'<tracks coords="{coords}">car</tracks>') == [
        TrackMark(0.2, 1, 0.612, 0.964, "car", None), TrackMark(0.2, 2, 0.403, 0.253, "car", None),
        TrackMark(0.2, 1, 0.634, 1.0, "car", None), TrackMark(0.2, 3, 0.824, 0.107, "car", None),
    ]
    assert [(p.group, p.point_id, p.x, p.y) for p in parse_points(f'<points coords="{coords}">car</points>')] == [
        (0.2, 1, 0.612, 0.964), (0.2, 2, 0.403, 0.253), (0.2, 1, 0.634, 1.0), (0.2, 3, 0.824, 0.107),
    ]


def test_parsers_reject_non_str():
    for parser in (parse_points, parse_tracks, parse_count):
        with pytest.raises(ValueError, match="str"):
            parser(None)


@pytest.mark.parametrize(
    "text, count",
    [
        (f"Counting the {DOG} shows a total of 2.", 2),
        (f"There are 2 {DOG}.", 2),
        (f"There are 1 {DOG}.", 1),
        ("3", 3),
        (" 12. ", 12),
        ("There are none.", 0),
        ("none", 0),
        ('The total number of "dog" is: 4.', 4),
        ("I cannot tell.", None),
        (DOG, None),
        ("", None),
    ],
)
def test_parse_count(text, count):
    assert parse_count(text) == count


# ---------------------------------------------------------------- properties

coord = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
point = st.tuples(coord, coord)
group = st.lists(point, max_size=6)
half_seconds = st.integers(min_value=0, max_value=126).map(lambda k: k / 2)
label = st.text(st.characters(blacklist_characters="<", blacklist_categories=("Cs",)), max_size=12)
alt = st.none() | st.text(st.characters(blacklist_characters='"', blacklist_categories=("Cs",)), max_size=12)


def _check_round_trip(text, groups, mode, group_values):
    total = sum(len(g) for g in groups)
    assert parse_count(text) == (total if mode != "point" or total == 0 else None)
    parsed = parse_points(text)
    if mode == "count" or total == 0:
        assert parsed == []
        return
    assert [p.point_id for p in parsed] == list(range(1, total + 1))
    on = 0
    for value, pts in zip(group_values, groups):
        got = parsed[on:on + len(pts)]
        on += len(pts)
        assert all(p.group == value for p in got)
        # Sorted in both lists by the rounded integers, so they pair up one to one.
        want = sorted(pts, key=lambda p: (round(1000.0 * p[0]), round(1000.0 * p[1])))
        for (x, y), p in zip(want, got):
            assert abs(p.x - x) <= 0.0005 + 1e-12 and abs(p.y - y) <= 0.0005 + 1e-12


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MODES), st.lists(st.tuples(half_seconds, group), max_size=6), label, alt)
def test_video_points_round_trip(mode, frames, lab, alt_text):
    times, groups = [t for t, _ in frames], [g for _, g in frames]
    text = format_video_points(times, groups, lab, mode, alt_text)
    _check_round_trip(text, groups, mode, times)
    if parse_points(text):
        assert all(p.label == lab and p.alt == alt_text for p in parse_points(text))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MODES), st.lists(st.tuples(st.integers(1, 5), group), max_size=5), label, alt)
def test_multi_image_points_round_trip(mode, images, lab, alt_text):
    indices, groups = [i for i, _ in images], [g for _, g in images]
    text = format_multi_image_points(indices, groups, lab, mode, alt_text)
    _check_round_trip(text, groups, mode, [float(i) for i in indices])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MODES), group, label, alt)
def test_image_points_round_trip(mode, pts, lab, alt_text):
    _check_round_trip(format_image_points(pts, lab, mode, alt_text), [pts], mode, [1.0])


def _distinct_visible(points: dict) -> bool:
    rounded = [tuple(round(1000.0 * v) for v in i["point"]) for i in points.values() if not i["occluded"]]
    return len(set(rounded)) == len(rounded)


# Visible points of a frame are distinct after rounding, so each parsed entry has one source;
# ties are covered by the example tests above.
track_entry = st.dictionaries(
    st.integers(0, 6),
    st.tuples(point, st.booleans()).map(lambda v: {"point": v[0], "occluded": v[1]}),
    max_size=5,
).filter(_distinct_visible)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(half_seconds, track_entry), max_size=8, unique_by=lambda f: f[0]), label)
def test_tracks_round_trip(frames, lab):
    tracks = [{"time": t, "points": pts} for t, pts in frames]
    text = format_video_tracks(tracks, lab)
    parsed = parse_tracks(text)
    expected = sorted(
        ((t, obj, info["point"]) for t, pts in frames for obj, info in pts.items() if not info["occluded"]),
        key=lambda e: e[0],
    )
    if not expected:
        assert text == "No tracks available."
    assert len(parsed) == len(expected)
    remaining = {(t, tuple(round(1000.0 * v) for v in xy)): (obj, xy) for t, obj, xy in expected}
    id_of: dict[int, int] = {}
    for mark in parsed:
        obj, (x, y) = remaining.pop((mark.time, (round(mark.x * 1000), round(mark.y * 1000))))
        assert abs(x - mark.x) <= 0.0005 + 1e-12 and abs(y - mark.y) <= 0.0005 + 1e-12
        assert id_of.setdefault(obj, mark.object_id) == mark.object_id  # ids persist across frames
    assert len(set(id_of.values())) == len(id_of)  # one parsed id per object, and vice versa
    assert [m.time for m in parsed] == sorted(m.time for m in parsed)


fragments = st.sampled_from(
    ['<points', '<point', '<tracks', ' coords="', ' alt="', ' x="', ' y1="', '">', '"', '>', '</points>',
     '</point>', '</tracks>', ";", "\t", " ", "1", "0.5", "100", "1000", "99999", "12.5", "x", "none",
     "There are ", "a total of ", "-", ".", "\n"]
)
junk = st.text() | st.lists(fragments | st.text(max_size=3), max_size=40).map("".join)


@settings(max_examples=500, deadline=None)
@given(junk)
def test_parsers_never_raise_on_arbitrary_text(text):
    for p in parse_points(text):
        assert 0.0 <= p.x <= 1.0 and 0.0 <= p.y <= 1.0 and math.isfinite(p.group)
    for m in parse_tracks(text):
        assert 0.0 <= m.x <= 1.0 and 0.0 <= m.y <= 1.0 and math.isfinite(m.time)
    count = parse_count(text)
    assert count is None or count >= 0
