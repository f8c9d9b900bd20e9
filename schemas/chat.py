"""The Molmo 2 chat layout: HF-style messages to the exact prompt text, and the subtitle block.

One job: render a conversation as Molmo 2 reads it, in two layouts
(../shared/reference/molmo2-formats.md, "The released chat template, rule by rule"):

``layout="template"``: the text of the chat template the Molmo 2 converter ships with the
checkpoints (allenai/molmo2 ``convert_molmo2_to_hf.py``, commit f3cb108), quirks included:

1. output = ``[placeholders][subtitle content][turns][generation prompt]``; every media block of
   every message is counted first: one image is ``<|image|>``, two or more are
   ``Image 1<|image|>Image 2<|image|>...`` (numbered across turns), then one ``<|video|>`` per
   video; images before videos; the turn text keeps no trace of where media blocks stood. A block
   is an image when ``type == "image"`` or it has an ``image`` / ``image_url`` key, else a video
   when ``type == "video"`` or it has a ``video`` / ``video_url`` key; media values are never read;
2. a leading ``subtitle`` message's content is written verbatim after the placeholders (the block
   from ``format_subtitle_block`` ends with ``\\n``; nothing is added);
3. roles, compared lower-cased, must sit at alternating positions, user first, otherwise
   ``ValueError(ROLE_ERROR)``. A ``subtitle`` message after the first is skipped but keeps its
   position, as in the released template: ``[user, subtitle, assistant]`` raises while
   ``[user, assistant, subtitle, assistant]`` renders both answers (molmo2-formats.md simplifies
   this to "a subtitle message elsewhere breaks alternation");
4. a list content's text blocks are joined with one space, except that no space is added while
   the text so far is empty (the template's ``'' if not m.text else ' '``); a block whose
   ``style`` is not in ``EXEMPT_STYLES`` becomes ``"{style}: {text}"`` (any role, text never
   trimmed, an empty text keeps the trailing space);
5. the first user turn is ``<|im_start|>user\\n{text}<|im_end|>\\n``; later user turns are
   preceded by ``<|im_end|>\\n``; a history answer is ``" <|im_start|>assistant\\n{text}"``
   (a space before, no ``<|im_end|>`` after); ``add_generation_prompt`` appends
   ``<|im_start|>assistant\\n``; an empty conversation is ``""``; no BOS, EOS or system prompt.

``layout="training"``: native training (allenai/molmo2 ``DataFormatter.format_messages`` with
``message_format="qwen3"``): the same placeholders and subtitle, then each user turn carries
``<|im_start|>assistant\\n`` (no space), every answer ends with ``<|im_end|>`` (the next user turn
starts ``\\n<|im_start|>user``, the last answer ends there), and only the first user message gets
style prefixes (``"{style}: {text}"``, or ``"{style}:"`` for an empty text, as the native
formatter writes). ``add_generation_prompt`` changes nothing there: a user turn already ends with
the assistant header. A ``subtitle`` message after the first raises ``ValueError(ROLE_ERROR)``.

Deliberate differences from the released template, all on inputs it mishandles: ``style=None``
means no style (transformers drops None-valued *message* keys but passes a block's
``"style": None`` through, which the released template would print as ``"None: "``); a
non-string role, text or subtitle content, a missing content (the template would render an empty
turn), a content that is neither a string nor a list of blocks, and a block that is not a
mapping raise ``ValueError`` instead of rendering empty turns or Python reprs.
``schemas/templates/molmo2_chat_template.jinja`` is this layout as a chat template (transformers
itself refuses an empty conversation before rendering it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

__all__ = ["ROLE_ERROR", "EXEMPT_STYLES", "LAYOUTS", "IMAGE_TOKEN", "VIDEO_TOKEN", "render_chat",
           "placeholders", "format_subtitle_block", "style_prefixed", "CHAT_TEMPLATE_FILE", "chat_template"]

ROLE_ERROR = "Conversation roles must alternate user/assistant/user/assistant/..."
IMAGE_TOKEN = "<|image|>"
VIDEO_TOKEN = "<|video|>"
LAYOUTS = ("template", "training")
CHAT_TEMPLATE_FILE = "templates/molmo2_chat_template.jinja"
"""The Jinja chat template, package data of ``schemas`` (setup.py ``package_data``, MANIFEST.in)."""

EXEMPT_STYLES = frozenset((
    "point_count", "pointing", "cosyn_point", "user_qa", "long_caption", "short_caption",
    "video_long_caption", "video_short_caption", "video_point_track_per_frame",
    "video_point_track_start_end", "video_point_track_all_frames", "video_single_point_track_start_end",
    "video_transcript", "video_clip_caption_start_end", "video_clip_caption_start_end_in_seconds",
    "video_clip_transcript_start_end", "video_clip_transcript_start_end_in_seconds",
    "video_frame_caption_timestamp", "video_frame_caption_timestamp_in_seconds", "correction_qa",
    "text_sft", "video_point", "video_point_count", "video_count", "video_count_point",
    "multi_image_pointing", "multi_image_counting", "multi_image_point_then_count",
    "multi_image_count_then_point", "demo", "a_okvqa_mc", "ai2_diagram_no_letter", "ai2_diagram",
    "science_qa", "multi_image_mc", "multi_image_mc_exp", "mantis_instruct_mc", "video_multiple_choice",
    "video_multiple_choice_count_without_pointing", "video_multiple_choice_multiple_correct",
    "video_multiple_choice_w_subtitle",
))
"""Styles the released template writes without a ``"{style}: "`` prefix (its "demo" list)."""

_USER_OPEN = "<|im_start|>user\n"
_ASSISTANT_OPEN = "<|im_start|>assistant\n"
_END = "<|im_end|>"


def style_prefixed(text: str, style: str | None, training: bool = False) -> str:
    """``text`` with its style prefix: ``"{style}: {text}"`` unless the style is None or exempt.

    Args:
        text: the block's text.
        style: its style name, or None.
        training: native training writes ``"{style}:"`` (no space) for an empty text.

    Returns:
        The text to render.
    """
    if style is None or style in EXEMPT_STYLES:
        return text
    if training and not text:
        return f"{style}:"
    return f"{style}: {text}"


def chat_template() -> str:
    """The shipped Jinja chat template: ``render_chat(layout="template")`` for a processor.

    Returns:
        The template text, for ``processor.chat_template`` / ``tokenizer.chat_template``.
    """
    return resources.files("schemas").joinpath(CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")


def _is_image(block: Mapping) -> bool:
    return block.get("type") == "image" or "image" in block or "image_url" in block


def _is_video(block: Mapping) -> bool:
    return block.get("type") == "video" or "video" in block or "video_url" in block


def _blocks(message: Mapping, where: str) -> list[Mapping] | None:
    """The block list of a message, or None when its content is a string."""
    if "content" not in message or message["content"] is None:
        raise ValueError(f"{where} has no content")
    content = message["content"]
    if isinstance(content, str):
        return None
    if not isinstance(content, Sequence) or isinstance(content, (bytes, bytearray)):
        raise ValueError(f"{where}.content must be a str or a list of blocks, got {type(content).__name__}")
    for j, block in enumerate(content):
        if not isinstance(block, Mapping):
            raise ValueError(f"{where}.content[{j}] must be a mapping (a block), got {type(block).__name__}")
    return list(content)


def placeholders(n_images: int, n_videos: int) -> str:
    """The visual placeholders that open a prompt: images (numbered when 2+), then videos.

    Args:
        n_images, n_videos: counts of media blocks in the whole conversation.

    Returns:
        e.g. ``""``, ``"<|image|>"``, ``"Image 1<|image|>Image 2<|image|><|video|>"``.
    """
    if n_images == 1:
        images = IMAGE_TOKEN
    else:
        images = "".join(f"Image {i}{IMAGE_TOKEN}" for i in range(1, n_images + 1))
    return images + VIDEO_TOKEN * n_videos


def _text(blocks: list[Mapping] | None, content: Any, where: str, with_styles: bool, training: bool) -> str:
    if blocks is None:
        return content
    text = ""
    for j, block in enumerate(blocks):
        if block.get("type") != "text":
            continue
        seg = block.get("text")
        if not isinstance(seg, str):
            raise ValueError(f"{where}.content[{j}].text must be a str, got {type(seg).__name__}")
        style = block.get("style")
        if style is not None and not isinstance(style, str):
            raise ValueError(f"{where}.content[{j}].style must be a str or None, got {style!r}")
        if with_styles:
            seg = style_prefixed(seg, style, training)
        text = text + ("" if not text else " ") + seg
    return text


def render_chat(messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False,
                layout: str = "template") -> str:
    """Render HF-style messages as Molmo 2 prompt text (see the module docstring for the rules).

    Args:
        messages: ``{"role": "user" | "assistant", "content": str | [block, ...]}``, optionally
            led by ``{"role": "subtitle", "content": str}``; blocks are
            ``{"type": "text", "text": str, "style": str | None}``, ``{"type": "image", ...}``,
            ``{"type": "video", ...}``.
        add_generation_prompt: append ``<|im_start|>assistant\\n`` (template layout only).
        layout: ``"template"`` (the released chat template) or ``"training"`` (native training).

    Returns:
        The prompt text, without BOS (the processor adds it).

    Raises:
        ValueError: roles out of order (``ROLE_ERROR``), an unknown layout, or a malformed
            message (missing content, non-string role / text / subtitle, a block that is not a
            mapping), naming ``messages[i]``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ValueError(f"messages must be a list of messages, got {type(messages).__name__}")
    roles, contents = [], []
    n_images = n_videos = 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ValueError(f"{where} must be a mapping with a str 'role'")
        blocks = _blocks(message, where)
        for block in blocks or ():
            if _is_image(block):
                n_images += 1
            elif _is_video(block):
                n_videos += 1
        roles.append(message["role"].lower())
        contents.append((blocks, message["content"], where))
    training = layout == "training"
    has_subtitle = bool(roles) and roles[0] == "subtitle"
    out = [placeholders(n_images, n_videos)]
    if has_subtitle:
        if not isinstance(messages[0]["content"], str):
            raise ValueError("messages[0] (subtitle) content must be a str, the subtitle block")
        out.append(messages[0]["content"])
    last_answer = max((i for i, r in enumerate(roles) if r != "subtitle"), default=-1)
    for i, role in enumerate(roles):
        if role == "subtitle":
            if training and i > 0:  # native training has no place for it
                raise ValueError(ROLE_ERROR)
            continue
        position = i + 1 - has_subtitle  # 1-based; a later subtitle message still takes a place
        if role != ("user" if position % 2 else "assistant"):
            raise ValueError(ROLE_ERROR)
        blocks, content, where = contents[i]
        styles = position == 1 if training else True
        text = _text(blocks, content, where, styles, training)
        if role == "user":
            if position != 1:
                out.append(_END + "\n")
            out.append(f"{_USER_OPEN}{text}{_END}\n")
            if training:
                out.append(_ASSISTANT_OPEN)
        elif training:
            out.append(text + (_END if i == last_answer else ""))
        else:
            out.append(f" {_ASSISTANT_OPEN}{text}")
    if add_generation_prompt and not training:
        out.append(_ASSISTANT_OPEN)
    return "".join(out)


