"""Subtitle files to clean cues, and cues to clip time.

Parsing is pysubs2's (WebVTT, SRT, ASS/SSA, TTML, SAMI); this module only decodes the bytes, checks
that every timing line became a cue (pysubs2 skips or swallows unreadable ones silently), strips
what markup pysubs2 leaves (VTT karaoke timestamps ``<00:00:01.500>``, HTML entities), collapses
whitespace and drops empty, comment and drawing events. Cues come out sorted by (start, end);
consecutive cues with the same text that touch or overlap (rolling captions) are merged into one.
Cues are ``schemas.record_types.SubtitleCue`` (the one cue type), in file time until ``clip_cues``.
The Molmo 2 subtitle prompt block is ``schemas.chat.format_subtitle_block`` (re-exported here).
"""
from __future__ import annotations

import codecs
import html
import math
import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from pipelines.common.errors import InputError
from schemas.chat import format_subtitle_block
from schemas.record_types import SubtitleCue

__all__ = ["SUBTITLE_FORMATS", "parse_subtitles", "clip_cues", "format_subtitle_block"]

SUBTITLE_FORMATS = ("vtt", "srt", "ass", "ssa", "ttml", "sami")
"""pysubs2 format ids accepted (microdvd needs a frame rate; tmp/mpl2 are too loose to trust)."""
_ALIASES = {"webvtt": "vtt", "dfxp": "ttml", "xml": "ttml", "smi": "sami", "subrip": "srt"}
_TIMED_FORMATS = ("vtt", "srt")  # formats whose cues each have one "-->" timing line
_LEFTOVER_TAG = re.compile(r"</?[A-Za-z0-9][^<>]*>")  # <00:00:01.500>, <c.yellow>, </v> ...
_SPACE = re.compile(r"\s+")
_TIME_DIGITS = 6  # clip-relative times are rounded to the microsecond (float noise of subtraction)


def _malformed(name: str, why: str) -> InputError:
    return InputError("subtitle", "malformed_subtitle", f"{name or '<subtitle>'}: {why}")


def _decode(data: bytes | str, name: str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _malformed(name, f"not {encoding.upper().replace('-SIG', '')} text ({exc.reason} at byte "
                         f"{exc.start}); decode it and pass a str") from None


def _format_id(fmt: str | None, name: str) -> str | None:
    if fmt is None:
        suffix = PurePosixPath(name.split("?", 1)[0]).suffix.lower().lstrip(".")
        fmt = _ALIASES.get(suffix, suffix)
        return fmt if fmt in SUBTITLE_FORMATS else None  # unknown extension: let pysubs2 detect
    fmt = fmt.lower().lstrip(".")
    fmt = _ALIASES.get(fmt, fmt)
    if fmt not in SUBTITLE_FORMATS:
        raise InputError("subtitle", "unsupported_subtitle_format",
                         f"{name or '<subtitle>'}: format {fmt!r} is not one of {', '.join(SUBTITLE_FORMATS)}")
    return fmt


def _clean(text: str, fmt: str) -> str:
    text = _LEFTOVER_TAG.sub("", text)
    if fmt in _TIMED_FORMATS:  # (TTML/SAMI are XML/HTML: their parser already unescaped entities)
        text = html.unescape(text)
    return _SPACE.sub(" ", text).strip()


def parse_subtitles(data: bytes | str, fmt: str | None = None, name: str = "") -> list[SubtitleCue]:
    """Parse a subtitle file into clean cues, in file time, sorted by (start, end).

    Args:
        data: the file's bytes (UTF-8, or UTF-16 with a BOM) or text.
        fmt: ``vtt``/``webvtt``, ``srt``, ``ass``, ``ssa``, ``ttml``/``dfxp``, ``sami``; None to use
            the extension of ``name``, else pysubs2's detection.
        name: the file name or URL, for the format and for error messages.

    Returns:
        The cues; empty for an empty file or a WebVTT file with a header and no cues.

    Raises:
        InputError: ``("subtitle", "malformed_subtitle", ...)`` when the bytes are not text, the
            format cannot be detected, pysubs2 cannot parse it, a timing line was not understood,
            non-empty SRT/VTT text has no cue, or a cue ends before it starts;
            ``unsupported_subtitle_format`` for an unknown ``fmt``.
    """
    import pysubs2

    fmt_id = _format_id(fmt, name)
    text = _decode(data, name)
    if not text.strip():
        return []
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=fmt_id)
    except Exception as exc:  # any failure of the parser on this input is a bad input
        what = fmt_id or "a subtitle file"
        raise _malformed(name, f"cannot parse as {what} ({type(exc).__name__}: {exc})") from None
    fmt_id = fmt_id or getattr(subs, "format", None) or ""
    if fmt_id not in SUBTITLE_FORMATS:
        raise _malformed(name, f"detected format {fmt_id!r} is not one of {', '.join(SUBTITLE_FORMATS)}")
    events = [e for e in subs if not e.is_comment]
    if fmt_id in _TIMED_FORMATS:
        timing_lines = sum("-->" in line for line in text.splitlines())
        if len(events) < timing_lines:
            raise _malformed(name, f"only {len(events)} of {timing_lines} cue timings could be read")
        if not events and not (fmt_id == "vtt" and text.lstrip().startswith("WEBVTT")):
            raise _malformed(name, f"no {fmt_id} cue found in {len(text)} characters of text")
    cues: list[SubtitleCue] = []
    for i, event in enumerate(events):
        if event.start < 0 or event.end < event.start:
            raise _malformed(name, f"cue {i + 1} ({event.plaintext[:40]!r}) has start {event.start / 1000} s "
                             f"and end {event.end / 1000} s")
        cleaned = "" if event.is_drawing else _clean(event.plaintext, fmt_id)
        if cleaned:
            cues.append(SubtitleCue(start=event.start / 1000, end=event.end / 1000, text=cleaned))
    cues.sort(key=lambda c: (c.start, c.end))
    merged: list[SubtitleCue] = []
    for cue in cues:
        if merged and merged[-1].text == cue.text and cue.start <= merged[-1].end:
            merged[-1] = SubtitleCue(start=merged[-1].start, end=max(merged[-1].end, cue.end), text=cue.text)
        else:
            merged.append(cue)
    return merged


def clip_cues(cues: Sequence[SubtitleCue], clip_start: float, clip_end: float) -> list[SubtitleCue]:
    """Cues relative to a clip: shifted by ``clip_start``, cut to ``[0, clip_end - clip_start]``.

    A cue is kept when it overlaps the clip for a positive time, or when it is a zero-length cue
    inside the clip; order is kept. Times are rounded to the microsecond and never leave the range.

    Args:
        cues: cues in source time (as from ``parse_subtitles``).
        clip_start: clip start, source seconds (>= 0).
        clip_end: clip end, source seconds (> clip_start).

    Returns:
        The clipped cues.

    Raises:
        ValueError: the clip bounds are not finite or not ``0 <= clip_start < clip_end``.
    """
    if not (math.isfinite(clip_start) and math.isfinite(clip_end)) or not 0 <= clip_start < clip_end:
        raise ValueError(f"clip needs 0 <= clip_start < clip_end, got {clip_start}, {clip_end}")
    duration = clip_end - clip_start
    out = []
    for cue in cues:
        lo, hi = max(cue.start, clip_start), min(cue.end, clip_end)
        if hi > lo or (cue.start == cue.end and lo == hi):
            end = min(round(hi - clip_start, _TIME_DIGITS), duration)
            start = min(max(round(lo - clip_start, _TIME_DIGITS), 0.0), end)
            out.append(SubtitleCue(start=start, end=end, text=cue.text))
    return out
