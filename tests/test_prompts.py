"""schemas.prompts: golden conversations per dataset and style, and checks against procedural ground truth.

The goldens are written out by hand from the rules (../shared/reference/molmo2-formats.md:
html-v2 points, tracks and counts; ``A. ...`` options with a ``"B. <text>"`` target;
``"{explanation} Answer: {answer}"``) and the prompt templates of version 1. The procedural tests
build records from a seeded scene's exact ground truth and read the rendered targets back.
"""
from __future__ import annotations

import collections
import copy

import pytest

from pipelines.procedural.scenes import SceneSpec, make_scene
from schemas.chat import render_chat
from schemas.pointing import parse_count, parse_points, parse_tracks
from schemas.prompts import (
    DATASET_STYLES,
    PROMPT_TEMPLATES,
    PROMPT_VERSION,
    messages_for,
    option_order,
    styles_for,
)
from schemas.records import validate
from schemas.sampling import sample_times

CLIP = {"key": "clip-1", "video_id": "vid-1", "start": 10.0, "end": 12.0, "timestamps": [0.0, 0.5, 1.0, 1.5, 2.0],
        "frame_indices": [300, 315, 330, 345, 360], "frame_width": 160, "frame_height": 120, "max_frames": 128,
        "max_fps": 2.0, "split": "train"}
SUB_CLIP = {**CLIP, "key": "clip-2", "start": 0.0, "end": 8.0, "timestamps": [0.0, 4.0, 8.0],
            "frame_indices": [0, 120, 240], "max_fps": 0.25}  # stored at 0.25 fps: 0, 4, 8 s
HUMAN = {"method": "human", "project": "demo", "snapshot_version": 1, "task_id": 1, "annotation_ids": [1],
         "annotators": ["a@example.org"]}
ON_CLIP = {"provenance": HUMAN, "video_id": "vid-1", "clip_id": "clip-1", "clip_start": 10.0, "clip_end": 12.0}
IMAGES = {"key": "set-1", "license": "cc-by-4.0", "source": "procedural", "split": "train",
          "images": [{"image_id": f"img-{c}", "uri": f"images/{c}.png", "sha256": "0" * 64, "width": 100,
                      "height": 80} for c in "abc"]}

