"""Molmo 2 frame sampling: which instants of a clip become frames.

One job: turn a clip duration into the sample times Molmo 2 trains on (SFT setting,
"uniform_last_frame"): at most ``max_frames`` frames, at most ``max_fps`` frames per second,
and the last instant of the clip always included.

* ``duration > (max_frames - 1) / max_fps`` (63.5 s for 128 frames at 2 fps):
  ``max_frames`` times evenly spaced over ``[0, duration]``, both endpoints included.
* otherwise: ``0, 1/max_fps, 2/max_fps, ...`` strictly below ``duration``, then ``duration``.

Reference: ``../shared/reference/molmo2-formats.md``, "Frame sampling (SFT setting)".
Times are seconds relative to the clip start. Record validation (``schemas.records``) and the
decoder (``pipelines.ingest.frames``) both call this function, so there is one definition.
"""
from __future__ import annotations

import math

__all__ = ["sample_times", "DEFAULT_MAX_FRAMES", "DEFAULT_MAX_FPS", "long_clip_threshold", "TIME_EPS"]

TIME_EPS = 1e-6
"""Times closer than this are the same instant: ``20.1 - 10.1`` must sample like ``10.0``."""

DEFAULT_MAX_FRAMES = 128
DEFAULT_MAX_FPS = 2.0


def long_clip_threshold(max_frames: int = DEFAULT_MAX_FRAMES, max_fps: float = DEFAULT_MAX_FPS) -> float:
    """Duration above which sampling switches from the fps grid to evenly spaced frames.

    Returns:
        ``(max_frames - 1) / max_fps`` seconds (63.5 for the defaults).
    """
    return (max_frames - 1) / max_fps


def sample_times(
    duration: float,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_fps: float = DEFAULT_MAX_FPS,
) -> list[float]:
    """Sample times of a clip, the Molmo 2 way.

    Args:
        duration: clip length in seconds (``end - start``); finite and >= 0.
        max_frames: most frames to return; >= 2 so the first and last instants both fit.
        max_fps: most frames per second; > 0.

    Returns:
        Strictly increasing times in seconds, first ``0.0``, last ``duration``. A clip of
        duration 0 (a single frame) gives ``[0.0]``.

    Raises:
        ValueError: on a negative, NaN or infinite duration, or invalid limits.
    """
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise ValueError(f"duration must be a number of seconds, got {duration!r}")
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be finite and >= 0 seconds, got {duration!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 2:
        raise ValueError(f"max_frames must be an integer >= 2, got {max_frames!r}")
    if not (isinstance(max_fps, (int, float)) and math.isfinite(max_fps) and max_fps > 0):
        raise ValueError(f"max_fps must be a positive number, got {max_fps!r}")
    duration = float(duration)
    if duration == 0.0:
        return [0.0]
    if duration > long_clip_threshold(max_frames, max_fps):
        step = duration / (max_frames - 1)
        times = [i * step for i in range(max_frames - 1)]
        times.append(duration)
        return times
    times = [0.0]
    i = 1
    while True:
        t = i / max_fps  # i / fps, not a running sum, so 0.5 steps stay exact
        if t >= duration - TIME_EPS:  # a grid point that *is* the end is not repeated
            break
        times.append(t)
        i += 1
    times.append(duration)
    return times
