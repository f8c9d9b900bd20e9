"""The conversation each dataset record trains as, in Molmo 2's styles and layout.

One job: ``messages_for(dataset, record, media, style)`` turns a record of one of the nine
datasets (``schemas.dataset_types``) and its media record (the ``Clip`` or ``ImageSet``) into
HF-style messages that ``render_chat`` (``schemas.chat``, re-exported here) writes as the Molmo 2
prompt, so publishing and the trainer render exactly the same text.

Styles (Molmo 2's names; exempt from the ``"{style}: "`` prefix unless marked *prefixed*), taken
from how allenai/molmo2 (commit f3cb108, ``olmo/data``) loads the released datasets:

| dataset | styles (first = default) | question | target |
|---|---|---|---|
| Cap | ``video_short_caption`` (clip_caption), ``video_long_caption`` (frame_merged_caption), ``video_merged_caption`` (merged_caption, *prefixed*) | template | the caption |
| AskModelAnything | ``user_qa`` | the question | the answer |
| CapQA | ``video_multiple_choice`` | template with ``A. ...`` lines | ``"B. <answer>"`` |
| SubtitleQA | ``video_multiple_choice_w_subtitle``, ``video_multiple_choice`` | same, plus the subtitle message | ``"B. <answer>"`` |
| VideoPoint | ``video_point``, ``video_point_count``, ``video_count_point``, ``video_count`` | template on ``label`` | html-v2 ``point`` / ``point_then_count`` / ``count_then_point`` / ``count`` |
| VideoTrack | ``video_point_track_per_frame``, ``video_point_track_start_end`` | template on ``expression`` | ``<tracks>`` at every sample time / first and last appearance |
| MultiImageQA | ``correction_qa`` | each question (one turn per pair) | each answer |
| MultiImagePoint | ``multi_image_pointing``, ``multi_image_point_then_count``, ``multi_image_count_then_point``, ``multi_image_counting`` | template on ``label`` | html-v2 points grouped by 1-based image number |
| SynMultiImageQA | ``cosyn_{type}_exp`` (*prefixed*; type from ``category``) | template asking for reasoning | ``"{explanation} Answer: {answer}"`` |

Rules that hold for every dataset:

* media first: one ``{"type": "video", "clip_id", "timestamps"}`` block (the clip's **stored**
  sample times, for the processor's ``VideoMetadata``), or one ``{"type": "image", "image_id",
  "uri"}`` block per image in ``record.image_ids`` order (``Image 1`` is ``image_ids[0]``);
* the style sits on the first user text block only (native training prefixes only the first
  message; later user turns are plain strings); answers carry no style;
* times printed in point and track text are the clip's stored ``Clip.timestamps``, never
  recomputed: a VideoPoint time must be one of them (within ``TIME_MATCH_S``) and a track is
  resampled to them (``schemas.tracks.resample_track``); a track point marked ``occluded`` (there
  but hidden) is left out per frame and counts as an appearance in the start/end variant, an
  absent one (None) does not; nothing visible prints ``"No tracks available."``;
* multiple-choice options are ``[answer] + negative_answers`` in an order that is a pure function
  of the record key (``option_order``); letters A, B, ...;
* SubtitleQA's cues (the record's, clip-relative) become the leading ``subtitle`` message, cut to
  the cues within ``SUBTITLE_WINDOW_S`` of a sample time (Molmo 2's ``frame_1`` mode); the other
  datasets carry no subtitles, as in Molmo 2's loaders.

Questions come from ``PROMPT_TEMPLATES[PROMPT_VERSION]``; change a template only by adding a new
version, so a published dataset names the version it was rendered with.
"""
from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from typing import Any, Optional

from schemas.chat import ROLE_ERROR, format_subtitle_block, render_chat
from schemas.pointing import format_multi_image_points, format_video_points, format_video_tracks
from schemas.tracks import resample_track, track_entries

__all__ = ["PROMPT_VERSION", "PROMPT_TEMPLATES", "DATASET_STYLES", "COSYN_TYPES", "SUBTITLE_WINDOW_S",
           "TIME_MATCH_S", "messages_for", "styles_for", "option_order", "render_chat",
           "format_subtitle_block", "ROLE_ERROR"]

PROMPT_VERSION = 1
"""Version of the question templates ``messages_for`` uses by default."""