REC = {
    "Cap": {"key": "cap-1", **ON_CLIP, "clip_caption": "A red circle rolls to the left.",
            "frame_merged_caption": "A red circle enters from the right and rolls to the left edge."},
    "AskModelAnything": {"key": "ama-1", **ON_CLIP, "question": "What colour is the circle?", "answer": "It is red."},
    "CapQA": {"key": "capqa-1", **ON_CLIP, "question": "What colour is the circle?", "answer": "red",
              "negative_answers": ["blue", "green", "yellow"], "category": "color"},
    "SubtitleQA": {"key": "subqa-1", "provenance": HUMAN, "video_id": "vid-1", "clip_id": "clip-2", "clip_start": 0.0,
                   "clip_end": 8.0,
                   "question": "What does the speaker say is red?", "answer": "the circle",
                   "negative_answers": ["the square", "the bar", "nothing"], "category": "speech",
                   "subtitles": [{"start": 0.0, "end": 0.8, "text": "Hello."},
                                 {"start": 1.6, "end": 2.4, "text": "Nobody sees this."},  # > 1 s from 0 and 4
                                 {"start": 3.5, "end": 4.2, "text": "Red it is."}]},
    "VideoPoint": {"key": "vp-1", **ON_CLIP, "source": "youtube", "duration": 30.0, "label": "red circle",
                   "question": "every red circle", "count": 4, "category": "object", "annotator_unsure": False,
                   "points": [{"time": 0.5, "x": 0.75, "y": 0.5}, {"time": 0.5, "x": 0.25, "y": 0.5},
                              {"time": 1.5, "x": 0.3, "y": 0.6}, {"time": 2.0, "x": 0.5015, "y": 1.0}]},
    "VideoTrack": {"key": "vt-1", **ON_CLIP, "source": "youtube", "expression": "the moving shapes", "fps": 4.0,
                   "width": 160, "height": 120, "start_frame": 0, "end_frame": 8,
                   "timestamps": [k * 0.25 for k in range(9)],  # every frame of a 4 fps mp4
                   "objects": [{"object_id": 7, "points": [{"x": 0.1 + 0.05 * k, "y": 0.5} for k in range(9)]},
                               {"object_id": 3, "points": [{"x": 0.9, "y": 0.1 * k} if 2 <= k <= 6 else None
                                                           for k in range(9)]}]},
    "MultiImageQA": {"key": "miqa-1", "provenance": HUMAN, "image_set_id": "set-1", "image_ids": ["img-c", "img-a"],
                     "qa_pairs": [{"question": "Which image has more circles?", "answer": "Image 1."},
                                  {"question": "What colour are they?", "answer": "Red."}]},
    "MultiImagePoint": {"key": "mip-1", "provenance": HUMAN, "image_set_id": "set-1",
                        "image_ids": ["img-a", "img-b", "img-c"],
                        "label": "cup", "question": "every cup", "count": 3, "annotator_unsure": False,
                        "points": [{"image_index": 0, "x": 0.1, "y": 0.2}, {"image_index": 2, "x": 0.5, "y": 0.5},
                                   {"image_index": 2, "x": 0.4, "y": 0.6}]},
    "SynMultiImageQA": {"key": "syn-1", "provenance": HUMAN, "image_set_id": "set-1", "image_ids": ["img-a", "img-b"],
                        "question": "Which chart has the larger total?",
                        "explanation": "Chart 1 sums to 12 and chart 2 to 9.", "answer": "Chart 1", "category": "chart"},
}
MEDIA = {"SubtitleQA": SUB_CLIP, "MultiImageQA": IMAGES, "MultiImagePoint": IMAGES, "SynMultiImageQA": IMAGES}

VP = "0.5 1 250 500 2 750 500;1.5 3 300 600;2.0 4 501 1000"  # 0.5015 -> 501 (half to even on the binary value)
MIP = "1 1 100 200;3 2 400 600 3 500 500"
MC_TAIL = "Answer with the letter and the text of the correct option."
GOLDEN = [
    ("Cap", "video_short_caption", "Describe this video in a few sentences.", "A red circle rolls to the left."),
    ("Cap", "video_long_caption", "Describe this video in detail, from beginning to end.",
     "A red circle enters from the right and rolls to the left edge."),
    ("AskModelAnything", "user_qa", "What colour is the circle?", "It is red."),
    # option_order("capqa-1", 4) == [2, 0, 1, 3]: green, red, blue, yellow
    ("CapQA", "video_multiple_choice",
     f"What colour is the circle?\nA. green\nB. red\nC. blue\nD. yellow\n{MC_TAIL}", "B. red"),
    # option_order("subqa-1", 4) == [1, 0, 3, 2]
    ("SubtitleQA", "video_multiple_choice_w_subtitle",
     "What does the speaker say is red?\nA. the square\nB. the circle\nC. nothing\nD. the bar\n"
     f"The subtitles may help. {MC_TAIL}", "B. the circle"),
    ("SubtitleQA", "video_multiple_choice",
     f"What does the speaker say is red?\nA. the square\nB. the circle\nC. nothing\nD. the bar\n{MC_TAIL}",
     "B. the circle"),
    ("VideoPoint", "video_point", "Point to every red circle in the video.",
     f'<points coords="{VP}">red circle</points>'),
    ("VideoPoint", "video_point_count", "Point to every red circle in the video, then say how many there are.",
     f'Counting the <points coords="{VP}">red circle</points> shows a total of 4.'),
    ("VideoPoint", "video_count_point", "How many red circle are in the video? Give the number, then point to "
     "each one.", f'There are 4 <points coords="{VP}">red circle</points>.'),
    ("VideoPoint", "video_count", "How many red circle are in the video? Answer with a number.", "4"),
    # resampled to 0, 0.5, ... 2.0: object 7 visible throughout (id 1), object 3 from 0.5 to 1.5 s (id 2)
    ("VideoTrack", "video_point_track_per_frame",
     "Track the moving shapes through the video: give the position of each one in every frame.",
     '<tracks coords="0.0 1 100 500;0.5 1 200 500 2 900 200;1.0 1 300 500 2 900 400;1.5 1 400 500 2 900 600;'
     '2.0 1 500 500">the moving shapes</tracks>'),
    ("VideoTrack", "video_point_track_start_end",
     "Track the moving shapes: give the position of each one where it first appears and where it last appears in "
     "the video.",
     '<tracks coords="0.0 1 100 500;0.5 2 900 200;1.5 2 900 600;2.0 1 500 500">the moving shapes</tracks>'),
    ("MultiImagePoint", "multi_image_pointing", "Point to every cup in these images.",
     f'<points coords="{MIP}">cup</points>'),
    ("MultiImagePoint", "multi_image_point_then_count",
     "Point to every cup in these images, then say how many there are.",
     f'Counting the <points coords="{MIP}">cup</points> shows a total of 3.'),
    ("MultiImagePoint", "multi_image_count_then_point",
     "How many cup are in these images? Give the number, then point to each one.",
     f'There are 3 <points coords="{MIP}">cup</points>.'),
    ("MultiImagePoint", "multi_image_counting", "How many cup are in these images? Answer with a number.", "3"),
    ("SynMultiImageQA", "cosyn_chart_exp", 'Which chart has the larger total?\nExplain your reasoning step by step, '
     'then end with "Answer:" and the answer.', "Chart 1 sums to 12 and chart 2 to 9. Answer: Chart 1"),
]


