"""Filters: each way a generated question can be wrong ends as a failure record naming the reason."""
from __future__ import annotations

import json

import pytest

from pipelines.synth.backends import Reply
from schemas.provenance import generated_provenance
from pipelines.synth.filters import answer_leaked, content_words, make_records, transcript_support

PROV = generated_provenance("synth.capqa", "test", "test-model", "capqa.v1", 0)
CUES = [{"start": 0.0, "end": 1.5, "text": "We see a red circle."},
        {"start": 1.5, "end": 3.0, "text": "The blue square is entering from the left now."},
        {"start": 3.0, "end": 4.0, "text": "Three more squares follow it."}]
VIDEO = {"video_id": "v1", "clip_id": "c1", "clip_start": 0.0, "clip_end": 4.0}
GOOD = {"question": "What enters after the red circle?", "answer": "The blue square",
        "negatives": ["A green diamond", "A yellow circle", "Nothing"], "category": "subtitle_event"}


def _reply(*items) -> Reply:
    return Reply(text=json.dumps({"questions": list(items)}))


def _errors(dataset, *items, media=VIDEO, **kw):
    out = make_records(dataset, "c1", _reply(*items), media, PROV, **kw)
    return [f["error_type"] for f in out.failures], out


def test_transcript_support_finds_content_words_in_one_or_two_consecutive_cues():
    assert transcript_support("The blue square enters from the left", CUES) == (1.0, [])  # enters ~ entering
    assert transcript_support("three squares", CUES)[0] == 1.0  # 'three' and '3' are one word
    assert transcript_support("a red circle, then a blue square", CUES)[0] == 1.0  # two consecutive cues
    share, missing = transcript_support("a purple triangle", CUES)
    assert share == 0.0 and missing == ["purple", "triangle"]
    assert transcript_support("red circle and three squares", CUES)[0] < 1.0  # cues 1 and 3 are not consecutive
    assert transcript_support("it is", CUES) == (0.0, [])  # nothing to find
    assert content_words("The squares are entering!") == content_words("square enters") == ["squar", "enter"]
    assert content_words("butterflies") == content_words("butterfly")


def test_subtitleqa_keeps_supported_answers_and_rejects_made_up_ones():
    media = {**VIDEO, "subtitles": CUES}
    made_up = {**GOOD, "question": "What enters next?", "answer": "A purple triangle"}
    errors, out = _errors("SubtitleQA", GOOD, made_up, media=media)
    assert errors == ["unsupported_by_transcript"] and [r["answer"] for r in out.records] == ["The blue square"]
    assert "purple" in out.failures[0]["message"] and out.failures[0]["input_id"] == "c1 question 1"
    errors, _ = _errors("SubtitleQA", {**GOOD, "answer": "A purple square"}, media=media, support_threshold=0.5)
    assert errors == []  # half the content words are enough at 0.5


@pytest.mark.parametrize("change, error", [
    ({"negatives": ["The BLUE square.", "A", "B"]}, "answer_in_negatives"),
    ({"negatives": ["Nothing", "nothing!", "A cat"]}, "repeated_negatives"),
    ({"negatives": ["A", "B"]}, "too_few_negatives"),
    ({"question": "Is the blue square what enters after the red circle?"}, "answer_leaked"),
    ({"answer": ""}, "invalid_item"),
    ({"negatives": "A, B, C"}, "invalid_item"),
    ({"category": None}, "invalid_item"),
])
def test_a_bad_question_is_a_failure_with_its_reason(change, error):
    errors, out = _errors("CapQA", {**GOOD, **change})
    assert errors == [error] and not out.records
    (failure,) = out.failures
    assert failure["outcome"] == "failed" and failure["stage"] == "synth" and json.loads(failure["input"])


def test_answer_leak_needs_the_answers_words_in_order():
    assert answer_leaked("Which circle is red, the red circle or the blue one?", "the red circle")
    assert not answer_leaked("How many red circles appear in the video?", "2")
    assert not answer_leaked("Does the bar move?", "yes")  # no content word: never called leaked


def test_a_repeated_question_is_a_duplicate_of_the_kept_record_and_extra_questions_are_over_limit():
    again = {**GOOD, "question": "what enters AFTER the red circle"}
    other = {**GOOD, "question": "Which shape comes second?"}
    errors, out = _errors("CapQA", GOOD, again, other, max_questions=2)
    assert errors == ["duplicate_question", "over_limit"]
    dup = out.failures[0]
    assert dup["outcome"] == "duplicate" and dup["duplicate_of"] == out.records[0]["key"]


def test_replies_that_are_no_question_list_are_one_failure_each():
    for text, error in (("", "unparsable"), ("[1, 2]", "unparsable"), ('{"questions": []}', "no_questions"),
                        ('```json\n{"questions": []}\n```', "no_questions")):
        out = make_records("CapQA", "c1", Reply(text=text), VIDEO, PROV)
        assert [f["error_type"] for f in out.failures] == [error] and not out.records
        assert out.failures[0]["key"] == "c1-capqa-reply"


def test_a_record_the_schema_refuses_is_an_invalid_record_naming_the_field():
    media = {**VIDEO, "clip_end": -1.0}
    errors, out = _errors("CapQA", GOOD, media=media)
    assert errors == ["invalid_record"] and "clip_end" in out.failures[0]["message"]


def test_synmultiimageqa_needs_an_explanation():
    media = {"image_set_id": "s1", "image_ids": ["a", "b"]}
    item = {"question": "Which image shows more apples?", "explanation": "Image 1 shows 4, image 2 shows 7.",
            "answer": "Image 2", "category": "chart"}
    errors, out = _errors("SynMultiImageQA", item, {**item, "question": "Which?", "explanation": " "}, media=media)
    assert errors == ["invalid_item"] and out.records[0]["explanation"] == item["explanation"]