_MC = "{question}\n{options}\nAnswer with the letter and the text of the correct option."
_EXP = "{question}\nExplain your reasoning step by step, then end with \"Answer:\" and the answer."
COSYN_TYPES = ("chart", "chemical", "circuit", "diagram", "doc", "graphic", "music", "table")
"""Document types of Molmo 2's SynMultiImageQA (its CoSyn configs); ``category`` picks one."""
_COSYN_ALIASES = {"document": "doc", "documents": "doc", "charts": "chart", "tables": "table",
                  "diagrams": "diagram", "graphics": "graphic"}

PROMPT_TEMPLATES: dict[int, dict[str, str]] = {
    1: {
        "video_short_caption": "Describe this video in a few sentences.",
        "video_long_caption": "Describe this video in detail, from beginning to end.",
        "video_merged_caption": "Describe what happens in this video.",
        "user_qa": "{question}",
        "video_multiple_choice": _MC,
        "video_multiple_choice_w_subtitle": "{question}\n{options}\nThe subtitles may help. Answer with the "
                                            "letter and the text of the correct option.",
        "video_point": "Point to every {label} in the video.",
        "video_point_count": "Point to every {label} in the video, then say how many there are.",
        "video_count_point": "How many {label} are in the video? Give the number, then point to each one.",
        "video_count": "How many {label} are in the video? Answer with a number.",
        "video_point_track_per_frame": "Track {label} through the video: give the position of each one in "
                                       "every frame.",
        "video_point_track_start_end": "Track {label}: give the position of each one where it first appears "
                                       "and where it last appears in the video.",
        "correction_qa": "{question}",
        "multi_image_pointing": "Point to every {label} in these images.",
        "multi_image_point_then_count": "Point to every {label} in these images, then say how many there are.",
        "multi_image_count_then_point": "How many {label} are in these images? Give the number, then point "
                                        "to each one.",
        "multi_image_counting": "How many {label} are in these images? Answer with a number.",
        **{f"cosyn_{t}_exp": _EXP for t in COSYN_TYPES},
    },
}

DATASET_STYLES: dict[str, tuple[str, ...]] = {
    "Cap": ("video_short_caption", "video_long_caption", "video_merged_caption"),
    "AskModelAnything": ("user_qa",),
    "CapQA": ("video_multiple_choice",),
    "SubtitleQA": ("video_multiple_choice_w_subtitle", "video_multiple_choice"),
    "VideoPoint": ("video_point", "video_point_count", "video_count_point", "video_count"),
    "VideoTrack": ("video_point_track_per_frame", "video_point_track_start_end"),
    "MultiImageQA": ("correction_qa",),
    "MultiImagePoint": ("multi_image_pointing", "multi_image_point_then_count", "multi_image_count_then_point",
                        "multi_image_counting"),
    "SynMultiImageQA": tuple(f"cosyn_{t}_exp" for t in COSYN_TYPES),
}
"""Every style a dataset can train as; the first is the default (SynMultiImageQA: its category's)."""

SUBTITLE_WINDOW_S = 1.0
"""Molmo 2's default ``subtitle_mode="frame_1"``: cues within 1 s of a sampled frame."""
TIME_MATCH_S = 1e-3
"""A VideoPoint time within this of a stored sample time is that frame (frames are >= 0.5 s apart)."""

_CAPTION_FIELDS = {"video_short_caption": "clip_caption", "video_long_caption": "frame_merged_caption",
                   "video_merged_caption": "merged_caption"}
_POINT_MODES = {"video_point": "point", "video_point_count": "point_then_count",
                "video_count_point": "count_then_point", "video_count": "count",
                "multi_image_pointing": "point", "multi_image_point_then_count": "point_then_count",
                "multi_image_count_then_point": "count_then_point", "multi_image_counting": "count"}
_VIDEO = ("Cap", "AskModelAnything", "CapQA", "SubtitleQA", "VideoPoint", "VideoTrack")


def _data(value: Any, what: str) -> dict:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError(f"{what} must be a record (pydantic model or dict), got {type(value).__name__}")


def _get(rec: dict, name: str, where: str) -> Any:
    if rec.get(name) is None:
        raise ValueError(f"{where} has no {name!r}")
    return rec[name]


def option_order(key: str, n: int) -> list[int]:
    """The order of ``n`` multiple-choice options, a pure function of the record key.

    Option ``i`` (0 = the answer, then the negatives in record order) sorts by
    ``sha256(f"{key}\\x1f{i}")``; the same key always gives the same order on every machine.

    Returns:
        A permutation of ``range(n)``: position -> option index.
    """
    return sorted(range(n), key=lambda i: hashlib.sha256(f"{key}\x1f{i}".encode("utf-8")).digest())