def video(clip: dict) -> dict:
    return {"type": "video", "clip_id": clip["key"], "timestamps": clip["timestamps"]}


def image(c: str) -> dict:
    return {"type": "image", "image_id": f"img-{c}", "uri": f"images/{c}.png"}


MEDIA_BLOCKS = {"SubtitleQA": [video(SUB_CLIP)], "MultiImagePoint": [image("a"), image("b"), image("c")],
                "SynMultiImageQA": [image("a"), image("b")]}


@pytest.mark.parametrize("dataset, style, question, target", GOLDEN, ids=[f"{d}-{s}" for d, s, _, _ in GOLDEN])
def test_golden_conversation(dataset, style, question, target):
    record = validate(dataset, REC[dataset])  # the records are valid today
    got = messages_for(dataset, record, validate("image_set" if dataset in ("MultiImagePoint", "SynMultiImageQA")
                                                 else "clip", MEDIA.get(dataset, CLIP)), style)
    expected = [{"role": "user", "content": MEDIA_BLOCKS.get(dataset, [video(CLIP)]) + [
        {"type": "text", "text": question, "style": style}]}, {"role": "assistant", "content": target}]
    if dataset == "SubtitleQA":
        expected.insert(0, {"role": "subtitle", "content": "subtitle\n0.0 - 0.8 Hello.\n3.5 - 4.2 Red it is.\n"})
    assert got == expected
    assert messages_for(dataset, REC[dataset], MEDIA.get(dataset, CLIP), style) == got  # dicts work the same


def test_every_style_has_a_golden_or_a_reason():
    covered = {(d, s) for d, s, _, _ in GOLDEN}
    for dataset, styles in DATASET_STYLES.items():
        for style in styles:
            assert style in PROMPT_TEMPLATES[PROMPT_VERSION]
            # Cap's merged caption, MultiImageQA and the other CoSyn types have their own tests below
            if not (dataset == "SynMultiImageQA" or (dataset, style) in {("Cap", "video_merged_caption"),
                                                                         ("MultiImageQA", "correction_qa")}):
                assert (dataset, style) in covered, (dataset, style)