def _cue_fields(cue: Any, where: str) -> tuple[float, float, str]:
    if isinstance(cue, Mapping):
        values = (cue.get("start"), cue.get("end"), cue.get("text"))
    else:
        values = (getattr(cue, "start", None), getattr(cue, "end", None), getattr(cue, "text", None))
    start, end, text = values
    if isinstance(start, bool) or not isinstance(start, (int, float)) or isinstance(end, bool) \
            or not isinstance(end, (int, float)) or not isinstance(text, str):
        raise ValueError(f"{where} must have numeric start/end and a str text, got {cue!r}")
    return float(start), float(end), text


def format_subtitle_block(cues: Sequence[Any], frame_times: Sequence[float] | None = None,
                          window_s: float = 0.0) -> str:
    """The Molmo 2 subtitle block that follows the frames in the prompt (the ``subtitle`` message).

    Follows allenai/molmo2 ``olmo/preprocessing/video_preprocessor.py`` (commit f3cb108):
    ``"subtitle\\n"`` then, per cue, ``f"{start:.1f} - {end:.1f} {text}\\n"`` (every line, the last
    one included, ends with a newline). With ``frame_times`` it applies that code's ``frame_N``
    mode (``subtitle_mode="frame_1"`` is the config default, so ``window_s=1.0``): a cue is kept
    when some frame time t has ``start <= t + window_s`` and ``end >= t - window_s``; without,
    its ``all`` mode. No cues at all give ``""``; cues of which none is near a frame give the bare
    ``"subtitle\\n"``, as that code writes. That code keys cues by (start, end), so of two cues
    with the same times only the last survives there; here both are kept.

    Args:
        cues: clip-relative cues in order: objects with ``start``, ``end``, ``text`` attributes
            (``schemas`` ``SubtitleCue``) or mappings with those keys.
        frame_times: the clip's sampled frame times; None keeps every cue.
        window_s: the ``frame_N`` window in seconds (N), used with ``frame_times``.

    Returns:
        The block, or ``""`` when ``cues`` is empty.

    Raises:
        ValueError: a cue without numeric start/end and text.
    """
    fields = [_cue_fields(c, f"cues[{i}]") for i, c in enumerate(cues)]
    if not fields:
        return ""
    if frame_times is not None:
        times = list(frame_times)
        fields = [c for c in fields if any(c[0] <= t + window_s and c[1] >= t - window_s for t in times)]
    return "subtitle\n" + "".join(f"{start:.1f} - {end:.1f} {text}\n" for start, end, text in fields)