def _cosyn_style(category: Optional[str]) -> str:
    kind = (category or "").strip().lower()
    kind = _COSYN_ALIASES.get(kind, kind)
    return f"cosyn_{kind if kind in COSYN_TYPES else 'doc'}_exp"  # unknown or missing: generic documents


def styles_for(dataset: str, record: Any) -> tuple[str, ...]:
    """The styles this record can train as (Cap: those whose caption is present).

    Raises:
        ValueError: an unknown dataset.
    """
    if dataset not in DATASET_STYLES:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASET_STYLES)}")
    rec = _data(record, f"{dataset} record")
    if dataset == "Cap":
        return tuple(s for s in DATASET_STYLES["Cap"] if rec.get(_CAPTION_FIELDS[s]))
    if dataset == "SynMultiImageQA":
        return (_cosyn_style(rec.get("category")),)
    return DATASET_STYLES[dataset]


def _question(style: str, version: int, **fields: str) -> str:
    if version not in PROMPT_TEMPLATES:
        raise ValueError(f"unknown prompt version {version!r}; known: {sorted(PROMPT_TEMPLATES)}")
    return PROMPT_TEMPLATES[version][style].format(**fields)


def _video_block(rec: dict, clip: dict, where: str) -> dict:
    if clip.get("key") != rec.get("clip_id") or clip.get("video_id") != rec.get("video_id"):
        raise ValueError(f"{where} is about clip {rec.get('clip_id')!r} of video {rec.get('video_id')!r}, "
                         f"but the media is clip {clip.get('key')!r} of video {clip.get('video_id')!r}")
    for mine, theirs in (("clip_start", "start"), ("clip_end", "end")):
        if abs(_get(rec, mine, where) - _get(clip, theirs, "the clip")) > TIME_MATCH_S:
            raise ValueError(f"{where} has {mine} {rec[mine]!r} but clip {clip['key']!r} has {theirs} "
                             f"{clip[theirs]!r}")
    return {"type": "video", "clip_id": clip["key"], "timestamps": list(_get(clip, "timestamps", "the clip"))}


def _image_blocks(rec: dict, image_set: dict, where: str) -> list[dict]:
    if image_set.get("key") != rec.get("image_set_id"):
        raise ValueError(f"{where} is about image set {rec.get('image_set_id')!r}, but the media is "
                         f"{image_set.get('key')!r}")
    images = {img["image_id"]: img for img in _get(image_set, "images", "the image set")}
    blocks = []
    for i, image_id in enumerate(_get(rec, "image_ids", where)):
        if image_id not in images:
            raise ValueError(f"{where}.image_ids[{i}] = {image_id!r} is not in image set {image_set['key']!r}")
        blocks.append({"type": "image", "image_id": image_id, "uri": images[image_id]["uri"]})
    return blocks


def _choices(rec: dict, where: str) -> tuple[str, str]:
    options = [_get(rec, "answer", where)] + list(_get(rec, "negative_answers", where))
    if len(options) > len(string.ascii_uppercase):
        raise ValueError(f"{where} has {len(options)} options; at most {len(string.ascii_uppercase)} get letters")
    order = option_order(rec["key"], len(options))
    lines = [f"{letter}. {options[i]}" for letter, i in zip(string.ascii_uppercase, order)]
    return "\n".join(lines), lines[order.index(0)]


def _video_points(rec: dict, times: list[float], style: str, where: str) -> str:
    groups: dict[int, list[tuple[float, float]]] = {}
    for j, p in enumerate(_get(rec, "points", where)):
        hits = [i for i, t in enumerate(times) if abs(t - p["time"]) <= TIME_MATCH_S]
        if not hits:
            raise ValueError(f"{where}.points[{j}].time = {p['time']!r} is not one of the clip's sample times")
        groups.setdefault(hits[0], []).append((p["x"], p["y"]))
    order = sorted(groups)
    return format_video_points([times[i] for i in order], [groups[i] for i in order], _get(rec, "label", where),
                               _POINT_MODES[style])