def test_prompts_module_carries_the_chat_layout():
    from schemas import chat, prompts

    assert prompts.render_chat is chat.render_chat and prompts.format_subtitle_block is chat.format_subtitle_block


def test_default_style_is_the_first():
    assert messages_for("VideoPoint", REC["VideoPoint"], CLIP) == messages_for("VideoPoint", REC["VideoPoint"], CLIP,
                                                                               "video_point")


def test_rendered_golden_texts_in_both_layouts():
    msgs = messages_for("SubtitleQA", REC["SubtitleQA"], SUB_CLIP)
    user_text = msgs[1]["content"][1]["text"]
    assert render_chat(msgs) == ("<|video|>subtitle\n0.0 - 0.8 Hello.\n3.5 - 4.2 Red it is.\n"
                                 f"<|im_start|>user\n{user_text}<|im_end|>\n <|im_start|>assistant\nB. the circle")
    assert render_chat(msgs, layout="training") == (
        "<|video|>subtitle\n0.0 - 0.8 Hello.\n3.5 - 4.2 Red it is.\n"
        f"<|im_start|>user\n{user_text}<|im_end|>\n<|im_start|>assistant\nB. the circle<|im_end|>")
    syn = messages_for("SynMultiImageQA", REC["SynMultiImageQA"], IMAGES)
    assert render_chat(syn, layout="training").startswith(
        "Image 1<|image|>Image 2<|image|><|im_start|>user\ncosyn_chart_exp: Which chart has the larger total?\n")


def test_multi_image_qa_is_one_turn_per_pair_in_record_image_order():
    msgs = messages_for("MultiImageQA", REC["MultiImageQA"], IMAGES)
    assert msgs == [
        {"role": "user", "content": [image("c"), image("a"),
                                     {"type": "text", "text": "Which image has more circles?", "style": "correction_qa"}]},
        {"role": "assistant", "content": "Image 1."},
        {"role": "user", "content": "What colour are they?"},
        {"role": "assistant", "content": "Red."},
    ]
    assert render_chat(msgs) == ("Image 1<|image|>Image 2<|image|><|im_start|>user\nWhich image has more circles?"
                                 "<|im_end|>\n <|im_start|>assistant\nImage 1.<|im_end|>\n<|im_start|>user\n"
                                 "What colour are they?<|im_end|>\n <|im_start|>assistant\nRed.")


def test_cap_styles_follow_the_captions_present():
    assert styles_for("Cap", REC["Cap"]) == ("video_short_caption", "video_long_caption")
    merged = {**REC["Cap"], "merged_caption": "Over the whole video a red circle rolls left."}
    msgs = messages_for("Cap", merged, CLIP, "video_merged_caption")
    assert render_chat(msgs) == ("<|video|><|im_start|>user\nvideo_merged_caption: Describe what happens in this "
                                 "video.<|im_end|>\n <|im_start|>assistant\nOver the whole video a red circle rolls left.")
    with pytest.raises(ValueError, match="style 'video_merged_caption' does not fit Cap record 'cap-1'"):
        messages_for("Cap", REC["Cap"], CLIP, "video_merged_caption")


@pytest.mark.parametrize("category, style", [("chart", "cosyn_chart_exp"), ("Documents", "cosyn_doc_exp"),
                                             ("table", "cosyn_table_exp"), (None, "cosyn_doc_exp"),
                                             ("infographic", "cosyn_doc_exp")])
def test_synthetic_qa_style_from_category(category, style):
    rec = {**REC["SynMultiImageQA"], "category": category}
    assert styles_for("SynMultiImageQA", rec) == (style,)
    assert messages_for("SynMultiImageQA", rec, IMAGES)[0]["content"][-1]["style"] == style


