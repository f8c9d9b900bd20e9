"""schemas.sampling: Molmo 2's frame times, pinned to ``../shared/reference/molmo2-formats.md``."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from schemas.sampling import long_clip_threshold, sample_times


def test_short_clip_uses_half_second_grid_plus_last_frame():
    assert sample_times(2.2) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.2]


def test_duration_on_the_grid_is_not_repeated():
    assert sample_times(2.0) == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_threshold_is_63_5_seconds_for_128_frames_at_2fps():
    assert long_clip_threshold() == 63.5
    at = sample_times(63.5)
    assert len(at) == 128 and at[-1] == 63.5 and at[1] == 0.5  # grid, exactly 128 frames
    past = sample_times(63.6)
    assert len(past) == 128
    assert past == pytest.approx(list(np.linspace(0, 63.6, 128)), abs=1e-12)


def test_long_video_gets_128_evenly_spaced_frames_with_both_ends():
    times = sample_times(600.0)
    assert len(times) == 128
    assert times[0] == 0.0 and times[-1] == 600.0
    gaps = np.diff(times)
    assert np.allclose(gaps, 600.0 / 127)


def test_zero_duration_is_one_frame():
    assert sample_times(0.0) == [0.0]


def test_config_pretraining_and_long_context():
    assert len(sample_times(100.0, max_frames=16)) == 16
    assert len(sample_times(1000.0, max_frames=384)) == 384
    assert sample_times(3.0, max_fps=1.0) == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "3", None, True])
def test_bad_duration_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="duration"):
        sample_times(bad)


@pytest.mark.parametrize("kwargs", [{"max_frames": 1}, {"max_frames": 2.5}, {"max_fps": 0}, {"max_fps": -1}])
def test_bad_limits_are_clear_errors(kwargs):
    with pytest.raises(ValueError, match="max_"):
        sample_times(10.0, **kwargs)


@given(
    duration=st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False),
    max_frames=st.integers(min_value=2, max_value=512),
    max_fps=st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]),
)
def test_properties(duration, max_frames, max_fps):
    times = sample_times(duration, max_frames=max_frames, max_fps=max_fps)
    assert times[0] == 0.0
    assert times[-1] == duration
    assert len(times) <= max_frames
    assert all(b > a for a, b in zip(times, times[1:])), "strictly increasing"
    if duration <= long_clip_threshold(max_frames, max_fps):
        # every time but the last sits on the 1/max_fps grid, and no grid point is skipped
        assert times[:-1] == [i / max_fps for i in range(len(times) - 1)]
        assert (len(times) - 1) / max_fps >= duration - 1e-6
    else:
        assert len(times) == max_frames
        # never faster than max_fps on average
        assert (len(times) - 1) / duration <= max_fps + 1e-9


def test_float_noise_in_duration_does_not_add_a_frame():
    # 20.1 - 10.1 == 10.000000000000002 must sample like a 10 s clip
    noisy = sample_times(20.1 - 10.1)
    assert len(noisy) == len(sample_times(10.0)) == 21
    assert noisy[-2] == 9.5
