"""pipelines.ingest.subtitles: parsing through pysubs2, markup stripped, clip math, the Molmo 2 block
(``schemas.chat.format_subtitle_block``, re-exported there)."""
from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.common.errors import InputError
from pipelines.ingest.subtitles import clip_cues, format_subtitle_block, parse_subtitles
from schemas.record_types import SubtitleCue


def cue(start: float, end: float, text: str) -> SubtitleCue:
    return SubtitleCue(start=start, end=end, text=text)

VTT = """WEBVTT
Kind: captions
Language: en

NOTE written by the tests

intro
00:00:01.000 --> 00:00:02.500 align:start position:0%
<v Roger><c.yellow>Hello</c> <i>wörld</i> &amp; friends</v>

00:00:04.000 --> 00:00:06.000
Deuxième   ligne,
<b>sur deux lignes</b>

00:00:00.200 --> 00:00:00.800
東京へ<00:00:00.500><c> ようこそ</c>

00:00:07.000 --> 00:00:08.000
<i> </i>
"""

SRT = """1
00:00:01,000 --> 00:00:02,500
{\\an8}<font color="yellow">Hello</font> <i>wörld</i> &amp; friends

2
00:00:04,000 --> 00:00:06,000
Deuxième ligne,
sur deux lignes

3
00:00:00,200 --> 00:00:00,800
東京へ ようこそ

4
00:00:07,000 --> 00:00:08,000
<i></i>
"""

EXPECTED = [
    cue(0.2, 0.8, "東京へ ようこそ"),
    cue(1.0, 2.5, "Hello wörld & friends"),
    cue(4.0, 6.0, "Deuxième ligne, sur deux lignes"),
]


def test_vtt_and_srt_parse_to_the_same_clean_cues():
    assert parse_subtitles(VTT, "vtt") == EXPECTED
    assert parse_subtitles(SRT, "srt") == EXPECTED


@pytest.mark.parametrize("data, fmt, name", [
    (VTT.encode("utf-8"), None, "clip.en.vtt"),
    (SRT.encode("utf-8-sig"), None, "https://host/sub.srt?sig=1"),
    (SRT.encode("utf-16"), "subrip", ""),
    (VTT, None, ""),  # detected by pysubs2
    (SRT, "SRT", "x.vtt"),  # fmt wins over the name
])
def test_format_from_argument_name_or_detection_and_encodings(data, fmt, name):
    assert parse_subtitles(data, fmt, name) == EXPECTED


def test_ass_drops_comments_drawings_and_override_tags():
    ass = """[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,2,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:04.00,0:00:06.00,Default,,0,0,0,,{\\an8}Deuxième ligne,\\N{\\i1}sur deux lignes{\\i0}
Comment: 0,0:00:03.00,0:00:04.00,Default,,0,0,0,,not shown
Dialogue: 0,0:00:05.00,0:00:06.00,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 50{\\p0}
Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,Hello {\\b1}wörld{\\b0} & friends
"""
    assert parse_subtitles(ass, name="x.ass") == EXPECTED[1:]


def test_ttml():
    ttml = """<?xml version="1.0" encoding="utf-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xml:lang="en"><body><div>
<p begin="00:00:04.000" end="00:00:06.000">Deuxième ligne,<br/>sur deux lignes</p>
<p begin="00:00:01.000" end="00:00:02.500">Hello <span>wörld</span> &amp; friends</p>
</div></body></tt>"""
    assert parse_subtitles(ttml.encode(), "ttml") == EXPECTED[1:]


def test_rolling_captions_with_the_same_text_merge():
    vtt = ("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nsame words\n\n"
           "00:00:02.000 --> 00:00:03.000\nsame  words\n\n00:00:04.000 --> 00:00:05.000\nsame words\n")
    assert parse_subtitles(vtt, "vtt") == [cue(1.0, 3.0, "same words"), cue(4.0, 5.0, "same words")]


def test_empty_inputs_give_no_cues():
    assert parse_subtitles(b"", "srt") == []
    assert parse_subtitles("WEBVTT\n\nNOTE nothing here\n", None, "a.vtt") == []


@pytest.mark.parametrize("data, fmt, why", [
    ("just some words", None, "cannot parse"),
    ("just some words", "srt", "no srt cue"),
    ("1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:0x,000 --> 00:00:04,000\nB\n", "srt", "1 of 2 cue timings"),
    ("WEBVTT\n\n00:01.000 --> 00:02.000\nA\n\n00:0x.000 --> 00:04.000\nB\n", "vtt", "1 of 2 cue timings"),
    ("1\n00:00:01,000 --> 00:00:02,000\nA\n", "vtt", "0 of 1 cue timings"),
    ("1\n00:00:05,000 --> 00:00:01,000\nbackwards\n", "srt", "'backwards'"),
    (b"1\n00:00:01,000 --> 00:00:02,000\n\xff\xfe bad\n", "srt", "not UTF-8"),
    ("<tt><body><p begin='1s'", "ttml", "cannot parse as ttml"),
    ('{"events": []}', None, "cannot parse"),
    ("[10][20]loose MPL2 text\n", None, "detected format 'mpl2'"),
])
def test_malformed_subtitles_raise_input_error(data, fmt, why):
    with pytest.raises(InputError) as info:
        parse_subtitles(data, fmt, name="clip7.sub")
    err = info.value
    assert (err.stage, err.error_type) == ("subtitle", "malformed_subtitle")
    assert err.message.startswith("clip7.sub: ") and why in err.message