def test_option_order_is_a_pure_function_of_the_key():
    assert option_order("capqa-1", 4) == [2, 0, 1, 3] and option_order("subqa-1", 4) == [1, 0, 3, 2]
    assert option_order("capqa-1", 4) == option_order("capqa-1", 4)
    letters = collections.Counter(option_order(f"k{i}", 4).index(0) for i in range(400))
    assert sorted(letters) == [0, 1, 2, 3] and min(letters.values()) > 60  # the answer lands on every letter
    record = dict(REC["CapQA"], negative_answers=["yellow", "blue", "green"])  # other negative order, same key
    assert messages_for("CapQA", record, CLIP)[1]["content"] == "B. red"


def test_zero_count_reads_there_are_none_in_every_style():
    empty = {**REC["VideoPoint"], "count": 0, "points": []}
    for style in DATASET_STYLES["VideoPoint"]:
        assert messages_for("VideoPoint", empty, CLIP, style)[1]["content"] == "There are none."


def test_stored_sample_times_are_used_not_recomputed():
    slow = {**CLIP, "timestamps": [0.0, 1.0, 2.0], "frame_indices": [300, 330, 360], "max_fps": 1.0}
    msgs = messages_for("VideoTrack", REC["VideoTrack"], slow)
    assert msgs[0]["content"][0]["timestamps"] == [0.0, 1.0, 2.0]
    assert msgs[1]["content"] == ('<tracks coords="0.0 1 100 500;1.0 1 300 500 2 900 400;2.0 1 500 500">'
                                  'the moving shapes</tracks>')
    with pytest.raises(ValueError, match=r"points\[0\]\.time = 0\.5 is not one of the clip's sample times"):
        messages_for("VideoPoint", REC["VideoPoint"], slow)


def test_occluded_and_absent_track_points_render_as_the_official_formatter():
    hidden = copy.deepcopy(REC["VideoTrack"])
    hidden["objects"][1]["points"][6] = {"x": 0.9, "y": 0.6, "occluded": True}  # hidden at 1.5 s, then gone
    unplaced = copy.deepcopy(REC["VideoTrack"])
    unplaced["objects"][1]["points"][6] = {"occluded": True}  # hidden, the annotator's box was off: no position
    gone = copy.deepcopy(REC["VideoTrack"])
    gone["objects"][1]["points"][6] = None  # out of view from 1.5 s
    per_frame = '<tracks coords="0.0 1 100 500;0.5 1 200 500 2 900 200;1.0 1 300 500 2 900 400;1.5 1 400 500;' \
                '2.0 1 500 500">the moving shapes</tracks>'
    records = {name: validate("VideoTrack", rec) for name, rec in (("hidden", hidden), ("unplaced", unplaced),
                                                                    ("gone", gone))}
    assert records["hidden"].objects[1].points[6].occluded and records["unplaced"].objects[1].points[6].x is None
    for rec in records.values():
        assert messages_for("VideoTrack", rec, CLIP)[1]["content"] == per_frame
    start_end = "video_point_track_start_end"
    # occluded: its last appearance is the hidden 1.5 s entry, dropped with no fallback
    for name in ("hidden", "unplaced"):
        assert messages_for("VideoTrack", records[name], CLIP, start_end)[1]["content"] == (
            '<tracks coords="0.0 1 100 500;0.5 2 900 200;2.0 1 500 500">the moving shapes</tracks>')
    # absent: its last appearance is 1.0 s
    assert messages_for("VideoTrack", records["gone"], CLIP, start_end)[1]["content"] == (
        '<tracks coords="0.0 1 100 500;0.5 2 900 200;1.0 2 900 400;2.0 1 500 500">the moving shapes</tracks>')