def _image_points(rec: dict, style: str, where: str) -> str:
    groups: dict[int, list[tuple[float, float]]] = {}
    for p in _get(rec, "points", where):
        groups.setdefault(p["image_index"], []).append((p["x"], p["y"]))
    order = sorted(groups)
    return format_multi_image_points([i + 1 for i in order], [groups[i] for i in order],
                                     _get(rec, "label", where), _POINT_MODES[style])


def _turns(rec: dict, dataset: str, style: str, clip: Optional[dict], version: int,
           where: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of the conversation."""
    if dataset == "Cap":
        return [(_question(style, version), _get(rec, _CAPTION_FIELDS[style], where))]
    if dataset in ("AskModelAnything",):
        return [(_question(style, version, question=_get(rec, "question", where)), _get(rec, "answer", where))]
    if dataset in ("CapQA", "SubtitleQA"):
        options, target = _choices(rec, where)
        return [(_question(style, version, question=_get(rec, "question", where), options=options), target)]
    if dataset == "VideoPoint":
        target = _video_points(rec, list(clip["timestamps"]), style, where)
        return [(_question(style, version, label=rec["label"]), target)]
    if dataset == "VideoTrack":
        label = _get(rec, "expression", where)
        entries = track_entries(resample_track(rec, clip["timestamps"]))
        target = format_video_tracks(entries, label, start_end_only=style == "video_point_track_start_end")
        return [(_question(style, version, label=label), target)]
    if dataset == "MultiImageQA":
        return [(_question(style, version, question=qa["question"]), qa["answer"])
                for qa in _get(rec, "qa_pairs", where)]
    if dataset == "MultiImagePoint":
        target = _image_points(rec, style, where)
        return [(_question(style, version, label=rec["label"]), target)]
    # SynMultiImageQA
    target = f"{_get(rec, 'explanation', where)} Answer: {_get(rec, 'answer', where)}"
    return [(_question(style, version, question=_get(rec, "question", where)), target)]


def messages_for(dataset: str, record: Any, media: Any, style: Optional[str] = None,
                 prompt_version: int = PROMPT_VERSION) -> list[dict]:
    """The conversation a record trains as (see the module docstring for the rules per dataset).

    Args:
        dataset: one of the nine dataset names (``schemas.dataset_types``), e.g. ``"VideoPoint"``.
        record: the record (pydantic model or dict; validated upstream, only the fields used are
            read).
        media: its ``Clip`` (video datasets) or ``ImageSet`` (multi-image datasets), model or dict;
            its stored sample times are the only times used.
        style: a style of ``styles_for(dataset, record)``; None takes the first.
        prompt_version: which ``PROMPT_TEMPLATES`` version phrases the questions.

    Returns:
        HF-style messages: optionally ``{"role": "subtitle", "content": block}``, then
        ``{"role": "user", "content": [media blocks..., {"type": "text", "text", "style"}]}`` and
        ``{"role": "assistant", "content": target}`` (further turns as plain strings), ready for
        ``render_chat`` or a processor carrying the shipped chat template.

    Raises:
        ValueError: an unknown dataset, style or prompt version; a record that is not about this
            media (other clip or image set, other clip bounds, an image not in the set); a
            missing field; a point time that is not a stored sample time; a track that cannot be
            resampled; a label the point formatter refuses.
    """
    styles = styles_for(dataset, record)
    rec = _data(record, f"{dataset} record")
    where = f"{dataset} record {rec.get('key')!r}"
    if style is None:
        if not styles:
            raise ValueError(f"{where} has no caption to train on")
        style = styles[0]
    elif style not in styles:
        raise ValueError(f"style {style!r} does not fit {where}; expected one of {', '.join(styles) or '(none)'}")
    if dataset in _VIDEO:
        clip = _data(media, "the media (a Clip)")
        media_blocks = [_video_block(rec, clip, where)]
    else:
        clip = None
        media_blocks = _image_blocks(rec, _data(media, "the media (an ImageSet)"), where)
    turns = _turns(rec, dataset, style, clip, prompt_version, where)
    messages: list[dict] = []
    if dataset == "SubtitleQA":
        block = format_subtitle_block(_get(rec, "subtitles", where), clip["timestamps"], SUBTITLE_WINDOW_S)
        if block:
            messages.append({"role": "subtitle", "content": block})
    (question, answer), *more = turns
    messages.append({"role": "user", "content": media_blocks + [{"type": "text", "text": question, "style": style}]})
    messages.append({"role": "assistant", "content": answer})
    for question, answer in more:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages
