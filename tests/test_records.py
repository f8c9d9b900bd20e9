"""Tests for the record schemas: validation errors, Arrow/Parquet round trips, migrations, JSON."""
from __future__ import annotations

import copy
import io
import json
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import migrations
from schemas.arrow import arrow_schema, arrow_type, from_table, to_table
from schemas.records import (
    DATASETS,
    RECORD_TYPES,
    RecordValidationError,
    UnknownRecordTypeError,
    VideoPoint,
    canonical_json,
    get_record_type,
    migrate,
    record_from_json,
    record_to_json,
    validate,
)
from schemas.sampling import sample_times

SHA = "0123456789abcdef" * 4
TAG = "Ça va? 日本語の字幕 🎬"


HUMAN = {"method": "human", "project": "video_point: demo", "snapshot_version": 2, "task_id": 17,
         "annotation_ids": [41], "annotators": ["ann1@example.org"]}
GENERATED = {"method": "generated", "generator": "synth.capqa", "backend": "vllm", "model": "Qwen/Qwen3-8B@a1b2c3",
             "prompt_version": "3", "seed": 7}


def _video_base(key: str, provenance: Optional[dict] = None) -> dict:
    return {"key": key, "provenance": copy.deepcopy(provenance or HUMAN), "video_id": "vid_001",
            "clip_id": "vid_001-clip_000", "clip_start": 10.0, "clip_end": 20.0}


def _images() -> list[str]:
    return ["img_a", "img_b", "img_c"]


def examples() -> dict[str, dict]:
    """One valid record dict per registered type."""
    cues = [{"start": 0.0, "end": 2.5, "text": "Hello"}, {"start": 3.0, "end": 9.5, "text": TAG}]
    return {
        "video": {"key": "vid_001", "uri": "https://example.org/v.mp4", "sha256": SHA, "duration": 61.2,
                  "fps": 29.97, "num_frames": 1834, "width": 1280, "height": 720, "rotation": 0,
                  "license": "CC-BY-4.0", "source": "youtube", "split": "train"},
        "clip": {"key": "vid_001-clip_000", "video_id": "vid_001", "start": 10.0, "end": 12.2,
                 "timestamps": sample_times(2.2), "frame_indices": [300, 315, 330, 345, 360, 366],
                 "frame_width": 640, "frame_height": 360, "max_frames": 128, "max_fps": 2.0,
                 "subtitles": [{"start": 0.0, "end": 2.0, "text": TAG}], "split": "validation"},
        "image_set": {"key": "set_01", "images": [
            {"image_id": i, "uri": f"/data/{i}.jpg", "sha256": SHA, "width": 800, "height": 600}
            for i in _images()], "license": "CC0", "source": "pixmo", "split": "train"},
        "failure": {"key": "vid_009-decode", "input_id": "https://example.org/v.mp4?x=1",
                    "stage": "decode", "error_type": "InvalidDataError", "message": "moov atom not found",
                    "input": json.dumps({"url": "https://example.org/v.mp4?x=1"}), "outcome": "failed",
                    "duplicate_of": None},
        "review_decision": {"key": "rd_0", "dataset": "CapQA", "record_key": "capqa_0", "decision": "edit",
                            "edits": {"answer": "Orange-yellow"}, "reviewer": "reviewer@example.org",
                            "decided_at": "2026-11-27T10:15:00Z", "note": "more precise"},
        "Cap": {**_video_base("cap_0"), "clip_caption": f"A penguin waddles. {TAG}",
                "merged_caption": "Penguins on ice.", "frame_merged_caption": None, "annotation_score": 4.5},
        "AskModelAnything": {**_video_base("ama_0"), "question": "What is the bird doing?",
                             "answer": "It waddles towards the sea."},
        "CapQA": {**_video_base("capqa_0", GENERATED), "question": "What color is the penguin's beak?",
                  "answer": "Orange", "negative_answers": ["Blue", "Green", "Purple"],
                  "category": "attribute"},
        "SubtitleQA": {**_video_base("subqa_0", GENERATED), "question": "What does the narrator greet?",
                       "answer": "The audience", "negative_answers": ["The penguin", "The sea", "Nobody"],
                       "category": "speech",
                       "subtitles": cues},
        "VideoPoint": {**_video_base("vp_0"), "source": "youtube", "duration": 61.2, "label": "penguin",
                       "question": "Point to the penguins.", "count": 3,
                       "points": [{"time": 0.5, "x": 0.1, "y": 0.2}, {"time": 0.5, "x": 0.305, "y": 0.4},
                                  {"time": 2.0, "x": 0.55, "y": 0.6}],
                       "category": "animal", "annotator_unsure": False},
        "VideoTrack": {**_video_base("vt_0"), "source": "mevis", "expression": "the person on the left",
                       "fps": 6.0, "width": 1280, "height": 720, "start_frame": 60, "end_frame": 63,
                       "timestamps": [0.0, 0.5, 1.0],
                       "objects": [{"object_id": 0, "points": [{"x": 0.078, "y": 0.417, "occluded": False},
                                                               {"x": 0.08, "y": 0.41, "occluded": True},
                                                               {"x": 0.094, "y": 0.396, "occluded": False}]},
                                   {"object_id": 3, "points": [{"x": 0.156, "y": 0.208, "occluded": False},
                                                               {"x": None, "y": None, "occluded": True}, None]}]},
        "MultiImageQA": {"key": "miqa_0", "provenance": HUMAN, "image_set_id": "set_01",
                         "image_ids": _images(),
                         "qa_pairs": [{"question": "Which image shows a cat?", "answer": "Image 2"},
                                      {"question": "¿Cuántos perros?", "answer": "Dos"}]},
        "MultiImagePoint": {"key": "mip_0", "provenance": HUMAN, "image_set_id": "set_01", "image_ids": _images(),
                            "label": "dog",
                            "question": "Point to every dog.", "count": 2,
                            "points": [{"image_index": 0, "x": 0.156, "y": 0.104},
                                       {"image_index": 2, "x": 0.469, "y": 0.417}]},
        "SynMultiImageQA": {"key": "syn_0", "provenance": GENERATED, "image_set_id": "set_02",
                            "image_ids": ["chart_1", "table_1"],
                            "question": "Which year had the higher sales?",
                            "explanation": "The chart peaks in 2021 and the table agrees.", "answer": "2021",
                            "category": "chart"},
    }


def _error(name: str, data: dict) -> RecordValidationError:
    with pytest.raises(RecordValidationError) as info:
        validate(name, data)
    return info.value


def _parquet_roundtrip(table: pa.Table) -> pa.Table:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return pq.read_table(io.BytesIO(buf.getvalue()))


def test_every_type_has_an_example():
    assert set(examples()) == set(RECORD_TYPES)
    assert set(DATASETS) == {"Cap", "AskModelAnything", "CapQA", "SubtitleQA", "VideoPoint", "VideoTrack",
                             "MultiImageQA", "MultiImagePoint", "SynMultiImageQA"}


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_validate_and_json_roundtrip(name):
    data = examples()[name]
    record = validate(name, data)
    assert isinstance(record, get_record_type(name))
    assert record.schema_version == get_record_type(name).SCHEMA_VERSION
    text = record_to_json(record)
    assert record_from_json(name, text) == record
    assert record_from_json(name, text.encode("utf-8")) == record
    assert record_to_json(record_from_json(name, text)) == text


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_arrow_parquet_roundtrip(name):
    record = validate(name, examples()[name])
    table = to_table(name, [record, examples()[name]])
    assert table.schema.equals(arrow_schema(name), check_metadata=True)
    back = from_table(name, _parquet_roundtrip(table))
    assert back == [record, record]
    meta = arrow_schema(name).metadata
    assert meta[b"molmo2.schema_version"] == str(get_record_type(name).SCHEMA_VERSION).encode()
    assert meta[b"molmo2.record_type"] == name.encode()


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_empty_table(name):
    table = to_table(name, [])
    assert table.num_rows == 0 and from_table(name, _parquet_roundtrip(table)) == []


def test_missing_field():
    data = examples()["VideoPoint"]
    del data["label"]
    err = _error("VideoPoint", data)
    assert "VideoPoint record 'vp_0'" in str(err) and "label: is required" in str(err)
    assert err.key == "vp_0" and err.errors == [("label", "is required", None)]


def test_coordinate_out_of_range():
    data = examples()["VideoPoint"]
    data["points"][2]["x"] = 1.2
    err = _error("VideoPoint", data)
    assert "'vp_0'" in str(err) and "points[2].x: must be <= 1, got 1.2" in str(err)
    assert err.errors[0].path == "points[2].x" and err.errors[0].value == 1.2


def test_negative_time():
    data = examples()["VideoPoint"]
    data["points"][0]["time"] = -0.5
    assert "points[0].time: must be >= 0, got -0.5" in str(_error("VideoPoint", data))
    cue = examples()["SubtitleQA"]
    cue["subtitles"][1]["start"] = -1.0
    message = str(_error("SubtitleQA", cue))
    assert "'subqa_0'" in message and "subtitles[1].start: must be >= 0, got -1" in message


def test_unknown_dataset():
    with pytest.raises(UnknownRecordTypeError) as info:
        validate("VideoPointz", examples()["VideoPoint"])
    message = str(info.value)
    assert "'vp_0'" in message and "unknown record type 'VideoPointz'" in message
    for known in ("Cap", "VideoPoint", "clip", "failure"):
        assert known in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownRecordTypeError, match="known types: AskModelAnything"):
        get_record_type("nope")
    with pytest.raises(UnknownRecordTypeError):
        arrow_schema("nope")


def test_wrong_type_is_not_coerced():
    data = examples()["VideoPoint"]
    data["points"][1]["y"] = "0.4"
    err = _error("VideoPoint", data)
    assert "points[1].y: must be a number, got str '0.4'" in str(err)
    data = examples()["VideoPoint"]
    data["count"] = 3.0
    assert "count: must be an integer, got float 3" in str(_error("VideoPoint", data))
    data = examples()["VideoPoint"]
    data["annotator_unsure"] = "false"
    assert "annotator_unsure: must be true or false" in str(_error("VideoPoint", data))


def test_extra_field_rejected():
    data = examples()["Cap"]
    data["caption_lenght"] = "typo"
    data["clip_id"] = "vid_001-clip_000"
    err = _error("Cap", data)
    assert "'cap_0'" in str(err) and "caption_lenght: is not a field of this record type" in str(err)


@pytest.mark.parametrize("name, mutate, needle", [
    ("VideoPoint", lambda d: d.update(count=2), "count: must equal the number of points (3), got 2"),
    ("VideoPoint", lambda d: d["points"].reverse(),
     "points[1].time: must be sorted (non-decreasing), got 0.5 after 2"),
    ("VideoPoint", lambda d: d["points"][2].update(time=2.2), "points[2].time: must be on the 0.5 s grid"),
    ("VideoPoint", lambda d: d["points"][2].update(time=10.5),
     "points[2].time: must be <= the clip duration (10), got 10.5"),
    ("VideoPoint", lambda d: d.update(key="vp.0"), "key: must be a key of letters, digits, '_' or '-' only"),
    ("clip", lambda d: d["timestamps"].__setitem__(2, 1.1), "timestamps[2]: must equal sample_times"),
    ("clip", lambda d: d.update(max_frames=4), "timestamps: must equal sample_times"),
    ("clip", lambda d: d["frame_indices"].pop(),
     "frame_indices: must have one index per timestamp (6), got 5"),
    ("clip", lambda d: d["frame_indices"].__setitem__(1, 1), "frame_indices[1]: must be sorted"),
    ("clip", lambda d: d.update(end=9.0), "end: must be >= start (10), got 9"),
    ("video", lambda d: d.update(rotation=45), "rotation: must be one of 0, 90, 180 or 270, got 45"),
    ("video", lambda d: d.update(sha256="ABC"), "sha256: must be 64 lowercase hex digits"),
    ("VideoTrack", lambda d: d["objects"][1]["points"].pop(), "objects[1].points: must have one entry per"),
    ("VideoTrack", lambda d: d["objects"][1].update(object_id=0), "objects[1].object_id: must be unique"),
    ("CapQA", lambda d: d["negative_answers"].append("Orange"),
     "negative_answers[3]: must differ from answer"),
    ("MultiImagePoint", lambda d: d["points"][1].update(image_index=3),
     "points[1].image_index: must be < the number of images (3), got 3"),
    ("MultiImageQA", lambda d: d.update(image_ids=["img_a"]), "image_ids: must have at least 2 items"),
    ("failure", lambda d: d.update(outcome="duplicate"), "duplicate_of: must be set exactly when outcome"),
    ("failure", lambda d: d.update(input="{not json"), "input: must be JSON text"),
    ("SubtitleQA", lambda d: d["subtitles"][1].update(end=12.0),
     "subtitles[1].end: must be <= the clip duration (10), got 12"),
    ("Cap", lambda d: d.update(clip_caption=""), "clip_caption: must not be empty"),
    ("Cap", lambda d: d.update(clip_start=float("nan")), "clip_start: must be a finite number"),
])
def test_rule_violations_name_key_path_and_rule(name, mutate, needle):
    data = examples()[name]
    mutate(data)
    err = _error(name, data)
    assert needle in str(err)
    assert repr(data["key"]) in str(err)
    assert err.key == data["key"] and err.record_type == name


@pytest.mark.parametrize("start, end, nominal", [(10.1, 20.1, 10.0), (0.3, 0.8, 0.5), (1.1, 100.1, 99.0)])
def test_clip_times_tolerate_float_noise_in_end_minus_start(start, end, nominal):
    for times in (sample_times(end - start), sample_times(nominal)):
        data = {**examples()["clip"], "start": start, "end": end, "timestamps": times,
                "frame_indices": list(range(len(times))), "subtitles": None}
        assert validate("clip", data).timestamps == times


def test_non_mapping_and_bad_json():
    assert "<record>: must be an object, got list" in str(_error("Cap", [1, 2]))
    with pytest.raises(RecordValidationError, match="<json>: is not valid JSON"):
        record_from_json("Cap", "{")


def _v1_video_point() -> dict:
    data = examples()["VideoPoint"]
    data["schema_version"] = 1
    for point in data["points"]:
        point["x"], point["y"] = round(point["x"] * 100, 6), round(point["y"] * 100, 6)
    return data


def test_migrate_v1_dict():
    v1 = _v1_video_point()
    del v1["provenance"]
    snapshot = copy.deepcopy(v1)
    upgraded = migrate("VideoPoint", v1)
    assert v1 == snapshot, "migrate must not modify its input"
    assert upgraded["schema_version"] == 3 and upgraded["points"][0] == {"time": 0.5, "x": 0.1, "y": 0.2}
    assert upgraded["provenance"] == {"method": "unrecorded"}
    record = validate("VideoPoint", v1)
    assert record.schema_version == VideoPoint.SCHEMA_VERSION == 3
    assert record == validate("VideoPoint", {**examples()["VideoPoint"], "provenance": {"method": "unrecorded"}})
    assert ("VideoPoint", 1) in migrations.registered_migrations()


def test_v1_parquet_loads_as_current():
    v1 = _v1_video_point()
    del v1["provenance"]
    table = pa.Table.from_pylist([v1]).replace_schema_metadata(
        {b"molmo2.record_type": b"VideoPoint", b"molmo2.schema_version": b"1"})
    back = from_table("VideoPoint", _parquet_roundtrip(table))
    assert back == [validate("VideoPoint", {**examples()["VideoPoint"], "provenance": {"method": "unrecorded"}})]
    # a v1 file without the schema_version column takes the version from the schema metadata
    no_column = _parquet_roundtrip(table.drop_columns(["schema_version"]))
    assert from_table("VideoPoint", no_column)[0].points[2].x == pytest.approx(0.55)


