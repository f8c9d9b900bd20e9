"""schemas.tracks: a VideoTrack record at the clip's stored times, and as formatter entries."""
from __future__ import annotations

import pytest

from annotation import normalize
from schemas import tracks
from schemas.pointing import format_video_tracks
from schemas.records import validate
from schemas.tracks import resample_track, track_entries


def record(times, objects):
    return {"key": "t", "provenance": {"method": "unrecorded"}, "video_id": "v", "clip_id": "c", "clip_start": 10.0, "clip_end": 12.0, "source": "ls",
            "expression": "cars", "fps": 5.0, "width": 64, "height": 48, "start_frame": 0,
            "end_frame": len(times) - 1, "timestamps": times,
            "objects": [{"object_id": i + 1, "points": pts} for i, pts in enumerate(objects)]}


FRAMES = [i * 0.2 for i in range(11)]  # a 5 fps mp4 of a 2 s clip


def test_normalize_uses_the_schemas_definition():
    assert normalize.resample_track is tracks.resample_track


def test_resample_picks_the_frame_displayed_at_each_given_time():
    xs = [{"x": round(0.05 * i, 2), "y": 0.5} for i in range(11)]
    rec = record(FRAMES, [xs])
    # stored clip times, not recomputed: 0.45 s shows the frame from 0.4 s, 0.5 s too, 2.0 s the last
    out = resample_track(rec, [0.0, 0.45, 0.5, 2.0])
    assert out["timestamps"] == [0.0, 0.45, 0.5, 2.0]
    assert [p["x"] for p in out["objects"][0]["points"]] == [0.0, 0.1, 0.1, 0.5]
    assert rec["timestamps"] == FRAMES  # the input is not changed
    validate("VideoTrack", out)
    # None computes the Molmo 2 sample times of the record's own clip bounds (2 s -> 0.0 .. 2.0 by 0.5)
    assert resample_track(rec)["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0]
    # a pydantic record works too
    assert resample_track(validate("VideoTrack", rec), [1.0])["objects"][0]["points"] == [
        {"x": 0.25, "y": 0.5, "occluded": False}]


def test_resample_rejects_times_before_the_first_frame_and_unsorted_times():
    rec = record([0.5, 1.0], [[None, None]])
    with pytest.raises(ValueError, match="no frame is displayed at 0.0"):
        resample_track(rec, [0.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        resample_track(rec, [1.0, 1.0])


def test_occluded_flags_travel_and_become_occluded_entries():
    occluded = {"x": 0.3, "y": 0.3, "occluded": True}
    rec = record([0.0, 0.5, 1.0], [[{"x": 0.1, "y": 0.1}, occluded, None], [None, {"x": 0.9, "y": 0.9}, None]])
    out = resample_track(validate("VideoTrack", rec), [0.0, 0.5, 1.0])
    assert out["objects"][0]["points"][1] == occluded
    entries = track_entries(out)
    assert entries == [
        {"time": 0.0, "points": {1: {"point": (0.1, 0.1), "occluded": False}}},
        {"time": 0.5, "points": {1: {"point": (0.3, 0.3), "occluded": True}, 2: {"point": (0.9, 0.9),
                                                                                 "occluded": False}}},
        {"time": 1.0, "points": {}},
    ]
    # per frame the occluded point is left out
    assert format_video_tracks(entries, "car") == '<tracks coords="0.0 1 100 100;0.5 2 900 900">car</tracks>'


def test_start_end_variant_tells_occluded_from_absent():
    seen = [{"x": 0.1, "y": 0.1}, {"x": 0.2, "y": 0.1}]
    hidden = record([0.0, 0.5, 1.0], [seen + [{"x": 0.3, "y": 0.1, "occluded": True}]])
    gone = record([0.0, 0.5, 1.0], [seen + [None]])
    # occluded at 1.0 s: that is its last appearance, and an occluded end is dropped with no fallback
    assert format_video_tracks(track_entries(hidden), "car", start_end_only=True) == (
        '<tracks coords="0.0 1 100 100">car</tracks>')
    # absent (out of view) at 1.0 s: its last appearance is 0.5 s
    assert format_video_tracks(track_entries(gone), "car", start_end_only=True) == (
        '<tracks coords="0.0 1 100 100;0.5 1 200 100">car</tracks>')
    # per frame both read the same
    assert format_video_tracks(track_entries(hidden), "car") == format_video_tracks(track_entries(gone), "car")
