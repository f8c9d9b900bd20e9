"""schemas.chat: render_chat byte for byte, rule by rule, and the shipped template through a processor.

Every case is derived from one rule of ../shared/reference/molmo2-formats.md ("The released chat
template, rule by rule"); the expected texts are written out by hand. The shipped Jinja template
must give the same text through a real ``Molmo2Processor.apply_chat_template(tokenize=False)``
(transformers' environment: trim_blocks, lstrip_blocks, None-valued message keys dropped).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import jinja2
import pytest

from schemas.chat import EXEMPT_STYLES, ROLE_ERROR, chat_template, format_subtitle_block, render_chat
from schemas.records import SubtitleCue

V = {"type": "video"}
I = {"type": "image"}  # noqa: E741


def T(text: str, style: Optional[str] = None) -> dict:
    return {"type": "text", "text": text, "style": style}


def user(content) -> dict:
    return {"role": "user", "content": content}


def assistant(content) -> dict:
    return {"role": "assistant", "content": content}


@dataclass(frozen=True)
class Case:
    name: str
    messages: list
    template: str
    training: str
    generation_prompt: bool = False


U, A, E = "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>"

CASES = [
    # rule 6 + 9: one user turn, no BOS / system prompt; 8: the generation prompt
    Case("user_string", [user("What is shown?")],
         f"{U}What is shown?{E}\n", f"{U}What is shown?{E}\n{A}"),
    Case("user_string_generation_prompt", [user("What is shown?")],
         f"{U}What is shown?{E}\n{A}", f"{U}What is shown?{E}\n{A}", True),
    # rule 5 + 7: an exempt style has no prefix; a history answer has a space before, no end after
    Case("video_exempt_style_answer", [user([V, T("Point to the dogs.", "video_point")]),
                                       assistant('<points coords="0.5 1 100 200">dogs</points>')],
         f'<|video|>{U}Point to the dogs.{E}\n <|im_start|>assistant\n<points coords="0.5 1 100 200">dogs</points>',
         f'<|video|>{U}Point to the dogs.{E}\n{A}<points coords="0.5 1 100 200">dogs</points>{E}'),
    # rule 1: one image is a bare placeholder; two or more are numbered
    Case("one_image", [user([I, T("Describe.")])],
         f"<|image|>{U}Describe.{E}\n", f"<|image|>{U}Describe.{E}\n{A}"),
    Case("two_images", [user([I, I, T("Compare.")])],
         f"Image 1<|image|>Image 2<|image|>{U}Compare.{E}\n",
         f"Image 1<|image|>Image 2<|image|>{U}Compare.{E}\n{A}"),
    Case("five_images", [user([I] * 5 + [T("Which differs?")])],
         "".join(f"Image {i}<|image|>" for i in range(1, 6)) + f"{U}Which differs?{E}\n",
         "".join(f"Image {i}<|image|>" for i in range(1, 6)) + f"{U}Which differs?{E}\n{A}"),
    # rule 1: placeholders hoisted from every turn, numbered across turns; images before videos
    Case("placeholders_hoisted_from_later_turns",
         [user([I, T("q1")]), assistant("a1"), user([T("q2"), V, I])],
         f"Image 1<|image|>Image 2<|image|><|video|>{U}q1{E}\n {A}a1{E}\n{U}q2{E}\n{A}",
         f"Image 1<|image|>Image 2<|image|><|video|>{U}q1{E}\n{A}a1{E}\n{U}q2{E}\n{A}", True),
    Case("images_before_videos", [user([V, V, I, T("x")])],
         f"<|image|><|video|><|video|>{U}x{E}\n", f"<|image|><|video|><|video|>{U}x{E}\n{A}"),
    Case("media_in_an_answer_counts", [user("q"), assistant([I, T("a")])],
         f"<|image|>{U}q{E}\n {A}a", f"<|image|>{U}q{E}\n{A}a{E}"),
    Case("image_url_block_and_media_keys",
         [user([{"type": "image_url", "image_url": {"url": "a.jpg"}}, {"image": "b.jpg"}, {"video_url": "c.mp4"},
                T("q")])],
         f"Image 1<|image|>Image 2<|image|><|video|>{U}q{E}\n",
         f"Image 1<|image|>Image 2<|image|><|video|>{U}q{E}\n{A}"),
    # rule 2: the subtitle content verbatim after the placeholders, nothing added
    Case("subtitle_after_placeholders",
         [{"role": "subtitle", "content": "subtitle\n0.0 - 1.5 Hello\n"},
          user([V, T("What is said?", "video_multiple_choice_w_subtitle")])],
         f"<|video|>subtitle\n0.0 - 1.5 Hello\n{U}What is said?{E}\n{A}",
         f"<|video|>subtitle\n0.0 - 1.5 Hello\n{U}What is said?{E}\n{A}", True),
    Case("subtitle_verbatim_role_lower_cased",
         [{"role": "Subtitle", "content": "no newline"}, {"role": "USER", "content": "q"},
          {"role": "Assistant", "content": "a"}],
         f"no newline{U}q{E}\n {A}a", f"no newline{U}q{E}\n{A}a{E}"),
    Case("subtitle_only", [{"role": "subtitle", "content": "subtitle\n"}], "subtitle\n", "subtitle\n"),
    # rule 4: a non-exempt style is a prefix in any role (training: first user message only)
    Case("style_prefixed_in_any_role",
         [user([V, T("How many?", "video_short_answer")]), assistant([T("3", "video_short_answer")])],
         f"<|video|>{U}video_short_answer: How many?{E}\n {A}video_short_answer: 3",
         f"<|video|>{U}video_short_answer: How many?{E}\n{A}3{E}"),
    Case("style_on_a_later_user_turn",
         [user([T("q1", "vqa2")]), assistant("a1"), user([T("q2", "vqa2")])],
         f"{U}vqa2: q1{E}\n {A}a1{E}\n{U}vqa2: q2{E}\n",
         f"{U}vqa2: q1{E}\n{A}a1{E}\n{U}q2{E}\n{A}"),
    Case("blocks_joined_no_space_while_empty",
         [user([T(""), T("a"), T(""), T("b"), T("  c ")])],
         f"{U}a  b   c {E}\n", f"{U}a  b   c {E}\n{A}"),
    Case("empty_text_with_style", [user([T("", "video_short_answer")])],
         f"{U}video_short_answer: {E}\n", f"{U}video_short_answer:{E}\n{A}"),
    Case("style_none_is_no_style", [user([T("q", None), T("r", "demo")])], f"{U}q r{E}\n", f"{U}q r{E}\n{A}"),
    # rule 6-8: multi-turn, ending on an answer, with and without the generation prompt
    Case("multi_turn_ends_on_answer", [user("q1"), assistant("a1"), user("q2"), assistant("a2")],
         f"{U}q1{E}\n {A}a1{E}\n{U}q2{E}\n {A}a2", f"{U}q1{E}\n{A}a1{E}\n{U}q2{E}\n{A}a2{E}"),
    Case("generation_prompt_after_an_answer", [user("q"), assistant("a")],
         f"{U}q{E}\n {A}a{A}", f"{U}q{E}\n{A}a{E}", True),
    # rule 3 (released template): a later subtitle is skipped but keeps its position
    Case("later_subtitle_keeps_its_position",
         [user("q1"), assistant("a1"), {"role": "subtitle", "content": "x"}, assistant("a2")],
         f"{U}q1{E}\n {A}a1 {A}a2", ""),
]

ERROR_CASES = [
    ("starts_with_assistant", [assistant("a")]),
    ("two_users", [user("q1"), user("q2")]),
    ("system_prompt", [{"role": "system", "content": "s"}, user("q")]),
    ("subtitle_in_a_user_place", [user("q"), {"role": "subtitle", "content": "x"}, assistant("a")]),
    ("subtitle_then_assistant", [{"role": "subtitle", "content": "x"}, assistant("a")]),
    ("two_answers", [user("q"), assistant("a"), assistant("b")]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_render_chat_template_layout(case):
    assert render_chat(case.messages, case.generation_prompt) == case.template


@pytest.mark.parametrize("case", [c for c in CASES if c.training], ids=lambda c: c.name)
def test_render_chat_training_layout(case):
    assert render_chat(case.messages, case.generation_prompt, layout="training") == case.training


def test_empty_conversation():
    assert render_chat([]) == "" and render_chat([], layout="training") == ""
    assert render_chat([], add_generation_prompt=True) == A


@pytest.mark.parametrize("name, messages", ERROR_CASES, ids=[n for n, _ in ERROR_CASES])
@pytest.mark.parametrize("layout", ["template", "training"])
def test_roles_out_of_order_raise_the_template_message(name, messages, layout):
    with pytest.raises(ValueError) as err:
        render_chat(messages, layout=layout)
    assert str(err.value) == ROLE_ERROR


def test_training_layout_refuses_a_later_subtitle():
    with pytest.raises(ValueError, match="roles must alternate"):
        render_chat(CASES[-1].messages, layout="training")


@pytest.mark.parametrize("messages, match", [
    ([{"role": "user"}], r"messages\[0\] has no content"),
    ([{"role": "user", "content": None}], r"messages\[0\] has no content"),
    ([{"content": "q"}], r"messages\[0\] must be a mapping with a str 'role'"),
    ([user(["just a string"])], r"messages\[0\]\.content\[0\] must be a mapping"),
    ([user([{"type": "text", "text": 3}])], r"messages\[0\]\.content\[0\]\.text must be a str"),
    ([user([{"type": "text", "text": "q", "style": 1}])], r"content\[0\]\.style must be a str or None"),
    ([{"role": "subtitle", "content": [T("x")]}, user("q")], r"subtitle\) content must be a str"),
    ("user: hi", "messages must be a list"),
])
def test_malformed_messages_are_named(messages, match):
    with pytest.raises(ValueError, match=match):
        render_chat(messages)


def test_unknown_layout():
    with pytest.raises(ValueError, match="layout must be one of"):
        render_chat([user("q")], layout="native")


# ----------------------------------------------------------------------------- the shipped template


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_shipped_template_through_the_processor(case, tiny_molmo2_processor):
    got = tiny_molmo2_processor.apply_chat_template(case.messages, tokenize=False,
                                                    add_generation_prompt=case.generation_prompt)
    assert got == render_chat(case.messages, case.generation_prompt) == case.template


@pytest.mark.parametrize("name, messages", ERROR_CASES, ids=[n for n, _ in ERROR_CASES])
def test_shipped_template_raises_the_same_message(name, messages, tiny_molmo2_processor):
    with pytest.raises(jinja2.exceptions.TemplateError) as err:
        tiny_molmo2_processor.apply_chat_template(messages, tokenize=False)
    assert str(err.value) == ROLE_ERROR


def test_shipped_template_empty_conversation():
    # transformers refuses [] before rendering (the processor indexes conversation[0], the tokenizer
    # raises "Cannot apply chat template to an empty conversation"), so render in its environment
    from transformers.utils.chat_template_utils import _compile_jinja_template

    template = _compile_jinja_template(chat_template())
    for gen in (False, True):
        assert template.render(messages=[], add_generation_prompt=gen) == render_chat([], gen)


def test_shipped_template_exempt_list_is_the_same(tiny_molmo2_processor):
    styles = sorted(EXEMPT_STYLES) + ["video_short_answer", "vqa2", "cosyn_chart_exp", "video_merged_caption"]
    messages = [user([T(f"t{i}", s) for i, s in enumerate(styles)])]
    got = tiny_molmo2_processor.apply_chat_template(messages, tokenize=False)
    assert got == render_chat(messages)
    assert got == U + " ".join(f"t{i}" if s in EXEMPT_STYLES else f"{s}: t{i}" for i, s in enumerate(styles)) + E + "\n"
    assert len(EXEMPT_STYLES) == 41


def test_shipped_template_in_plain_jinja_without_trimming():
    # every tag strips its own whitespace, so the layout does not depend on trim/lstrip settings
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])
    template = env.from_string(chat_template())
    for case in CASES:
        assert template.render(messages=case.messages, add_generation_prompt=case.generation_prompt) == case.template


def test_rendered_prompt_expands_in_the_processor(tiny_molmo2_processor):
    import numpy as np
    from transformers.video_utils import VideoMetadata

    text = render_chat([user([V, T("Count.", "video_count")])], add_generation_prompt=True)
    frames = np.zeros((3, 56, 56, 3), dtype=np.uint8)
    times = [0.0, 0.5, 1.25]
    out = tiny_molmo2_processor(text=text, videos=[frames], return_tensors="pt", videos_kwargs={
        "video_metadata": [VideoMetadata(total_num_frames=3, fps=1.0, frames_indices=times)]})
    decoded = tiny_molmo2_processor.tokenizer.decode(out["input_ids"][0])
    assert decoded.startswith("<|im_end|>0.0 <frame_start>")  # the processor's BOS is the eos
    assert " 0.5 <frame_start>" in decoded and " 1.2 <frame_start>" in decoded
    assert decoded.endswith(f"<frame_end>{U}Count.{E}\n{A}")
    assert int(out["mm_token_type_ids"].sum()) > 0


# ----------------------------------------------------------------------------- the subtitle block


def test_subtitle_block_from_schema_cues_and_mappings():
    cues = [SubtitleCue(start=0.0, end=1.5, text="Hello wörld"), {"start": 2.04, "end": 3.96, "text": "second"}]
    assert format_subtitle_block(cues) == "subtitle\n0.0 - 1.5 Hello wörld\n2.0 - 4.0 second\n"
    # frame_1 mode around the sampled frames; nothing near a frame leaves the bare header
    assert format_subtitle_block(cues, frame_times=[0.0], window_s=1.0) == "subtitle\n0.0 - 1.5 Hello wörld\n"
    assert format_subtitle_block(cues, frame_times=[9.0], window_s=1.0) == "subtitle\n"
    assert format_subtitle_block([]) == ""
    with pytest.raises(ValueError, match=r"cues\[0\]"):
        format_subtitle_block([{"start": "0", "end": 1.0, "text": "x"}])
