"""The data contract of issue 8: older records upgrade, the new rules reject with the field path named.

``tests/data/records_before_contract/`` holds one record per dataset and an image set as the code
before this contract wrote them: ``{Dataset}.parquet`` (``schemas.arrow.to_table`` then
``pyarrow.parquet.write_table``) and ``records.jsonl`` (``record_to_json``), made from
``tests/test_records.py::examples()`` at commit b2f0e9f with that commit's ``schemas``. They are
files, not dicts rebuilt here, so the test reads what the old code really wrote.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_records import GENERATED, HUMAN, _error, examples

from schemas import migrations
from schemas.arrow import from_table, to_table
from schemas.records import (
    DATASETS,
    MAX_SET_IMAGES,
    MIN_SET_IMAGES,
    RecordValidationError,
    generated_provenance,
    get_record_type,
    human_provenance,
    migrate,
    validate,
)

OLD = Path(__file__).parent / "data" / "records_before_contract"
UNRECORDED = {"method": "unrecorded"}
REJECTED_OLD = {"SubtitleQA": "negative_answers: must have at least 3 items, got 1"}
"""Old records the new rules refuse (the old example had one wrong answer)."""


def _old_json() -> dict[str, dict]:
    lines = (OLD / "records.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["type"]: row["record"] for row in map(json.loads, lines)}


def test_the_old_files_are_the_previous_versions():
    old = _old_json()
    assert set(old) == set(DATASETS) | {"image_set"}
    for name, record in old.items():
        assert record["schema_version"] == get_record_type(name).SCHEMA_VERSION - 1, name
        meta = pq.read_schema(OLD / f"{name}.parquet").metadata
        assert meta[b"molmo2.schema_version"] == str(record["schema_version"]).encode()
        assert "provenance" not in record


def _expected_upgrade(name: str, old: dict) -> dict:
    want = copy.deepcopy(old)
    want["schema_version"] = get_record_type(name).SCHEMA_VERSION
    if name != "image_set":
        want["provenance"] = UNRECORDED
    if name == "VideoTrack":
        for obj in want["objects"]:
            obj["points"] = [None if p is None else {**p, "occluded": False} for p in obj["points"]]
    return want


@pytest.mark.parametrize("name", sorted(DATASETS) + ["image_set"])
def test_old_records_upgrade_from_dicts_and_from_parquet(name):
    old = _old_json()[name]
    table = pq.read_table(OLD / f"{name}.parquet")
    if name in REJECTED_OLD:
        for load in (lambda: validate(name, old), lambda: from_table(name, table)):
            with pytest.raises(RecordValidationError) as info:
                load()
            assert REJECTED_OLD[name] in str(info.value) and repr(old["key"]) in str(info.value)
        return
    want = validate(name, _expected_upgrade(name, old))
    assert validate(name, old) == want
    assert from_table(name, table) == [want]
    assert migrate(name, old)["schema_version"] == get_record_type(name).SCHEMA_VERSION


def test_old_tracks_read_off_as_absent():
    old = _old_json()["VideoTrack"]
    track = validate("VideoTrack", old)
    for obj, was in zip(track.objects, old["objects"]):
        for point, before in zip(obj.points, was["points"]):
            assert (point is None) == (before is None)
            assert point is None or (point.occluded is False and (point.x, point.y) == (before["x"], before["y"]))


def test_every_dataset_step_is_registered():
    steps = set(migrations.registered_migrations())
    for name, cls in DATASETS.items():
        assert (name, cls.SCHEMA_VERSION - 1) in steps, name
    assert ("image_set", 2) in steps


def _mip_with(n: int) -> dict:
    rec = examples()["MultiImagePoint"]
    rec["image_ids"] = [f"img_{i}" for i in range(n)]
    rec["points"] = [p for p in rec["points"] if p["image_index"] < n]
    rec["count"] = len(rec["points"])
    return rec


def _set_with(n: int) -> dict:
    rec = examples()["image_set"]
    image = rec["images"][0]
    rec["images"] = [{**image, "image_id": f"img_{i}"} for i in range(n)]
    return rec


def _track_point(obj: int, i: int, **point):
    def mutate(d):
        d["objects"][obj]["points"][i] = point
    return mutate


def _negatives(values):
    return lambda d: d.update(negative_answers=list(values))


@pytest.mark.parametrize("name, data, needle", [
    ("image_set", _set_with(1), "images: must have at least 2 items, got 1"),
    ("image_set", _set_with(6), "images: must have at most 5 items, got 6"),
    ("MultiImagePoint", _mip_with(1), "image_ids: must have at least 2 items, got 1"),
    ("MultiImagePoint", _mip_with(6), "image_ids: must have at most 5 items, got 6"),
    ("MultiImageQA", {**examples()["MultiImageQA"], "image_ids": [f"i{k}" for k in range(7)]},
     "image_ids: must have at most 5 items, got 7"),
    ("SynMultiImageQA", {**examples()["SynMultiImageQA"], "image_ids": ["one"]},
     "image_ids: must have at least 2 items, got 1"),
])
def test_image_sets_hold_two_to_five_images(name, data, needle):
    assert (MIN_SET_IMAGES, MAX_SET_IMAGES) == (2, 5)
    err = _error(name, data)
    assert needle in str(err) and repr(data["key"]) in str(err)
    for n in (2, 5):
        ok = _set_with(n) if name == "image_set" else {**_mip_with(n), "key": "ok"}
        validate("image_set" if name == "image_set" else "MultiImagePoint", ok)


@pytest.mark.parametrize("name", ["CapQA", "SubtitleQA"])
@pytest.mark.parametrize("mutate, needle", [
    (_negatives(["Blue", "Green"]), "negative_answers: must have at least 3 items, got 2"),
    (_negatives([]), "negative_answers: must have at least 3 items, got 0"),
    (_negatives(["Blue", "green", " GREEN! "]), "negative_answers[2]: must differ from negative_answers[1] after "
     "normalizing case, spaces and punctuation, got ' GREEN! '"),
    (_negatives(["Blue", "the  Sea", "Nobody"]), None),  # distinct: passes
    (lambda d: d["negative_answers"].__setitem__(1, d["answer"].upper() + "."),
     "negative_answers[1]: must differ from answer after normalizing case, spaces and punctuation"),
    (lambda d: d["negative_answers"].__setitem__(0, ""), "negative_answers[0]: must not be empty"),
])
def test_multiple_choice_needs_three_distinct_wrong_answers(name, mutate, needle):
    data = examples()[name]
    mutate(data)
    if needle is None:
        validate(name, data)
        return
    err = _error(name, data)
    assert needle in str(err) and f"{name} record {data['key']!r}" in str(err)


@pytest.mark.parametrize("mutate, needle", [
    (_track_point(0, 0, x=0.1), "objects[0].points[0].y: is required for a visible point"),
    (_track_point(1, 2, occluded=False), "objects[1].points[2].x: is required for a visible point"),
    (_track_point(1, 2, x=0.5, occluded=True), "objects[1].points[2].y: must be given together with x"),
    (_track_point(0, 2, x=0.5, y=1.5, occluded=True), "objects[0].points[2].y: must be <= 1, got 1.5"),
    (_track_point(0, 2, x=0.5, y=0.5, occluded="yes"), "objects[0].points[2].occluded: must be true or false"),
])
def test_track_points_are_visible_occluded_or_absent(mutate, needle):
    data = examples()["VideoTrack"]
    mutate(data)
    err = _error("VideoTrack", data)
    assert needle in str(err) and "'vt_0'" in str(err)


def test_track_point_states():
    track = validate("VideoTrack", examples()["VideoTrack"])
    states = [["visible" if p and not p.occluded else "occluded" if p else "absent" for p in o.points]
              for o in track.objects]
    assert states == [["visible", "occluded", "visible"], ["visible", "occluded", "absent"]]
    assert track.objects[1].points[1].x is None  # occluded with no position (the box was off)
    back = from_table("VideoTrack", to_table("VideoTrack", [track]))
    assert back == [track]


@pytest.mark.parametrize("provenance, needle", [
    ({**HUMAN, "annotators": None}, "provenance.annotators: is required when method is 'human'"),
    ({k: v for k, v in HUMAN.items() if k != "snapshot_version"},
     "provenance.snapshot_version: is required when method is 'human'"),
    ({**HUMAN, "seed": 3}, "provenance.seed: must be None when method is 'human', got 3"),
    ({**GENERATED, "task_id": 5}, "provenance.task_id: must be None when method is 'generated', got 5"),
    ({**GENERATED, "model": None}, "provenance.model: is required when method is 'generated'"),
    ({**HUMAN, "annotators": ["a", "b"]}, "provenance.annotators: must name one annotator per annotation id (1)"),
    ({**HUMAN, "annotation_ids": [9, 4], "annotators": ["a", "b"]},
     "provenance.annotation_ids: must be strictly increasing"),
    ({**HUMAN, "annotation_ids": []}, "provenance.annotation_ids: must have at least 1 items, got 0"),
    ({**HUMAN, "snapshot_version": 0}, "provenance.snapshot_version: must be >= 1, got 0"),
    ({**UNRECORDED, "project": "x"}, "provenance.project: must be None when method is 'unrecorded'"),
    ({"method": "guessed"}, "provenance.method: must be one of 'human', 'generated' or 'unrecorded'"),
    (None, "provenance: must be an object"),
])
def test_provenance_rules_name_the_field(provenance, needle):
    for name in ("Cap", "MultiImageQA"):
        data = {**examples()[name], "provenance": provenance}
        err = _error(name, data)
        assert needle in str(err), str(err)


def test_provenance_helpers_make_valid_records():
    human = human_provenance("caption: demo", 3, 12, [(88, "b@example.org"), (41, "a@example.org")])
    assert human["annotation_ids"] == [41, 88] and human["annotators"] == ["a@example.org", "b@example.org"]
    generated = generated_provenance("synth.capqa", "vllm", "Qwen/Qwen3-8B", 2, 11)
    assert generated["prompt_version"] == "2"
    for prov in (human, generated):
        record = validate("AskModelAnything", {**examples()["AskModelAnything"], "provenance": prov})
        assert record.provenance.method == prov["method"]
    # every dataset carries it, as a struct column of its Arrow table
    for name in DATASETS:
        assert "provenance" in get_record_type(name).model_fields
        record = validate(name, examples()[name])
        assert from_table(name, to_table(name, [record]))[0].provenance == record.provenance