def test_future_version_rejected():
    data = examples()["VideoPoint"]
    data["schema_version"] = 4
    err = _error("VideoPoint", data)
    assert "VideoPoint record 'vp_0' is invalid: schema_version:" in str(err)
    assert "newer than the newest VideoPoint version this code reads (3)" in str(err)
    with pytest.raises(migrations.MigrationError, match="upgrade molmo2-data"):
        migrate("VideoPoint", data)
    table = to_table("VideoPoint", [examples()["VideoPoint"]])
    future = table.set_column(1, "schema_version", pa.array([4]))
    with pytest.raises(RecordValidationError, match="newer than"):
        from_table("VideoPoint", future)


def test_old_version_without_migration_and_direct_construction():
    data = examples()["Cap"]
    data["schema_version"] = 0
    assert "schema_version: must be >= 1, got 0" in str(_error("Cap", data))
    with pytest.raises(ValueError, match="through schemas.records.migrate"):
        VideoPoint.model_validate(_v1_video_point())


def test_table_of_other_type_rejected():
    table = to_table("Cap", [examples()["Cap"]])
    with pytest.raises(ValueError, match="holds 'Cap' records, not 'AskModelAnything'"):
        from_table("AskModelAnything", table)
    with pytest.raises(TypeError, match="expected AskModelAnything records"):
        to_table("AskModelAnything", [validate("Cap", examples()["Cap"])])


def test_non_ascii_and_canonical_json():
    record = validate("Cap", examples()["Cap"])
    text = record_to_json(record)
    assert TAG in text and "\\u" not in text
    assert text == canonical_json(json.loads(text))
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'
    back = from_table("Cap", _parquet_roundtrip(to_table("Cap", [record])))
    assert back[0].clip_caption.endswith(TAG)
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_arrow_type_mapping():
    assert arrow_type(Optional[dict[str, list[float]]]) == (
        pa.map_(pa.string(), pa.field("value", pa.list_(pa.field("item", pa.float64(), False)), False)), True)
    with pytest.raises(TypeError):
        arrow_type(int | str)
    with pytest.raises(TypeError):
        arrow_type(dict[int, str])
    schema = arrow_schema("VideoTrack")
    points = schema.field("objects").type.value_type.field("points").type
    assert points.value_field.nullable and not schema.field("key").nullable
    assert b"referring expression" in schema.field("expression").metadata[b"description"]
    description = arrow_schema("Cap").field("clip_start").metadata[b"description"]
    assert description == b"Clip start in source-video seconds."


@given(st.text(alphabet="abcXYZ019_-", min_size=1, max_size=40))
def test_any_key_of_allowed_characters_is_accepted(key):
    data = examples()["AskModelAnything"]
    data["key"] = key
    assert validate("AskModelAnything", data).key == key


@given(st.text(min_size=1, max_size=20).filter(lambda s: "." in s or not s.isascii() or " " in s))
def test_keys_with_dots_or_other_characters_are_rejected(key):
    data = examples()["AskModelAnything"]
    data["key"] = key
    with pytest.raises(RecordValidationError, match="key: must be a key"):
        validate("AskModelAnything", data)


@pytest.mark.parametrize("name", ["video", "image_set"])
def test_v1_asset_records_gain_given_id(name):
    """video and image_set v2 keep the manifest's given id; a v1 record (table) loads with None."""
    v1 = copy.deepcopy(examples()[name])
    v1["schema_version"] = 1
    upgraded = migrate(name, v1)
    assert upgraded["schema_version"] == get_record_type(name).SCHEMA_VERSION and upgraded["given_id"] is None
    if name == "image_set":
        assert all(image["given_id"] is None for image in upgraded["images"])
    table = pa.Table.from_pylist([v1]).replace_schema_metadata(
        {b"molmo2.record_type": name.encode(), b"molmo2.schema_version": b"1"})
    assert from_table(name, _parquet_roundtrip(table)) == [validate(name, upgraded)]
    given = validate(name, {**examples()[name], "given_id": "clip.01"})
    assert given.given_id == "clip.01" and from_table(name, to_table(name, [given.model_dump()]))[0] == given
