"""The one exception type pipeline stages raise for a bad input.

A stage raises ``InputError(stage, error_type, message)`` for anything wrong with one input (a
manifest row, a download, a file that does not decode). The pipeline catches it and turns it into
a failure record (``schemas`` ``FailureRecord``): the run goes on, nothing is dropped silently.
Any other exception raised while working on one input is turned into an ``InputError`` of type
``internal_error`` (or, when it is the run's fault, stops the run) by ``pipelines.common.guard``.
"""
from __future__ import annotations

__all__ = ["InputError", "STAGES"]

STAGES = ("manifest", "fetch", "probe", "filter", "decode", "subtitle", "dedupe", "clip", "image", "write", "synth")


class InputError(Exception):
    """One input cannot be processed.

    Args:
        stage: where it failed, one of ``STAGES``.
        error_type: a short stable slug users can group by (e.g. ``"http_404"``, ``"no_video_stream"``,
            ``"truncated"``, ``"too_short"``, ``"timeout"``).
        message: a sentence naming the input and what is wrong with it.
    """

    def __init__(self, stage: str, error_type: str, message: str):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {STAGES}")
        super().__init__(message)
        self.stage = stage
        self.error_type = error_type
        self.message = message

    def __reduce__(self):  # picklable across Beam workers and child processes
        return (InputError, (self.stage, self.error_type, self.message))

    def __str__(self) -> str:
        return f"[{self.stage}/{self.error_type}] {self.message}"