@pytest.mark.parametrize("dataset, record, media, match", [
    ("VideoPoint", REC["VideoPoint"], SUB_CLIP, "is about clip 'clip-1' of video 'vid-1', but the media is clip 'clip-2'"),
    ("VideoPoint", {**REC["VideoPoint"], "clip_end": 11.5}, CLIP, "has clip_end 11.5 but clip 'clip-1' has end 12.0"),
    ("MultiImagePoint", {**REC["MultiImagePoint"], "image_set_id": "set-2"}, IMAGES, "is about image set 'set-2'"),
    ("MultiImagePoint", {**REC["MultiImagePoint"], "image_ids": ["img-a", "img-z"]}, IMAGES,
     r"image_ids\[1\] = 'img-z' is not in image set 'set-1'"),
    ("CapQA", {k: v for k, v in REC["CapQA"].items() if k != "question"}, CLIP, "CapQA record 'capqa-1' has no 'question'"),
    ("Nine", REC["CapQA"], CLIP, "unknown dataset 'Nine'"),
    ("CapQA", REC["CapQA"], CLIP, None),
])
def test_mismatched_or_incomplete_input_is_named(dataset, record, media, match):
    if match is None:
        with pytest.raises(ValueError, match="style 'video_point' does not fit CapQA record"):
            messages_for(dataset, record, media, "video_point")
        with pytest.raises(ValueError, match="unknown prompt version 9"):
            messages_for(dataset, record, media, prompt_version=9)
        return
    with pytest.raises(ValueError, match=match):
        messages_for(dataset, record, media)


# ----------------------------------------------------------------------------- procedural ground truth

SEED = 8  # a scene with occlusions, an exit and a return, and an object whose last appearance is occluded


def q(value: float) -> int:
    """A normalized coordinate as html-v2 prints it (round(1000 * v))."""
    return round(1000.0 * value)


@pytest.fixture(scope="module")
def scene_clip():
    scene = make_scene(SceneSpec(seed=SEED, duration=4.0, n_objects=3))
    times = sample_times(scene.duration)
    clip = validate("clip", {"key": "scene-clip", "video_id": "scene", "start": 0.0, "end": scene.duration,
                             "timestamps": times, "frame_indices": [scene.frame_index_at(t) for t in times],
                             "frame_width": scene.spec.width, "frame_height": scene.spec.height, "max_frames": 128,
                             "max_fps": 2.0, "split": "train",
                             "subtitles": [{"start": c.start, "end": c.end, "text": c.text} for c in scene.cues]})
    return scene, clip


def _on(clip) -> dict:
    return {"provenance": HUMAN, "video_id": "scene", "clip_id": clip.key, "clip_start": 0.0, "clip_end": clip.end}


def test_video_points_from_ground_truth(scene_clip):
    scene, clip = scene_clip
    label = max(scene.counts, key=lambda k: (scene.counts[k], k))
    points = [{"time": t, "x": s.x_norm, "y": s.y_norm} for t in clip.timestamps
              for s in scene.ground_truth_at(t).visible_objects if s.label == label]
    rec = validate("VideoPoint", {"key": "gt-vp", **_on(clip), "source": "procedural", "duration": clip.end,
                                  "label": label, "question": f"every {label}", "count": len(points),
                                  "points": points, "category": "object", "annotator_unsure": False})
    target = messages_for("VideoPoint", rec, clip, "video_point_count")[1]["content"]
    assert parse_count(target) == len(points) > 0
    marks = parse_points(target)
    assert [m.point_id for m in marks] == list(range(1, len(points) + 1))
    by_time = collections.defaultdict(list)
    for m in marks:
        by_time[m.group].append((q(m.x), q(m.y)))
    assert set(by_time) <= {float(f"{t:.1f}") for t in clip.timestamps}
    for t in clip.timestamps:
        truth = sorted((q(s.x_norm), q(s.y_norm)) for s in scene.ground_truth_at(t).visible_objects
                       if s.label == label)
        assert sorted(by_time.get(float(f"{t:.1f}"), [])) == truth