def test_unknown_format_is_an_input_error():
    with pytest.raises(InputError) as info:
        parse_subtitles("x", "srv3", name="a.srv3")
    assert info.value.error_type == "unsupported_subtitle_format"


def test_clip_cues_shifts_cuts_and_drops():
    cues = [cue(0.0, 1.0, "before"), cue(1.0, 3.0, "touches start"), cue(2.5, 4.0, "a"),
            cue(4.0, 4.0, "instant"), cue(5.5, 9.0, "b"), cue(6.0, 7.0, "after"), cue(7.0, 7.0, "late instant")]
    assert clip_cues(cues, 3.0, 6.0) == [cue(0.0, 1.0, "a"), cue(1.0, 1.0, "instant"), cue(2.5, 3.0, "b")]
    assert clip_cues(cues, 0.0, 100.0) == cues
    (noisy,) = clip_cues([cue(0.1, 0.3, "x")], 0.1, 0.3)  # 0.3 - 0.1 is 0.19999999999999998
    assert noisy.start == 0.0 and noisy.end == 0.3 - 0.1 and noisy.end == pytest.approx(0.2)
    assert clip_cues([cue(0.1, 0.25, "x")], 0.1, 0.3) == [cue(0.0, 0.15, "x")]  # rounded to the microsecond
    with pytest.raises(ValueError):
        clip_cues(cues, 5.0, 5.0)
    with pytest.raises(ValueError):
        clip_cues(cues, -1.0, 5.0)


_times = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def _cues(draw):
    out = []
    for start, length in draw(st.lists(st.tuples(_times, st.floats(0, 100)), max_size=20)):
        out.append(cue(start, start + length, "t"))
    return sorted(out, key=lambda c: (c.start, c.end))


@settings(max_examples=300, deadline=None)
@given(_cues(), _times, st.floats(min_value=1e-3, max_value=1e4))
def test_clip_cues_properties(cues, clip_start, length):
    clip_end = clip_start + length
    duration = clip_end - clip_start
    out = clip_cues(cues, clip_start, clip_end)
    assert len(out) <= len(cues)
    for cue in out:
        assert 0.0 <= cue.start <= cue.end <= duration
    assert [c.start for c in out] == sorted(c.start for c in out)
    overlapping = [c for c in cues if min(c.end, clip_end) > max(c.start, clip_start)]
    assert len(out) >= len(overlapping)


def test_subtitle_block_exact_layout():
    cues = [cue(0.0, 1.5, "Hello wörld"), cue(2.04, 3.96, "second"), cue(10.25, 12.0, "third")]
    assert format_subtitle_block(cues) == (
        "subtitle\n"
        "0.0 - 1.5 Hello wörld\n"
        "2.0 - 4.0 second\n"
        "10.2 - 12.0 third\n"
    )
    assert format_subtitle_block([]) == ""


def test_subtitle_block_frame_window():
    cues = [cue(0.0, 0.4, "a"), cue(3.0, 3.5, "b"), cue(9.0, 9.5, "c")]
    assert format_subtitle_block(cues, frame_times=[0.0, 2.0, 4.0], window_s=0.0) == "subtitle\n0.0 - 0.4 a\n"
    assert format_subtitle_block(cues, frame_times=[0.0, 2.0, 4.0], window_s=1.0) == (
        "subtitle\n0.0 - 0.4 a\n3.0 - 3.5 b\n")
    # cues exist but none is near a frame: the bare header, as Molmo 2's video preprocessor writes
    assert format_subtitle_block(cues, frame_times=[20.0], window_s=1.0) == "subtitle\n"


def test_cue_is_the_one_schemas_cue_validated_hashable_and_picklable():
    one = cue(1.0, 2.0, "ça va")
    assert one.model_dump() == {"start": 1.0, "end": 2.0, "text": "ça va"}
    assert SubtitleCue.model_validate(one.model_dump()) == one and len({one, cue(1.0, 2.0, "ça va")}) == 1
    assert pickle.loads(pickle.dumps(one)) == one
    assert all(type(c) is SubtitleCue for c in parse_subtitles(VTT, "vtt") + clip_cues([one], 0.5, 3.0))
    for start, end in [(2.0, 1.0), (-1.0, 1.0), (0.0, float("nan"))]:
        with pytest.raises(ValueError):
            cue(start, end, "x")
