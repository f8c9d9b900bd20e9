"""Procedural image sets: seeded, exact ground truth checked against the pixels, answers recomputed, and ingested.

The checks read the images, not the generator: shapes are found as connected regions of each
palette colour and classified by how much of their bounding box they fill and its aspect ratio;
chart values are read back from the drawn items. Every question must be one the tests can
answer independently.
"""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scipy import ndimage

from pipelines.procedural.image_sets import (
    ImageSetSpec, chart_facts, generate_image_sets, load_ground_truth, make_image_set, write_image_set,
    write_manifest,
)
from pipelines.render import COLORS, SHAPE_COLORS, Diagram, format_value, render_png
from schemas.pointing import parse_count, parse_points
from schemas.prompts import messages_for
from schemas.records import generated_provenance, validate

# (bounding-box fill, width / height) of each kind, from its geometry (pipelines.render.shapes)
SIGNATURES = {"circle": (np.pi / 4, 1.0), "square": (1.0, 1.0), "diamond": (0.5, 1.0),
              "triangle": (0.5, 2 / np.sqrt(3)), "hexagon": (0.75, 2 / np.sqrt(3)), "star": (0.384, 1.051)}


def found_shapes(pixels: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """Every shape in an image: colour, kind, area, and a map of which shape owns each pixel (-1: none)."""
    shapes, owner = [], np.full(pixels.shape[:2], -1)
    for color in SHAPE_COLORS:
        mask = np.all(pixels == COLORS[color], axis=-1)
        labels, n = ndimage.label(mask)
        for k, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            region = labels[rows, cols] == k
            h, w = region.shape
            fill, aspect = region.sum() / (h * w), w / h
            kind = min(SIGNATURES, key=lambda s: abs(SIGNATURES[s][0] - fill) + 3 * abs(SIGNATURES[s][1] - aspect))
            owner[labels == k] = len(shapes)
            shapes.append({"color": color, "kind": kind, "area": int(region.sum())})
    return shapes, owner


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def check_point_queries(truth, images: list[np.ndarray]) -> None:
    """Each query's points sit on distinct shapes of its class, and each such shape has one point."""
    analysed = [found_shapes(p) for p in images]
    for q in truth.point_queries:
        for i, (pixels, (shapes, owner)) in enumerate(zip(images, analysed)):
            wanted = {j for j, s in enumerate(shapes) if q.label in (s["kind"], f"{s['color']} {s['kind']}")}
            h, w = owner.shape
            hit = [owner[int(p.y * h), int(p.x * w)] for p in q.points if p.image_index == i]
            assert sorted(hit) == sorted(wanted), f"{q.label!r} in image {i + 1}: points on {hit}, shapes {wanted}"
            assert q.counts[i] == len(wanted)
        assert q.count == sum(q.counts) == len(q.points)
        marks = parse_points(q.text)
        assert parse_count(q.text) == q.count
        assert sorted((int(m.group), round(m.x * 1000), round(m.y * 1000)) for m in marks) == \
            sorted((p.image_index + 1, round(1000.0 * p.x), round(1000.0 * p.y)) for p in q.points)


def phrase(numbers: list[int]) -> str:
    if not numbers:
        return "None of them"
    return f"Image {numbers[0]}" if len(numbers) == 1 else \
        "Images " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"


def shape_answer(question: str, analysed: list[list[dict]]) -> str:
    """The answer to a shape question, from the shapes found in the pixels."""
    count = lambda i, kind: sum(s["kind"] == kind for s in analysed[i])  # noqa: E731
    n = len(analysed)
    if m := re.fullmatch(r"How many (\w+)s are there in all the images together\?", question):
        return str(sum(count(i, m[1]) for i in range(n)))
    if m := re.fullmatch(r"Which image has the most (\w+)s\?", question):
        counts = [count(i, m[1]) for i in range(n)]
        assert counts.count(max(counts)) == 1
        return f"Image {counts.index(max(counts)) + 1}"
    if m := re.fullmatch(r"What color is the (\w+) in image (\d+)\?", question):
        (color,) = [s["color"] for s in analysed[int(m[2]) - 1] if s["kind"] == m[1]]
        return color
    if m := re.fullmatch(r"How many shapes are in image (\d+)\?", question):
        return str(len(analysed[int(m[1]) - 1]))
    if m := re.fullmatch(r"Which images contain a (\w+) (\w+)\?", question):
        return phrase([i + 1 for i in range(n) if any((s["color"], s["kind"]) == (m[1], m[2]) for s in analysed[i])])
    if m := re.fullmatch(r"What color is the largest shape in image (\d+)\?", question):
        return max(analysed[int(m[1]) - 1], key=lambda s: s["area"])["color"]
    if m := re.fullmatch(r"Are there more (\w+)s in image (\d+) than in image (\d+)\?", question):
        return "Yes" if count(int(m[2]) - 1, m[1]) > count(int(m[3]) - 1, m[1]) else "No"
    raise AssertionError(f"a shape question the test cannot answer: {question!r}")


def chart_answer(question: str, images) -> str:
    facts = [chart_facts(item) for item in images]
    if m := re.fullmatch(r"What value does image (\d+) show for (.+)\?", question):
        return format_value(facts[int(m[1]) - 1].value(m[2]))
    if m := re.fullmatch(r"Which image shows the highest value for (.+)\?", question):
        values = [f.value(m[1]) for f in facts]
        assert values.count(max(values)) == 1
        return f"Image {values.index(max(values)) + 1}"
    if m := re.fullmatch(r"In image (\d+), which \w+ has the highest value\?", question):
        f = facts[int(m[1]) - 1]
        return max(f.categories, key=f.value)
    if m := re.fullmatch(r"What is the total for (.+) across all the images\?", question):
        return format_value(sum(f.value(m[1]) for f in facts))
    if m := re.fullmatch(r"How much higher is the value for (.+) in image (\d+) than in image (\d+)\?", question):
        diff = facts[int(m[2]) - 1].value(m[1]) - facts[int(m[3]) - 1].value(m[1])
        assert diff > 0
        return format_value(diff)
    if m := re.fullmatch(r"Which \w+ does image (\d+) show\?", question):
        return facts[int(m[1]) - 1].entity
    raise AssertionError(f"a chart question the test cannot answer: {question!r}")


def diagram_answer(question: str, diagrams: list[Diagram]) -> str:
    steps = [len(d.nodes) for d in diagrams]
    if m := re.fullmatch(r"How many steps does the diagram in image (\d+) have\?", question):
        return str(steps[int(m[1]) - 1])
    if m := re.fullmatch(r"What is the first step in image (\d+)\?", question):
        d = diagrams[int(m[1]) - 1]
        (first,) = [n for k, n in enumerate(d.nodes) if k not in {b for _, b in d.edges}]
        return first
    if m := re.fullmatch(r'In image (\d+), which step comes right after "(.+)"\?', question):
        d = diagrams[int(m[1]) - 1]
        (after,) = [d.nodes[b] for a, b in d.edges if d.nodes[a] == m[2]]
        return after
    if question == "Which image shows the process with the most steps?":
        assert steps.count(max(steps)) == 1
        return f"Image {steps.index(max(steps)) + 1}"
    if m := re.fullmatch(r'Which image shows the process "(.+)"\?', question):
        (i,) = [i for i, d in enumerate(diagrams) if d.title == m[1]]
        return f"Image {i + 1}"
    if question == "How many steps are there in all the diagrams together?":
        return str(sum(steps))
    raise AssertionError(f"a diagram question the test cannot answer: {question!r}")


def test_same_spec_same_set_and_bytes_other_seed_other_set(tmp_path):
    spec = ImageSetSpec(seed=3, kind="shapes")
    a, b = make_image_set(spec), make_image_set(spec)
    assert a == b and a.to_json() == b.to_json()
    images_a, gt_a = write_image_set(a, tmp_path / "a", "s")
    images_b, gt_b = write_image_set(b, tmp_path / "b", "s")
    assert [p.read_bytes() for p in images_a] == [p.read_bytes() for p in images_b]
    assert gt_a.read_bytes() == gt_b.read_bytes()
    assert make_image_set(ImageSetSpec(seed=4, kind="shapes")) != a
    assert load_ground_truth(gt_a.read_text()) == a
    assert [render_png(item) for item in load_ground_truth(gt_a.read_text()).images] == \
        [p.read_bytes() for p in images_a]  # the ground truth draws the very same images


@pytest.mark.parametrize("seed", range(8))
def test_shape_sets_points_and_answers_match_the_pixels(seed):
    truth = make_image_set(ImageSetSpec(seed=seed, kind="shapes"))
    assert 2 <= len(truth.images) <= 5
    images = [decode(render_png(item)) for item in truth.images]
    check_point_queries(truth, images)
    assert any(q.count == 0 for q in truth.point_queries) and any(q.count > 1 for q in truth.point_queries)
    analysed = [found_shapes(p)[0] for p in images]
    for scene, shapes in zip(truth.images, analysed):  # the classifier sees what was drawn
        assert sorted((s["color"], s["kind"]) for s in shapes) == sorted((s.color, s.kind) for s in scene.shapes)
    assert len(truth.qa) >= 5
    for qa in truth.qa:
        assert qa.answer == shape_answer(qa.question, analysed), qa


@pytest.mark.parametrize("seed", range(8))
def test_chart_and_diagram_answers_are_recomputed_from_what_is_drawn(seed):
    charts = make_image_set(ImageSetSpec(seed=seed, kind="charts"))
    assert len(charts.qa) >= 4 and not charts.point_queries
    for qa in charts.qa:
        assert qa.answer == chart_answer(qa.question, charts.images), qa
    diagrams = make_image_set(ImageSetSpec(seed=seed, kind="diagrams"))
    assert len({d.title for d in diagrams.images}) == len(diagrams.images)
    for qa in diagrams.qa:
        assert qa.answer == diagram_answer(qa.question, list(diagrams.images)), qa


def test_a_wrong_answer_is_caught():
    truth = make_image_set(ImageSetSpec(seed=0, kind="charts"))
    qa = truth.qa[0]
    assert chart_answer(qa.question, truth.images) != str(int(qa.answer) + 1)


def test_bad_specs_and_ground_truth_are_refused(tmp_path):
    with pytest.raises(ValueError, match="ImageSetSpec.n_images must be 2 to 5"):
        ImageSetSpec(n_images=6)
    with pytest.raises(ValueError, match="ImageSetSpec.kind must be one of shapes, charts, diagrams"):
        ImageSetSpec(kind="photos")
    with pytest.raises(ValueError, match="not molmo2-data/image-set-ground-truth v1"):
        load_ground_truth(json.dumps({"schema": "molmo2-data/scene-ground-truth", "version": 1}))
    with pytest.raises(ValueError, match="unknown split"):
        generate_image_sets(tmp_path, 1, splits=("dev",))
    with pytest.raises(ValueError, match="key must be"):
        write_image_set(make_image_set(ImageSetSpec()), tmp_path, "a.b")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    from pipelines.ingest.pipeline import run

    root = tmp_path_factory.mktemp("imagesets")
    files = generate_image_sets(root / "inputs", 3, seed=5, splits=("train", "validation", "test"))
    manifest = write_manifest(files, root / "manifest.jsonl")
    summary = run(["--manifest", str(manifest), "--out", str(root / "out")])
    return root / "out", files, summary


def test_image_sets_ingest_as_lossless_png_with_their_split_source_and_license(ingested):
    from shards.reader import iter_samples

    out, files, summary = ingested
    assert summary["outcomes"].get("succeeded") == 3 and sum(summary["outcomes"].values()) == 3
    assert pq.read_table(out / "failures.parquet").num_rows == 0
    records = {r["key"]: r for r in pq.read_table(out / "imagesets.parquet").to_pylist()}
    assert sorted(records) == [f.key for f in files]
    for f in files:
        r = records[f.key]
        assert (r["split"], r["source"], r["license"]) == (f.split, "procedural", "CC0-1.0")
        assert [i["uri"] for i in r["images"]] == [str(p) for p in f.images]
    shards = [i for i in json.loads((out / "shards.json").read_text()) if i["shard"].startswith("imagesets/")]
    samples = {s["__key__"]: s for i in shards for s in iter_samples(out / i["shard"], expected_sha256=i["sha256"])}
    for f in files:
        sample = samples[f.key]
        members = sorted(k for k in sample if k[0].isdigit())
        assert members == [f"{i}.png" for i in range(len(f.images))]
        for name, path in zip(members, f.images):
            assert sample[name][:8] == b"\x89PNG\r\n\x1a\n"
            assert np.array_equal(decode(sample[name]), decode(path.read_bytes()))  # lossless end to end


def test_ground_truth_points_land_on_the_shapes_in_the_ingested_images(ingested):
    from shards.reader import iter_samples

    out, files, _ = ingested
    shards = [i for i in json.loads((out / "shards.json").read_text()) if i["shard"].startswith("imagesets/")]
    samples = {s["__key__"]: s for i in shards for s in iter_samples(out / i["shard"], expected_sha256=i["sha256"])}
    shape_sets = [f for f in files if f.spec.kind == "shapes"]
    assert shape_sets
    for f in shape_sets:
        truth = load_ground_truth(f.ground_truth.read_text())
        sample = samples[f.key]
        images = [decode(sample[f"{i}.png"]) for i in range(len(truth.images))]
        for q in truth.point_queries:  # the colour under every point is the shape's colour
            for p in q.points:
                h, w = images[p.image_index].shape[:2]
                rgb = tuple(images[p.image_index][int(p.y * h), int(p.x * w)])
                assert rgb in {COLORS[c] for c in SHAPE_COLORS if c in q.label or " " not in q.label}
        check_point_queries(truth, images)


MADE = generated_provenance("pipelines.procedural.image_sets", "procedural", "none", 1, 0)
"""Records made straight from the ground truth say so."""


def test_ground_truth_makes_valid_multi_image_records_and_conversations(ingested):
    out, files, _ = ingested
    sets = {r["key"]: r for r in pq.read_table(out / "imagesets.parquet").to_pylist()}
    made = 0
    for f in files:
        truth, media = load_ground_truth(f.ground_truth.read_text()), sets[f.key]
        image_ids = [i["image_id"] for i in media["images"]]
        qa = validate("MultiImageQA", {"key": f"{f.key}-qa", "provenance": MADE, "image_set_id": f.key,
                                       "image_ids": image_ids,
                                       "qa_pairs": [{"question": q.question, "answer": q.answer} for q in truth.qa]})
        assert len(messages_for("MultiImageQA", qa, media)) == 2 * len(truth.qa)
        for q in truth.point_queries:
            record = validate("MultiImagePoint", {
                "key": f"{f.key}-{q.label.replace(' ', '_')}", "provenance": MADE, "image_set_id": f.key,
                "image_ids": image_ids,
                "label": q.label, "question": q.question, "count": q.count,
                "points": [{"image_index": p.image_index, "x": p.x, "y": p.y} for p in q.points]})
            messages = messages_for("MultiImagePoint", record, media, style="multi_image_point_then_count")
            assert messages[-1]["content"] == q.text  # the ground truth's text is the training target
            made += 1
    assert made >= 4