def _track_record(scene, occluded_flag: bool):
    """The scene's exact track as a VideoTrack record; without ``occluded_flag`` as a v1 record, whose
    box tracks were on or off (an occluded object off), read through the migration: off = absent."""
    objects = []
    for obj in scene.objects:
        pts = []
        for s in scene.track(obj.object_id):
            if s.status == "visible":
                pts.append({"x": s.x_norm, "y": s.y_norm, **({"occluded": False} if occluded_flag else {})})
            elif s.status == "occluded" and occluded_flag:
                pts.append({"x": s.x_norm, "y": s.y_norm, "occluded": True})
            else:
                pts.append(None)
        objects.append({"object_id": obj.object_id, "points": pts})
    rec = {"key": "gt-vt", "video_id": "scene", "clip_id": "scene-clip", "clip_start": 0.0,
           "clip_end": scene.duration, "source": "procedural", "expression": "every moving shape",
           "fps": scene.spec.fps, "width": scene.spec.width, "height": scene.spec.height, "start_frame": 0,
           "end_frame": len(scene.frames) - 1, "timestamps": scene.times, "objects": objects}
    rec.update({"provenance": HUMAN} if occluded_flag else {"schema_version": 1})
    return validate("VideoTrack", rec)


def test_tracks_from_ground_truth_keep_identity_and_leave_out_hidden_objects(scene_clip):
    scene, clip = scene_clip
    target = messages_for("VideoTrack", _track_record(scene, True), clip)[1]["content"]
    marks = parse_tracks(target)
    id_to_object: dict[int, int] = {}
    for t in clip.timestamps:
        printed = {(q(m.x), q(m.y)): m.object_id for m in marks if m.time == float(f"{t:.1f}")}
        truth = {(q(s.x_norm), q(s.y_norm)): s.object_id
                 for s in scene.ground_truth_at(t).visible_objects}
        assert set(printed) == set(truth)  # visible ones printed; occluded and out-of-frame ones not
        for xy, tid in printed.items():
            assert id_to_object.setdefault(tid, truth[xy]) == truth[xy]  # one id per object, across frames
    assert sorted(id_to_object) == list(range(1, len(id_to_object) + 1))
    # the same target from a v1 record, which could not say "occluded" (None): per frame both are left out
    assert messages_for("VideoTrack", _track_record(scene, False), clip)[1]["content"] == target


def test_track_start_end_from_ground_truth_tells_occluded_from_absent(scene_clip):
    scene, clip = scene_clip
    status = {o.object_id: [scene.ground_truth_at(t).state(o.object_id) for t in clip.timestamps]
              for o in scene.objects}

    def expected(count_occluded: bool) -> set:
        out = set()
        for states in status.values():
            kinds = ("visible", "occluded") if count_occluded else ("visible",)
            seen = [i for i, s in enumerate(states) if s.status in kinds]
            for i in {seen[0], seen[-1]} if seen else ():
                if states[i].status == "visible":
                    out.add((float(f"{clip.timestamps[i]:.1f}"), q(states[i].x_norm), q(states[i].y_norm)))
        return out

    style = "video_point_track_start_end"
    hidden = parse_tracks(messages_for("VideoTrack", _track_record(scene, True), clip, style)[1]["content"])
    gone = parse_tracks(messages_for("VideoTrack", _track_record(scene, False), clip, style)[1]["content"])
    assert {(m.time, q(m.x), q(m.y)) for m in hidden} == expected(True)
    assert {(m.time, q(m.x), q(m.y)) for m in gone} == expected(False)
    assert expected(True) != expected(False)  # the scene makes the difference visible


def test_text_datasets_from_ground_truth(scene_clip):
    scene, clip = scene_clip
    on = _on(clip)
    cap = messages_for("Cap", {"key": "gt-cap", **on, "clip_caption": scene.caption}, clip)
    assert cap[1]["content"] == scene.caption
    for i, qa in enumerate(scene.qa):
        rec = validate("SubtitleQA", {"key": f"gt-qa{i}", **on, "question": qa.question, "answer": qa.answer,
                                      "negative_answers": list(qa.negatives), "category": qa.category,
                                      "subtitles": [c.model_dump() for c in clip.subtitles]})
        msgs = messages_for("SubtitleQA", rec, clip)
        lines = msgs[1]["content"][-1]["text"].split("\n")[1:-1]
        assert sorted(line[3:] for line in lines) == sorted([qa.answer, *qa.negatives])
        assert msgs[2]["content"] in lines and msgs[2]["content"][3:] == qa.answer
        block = msgs[0]["content"].split("\n")
        # every cue lies within 1 s of a 2 fps frame, so all are kept
        assert block[0] == "subtitle" and len(block) == len(scene.cues) + 2 and block[-1] == ""


def test_golden_conversations_through_the_shipped_template(tiny_molmo2_processor):
    for dataset, style, _, _ in GOLDEN + [("MultiImageQA", "correction_qa", "", "")]:
        msgs = messages_for(dataset, REC[dataset], MEDIA.get(dataset, CLIP), style)
        for gen in (False, True):
            text = tiny_molmo2_processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            assert text == render_chat(msgs, gen), (dataset, style)


# ----------------------------------------------------------------------------- procedural image sets


@pytest.fixture(scope="module")
def shape_set():
    from pipelines.procedural.image_sets import ImageSetSpec, make_image_set

    truth = make_image_set(ImageSetSpec(seed=5, kind="shapes"))
    ids = [f"img-{i}" for i in range(len(truth.images))]
    media = validate("image_set", {"key": "gt-set", "license": "CC0-1.0", "source": "procedural", "split": "train",
                                   "images": [{"image_id": i, "uri": f"images/{i}.png", "sha256": "0" * 64,
                                               "width": 448, "height": 336} for i in ids]})
    return truth, media, ids


def test_multi_image_points_from_ground_truth_are_the_renderer_s_text(shape_set):
    """A MultiImagePoint record made from a query's exact points trains as the text the image-set
    renderer wrote for that query, in every style: counts, 1-based image numbers, points."""
    truth, media, ids = shape_set
    assert any(q.count == 0 for q in truth.point_queries) and any(q.count > 1 for q in truth.point_queries)
    for q in truth.point_queries:
        rec = validate("MultiImagePoint", {"key": "gt-mip", "provenance": HUMAN, "image_set_id": "gt-set",
                                           "image_ids": ids, "label": q.label, "question": q.question,
                                           "count": q.count, "points": [{"image_index": p.image_index, "x": p.x,
                                                                         "y": p.y} for p in q.points]})
        assert messages_for("MultiImagePoint", rec, media, "multi_image_point_then_count")[1]["content"] == q.text
        counted = messages_for("MultiImagePoint", rec, media, "multi_image_counting")[1]["content"]
        assert parse_count(counted) == q.count
        marks = parse_points(messages_for("MultiImagePoint", rec, media)[1]["content"])
        assert collections.Counter(int(m.group) - 1 for m in marks) == collections.Counter(
            {i: n for i, n in enumerate(q.counts) if n})


def test_multi_image_qa_from_ground_truth_is_one_turn_per_pair(shape_set):
    truth, media, ids = shape_set
    pairs = [{"question": qa.question, "answer": qa.answer} for qa in truth.qa[:3]]
    rec = validate("MultiImageQA", {"key": "gt-miqa", "provenance": HUMAN, "image_set_id": "gt-set",
                                    "image_ids": ids, "qa_pairs": pairs})
    msgs = messages_for("MultiImageQA", rec, media)
    assert [b["image_id"] for b in msgs[0]["content"][:-1]] == ids
    assert [m["content"] for m in msgs[1::2]] == [p["answer"] for p in pairs]
    assert msgs[0]["content"][-1]["text"] == pairs[0]["question"]
    assert [m["content"] for m in msgs[2::2]] == [p["question"] for p in pairs[1:]]
    assert render_chat(msgs).startswith("".join(f"Image {i + 1}<|image|>" for i in range(len(ids))))
