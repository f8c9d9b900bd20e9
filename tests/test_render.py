"""pipelines.render: every drawable type; byte-identical PNGs (threads, processes, busy CPU); pixels show the data."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image
from scipy import ndimage

from pipelines.render import (
    COLORS, MIN_SHAPE_RADIUS_PX, SHAPE_COLORS, SHAPE_KINDS, BarChart, Diagram, Document, LineChart, PieChart,
    Series, Shape, ShapeScene, Table, format_value, from_dict, render_image, render_png, to_dict,
)
from pipelines.render.text import BOX_FILL, RULE


def sample_items() -> dict[str, object]:
    shapes = tuple(Shape(kind, color, 0.12 + 0.15 * i, 0.3 + 0.4 * (i % 2), 0.09)
                   for i, (kind, color) in enumerate(zip(SHAPE_KINDS, SHAPE_COLORS)))
    return {
        "shapes": ShapeScene(shapes, 448, 336),
        "bar": BarChart("Fruit sales: North store", ("apples", "pears", "plums"), (10, 40, 25), "Units sold", "green"),
        "line": LineChart("Rainfall: Oslo", ("Jan", "Feb", "Mar", "Apr"),
                          (Series("Oslo", (10, 20, 30, 40), "blue"), Series("Lima", (5, 4, 3.5, 2), "red")), "mm"),
        "pie": PieChart("Budget", ("rent", "food", "travel", "other"), (50, 25, 15, 10)),
        "table": Table("Fruit sales: East store", ("Fruit", "Units sold"),
                       (("apples", "12"), ("pears", "7"), ("ünïcode", ""))),
        "document": Document("Order form", ("Please deliver the goods listed below before Friday to the back door.",),
                             (("Customer", "North store"), ("Apples", "12"), ("Total", "57"))),
        "diagram": Diagram("Making tea", ("Boil water", "Add tea", "Steep", "Pour", "Add milk"),
                           ((0, 1), (1, 2), (2, 3), (2, 4))),
    }


ITEMS = sample_items()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return chunks


def mask_of(pixels: np.ndarray, rgb) -> np.ndarray:
    return np.all(pixels == np.array(rgb, dtype=np.uint8), axis=-1)


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_each_type_renders_a_png_of_its_size_without_metadata(name):
    item = ITEMS[name]
    data = render_png(item)
    pixels = decode(data)
    assert pixels.shape == (item.height, item.width, 3)
    assert set(png_chunks(data)) == {b"IHDR", b"IDAT", b"IEND"}  # no tEXt / tIME / pHYs: nothing but pixels
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1


@pytest.mark.parametrize("name, change", [
    ("shapes", lambda s: dataclasses.replace(s, shapes=s.shapes[:-1])),
    ("bar", lambda s: dataclasses.replace(s, values=(10, 41, 25))),
    ("line", lambda s: dataclasses.replace(s, x_labels=("Jan", "Feb", "Mar", "May"))),
    ("pie", lambda s: dataclasses.replace(s, values=(50, 25, 10, 15))),
    ("table", lambda s: dataclasses.replace(s, rows=s.rows[:2] + (("ünïcode", "1"),))),
    ("document", lambda s: dataclasses.replace(s, fields=s.fields[:2] + (("Total", "58"),))),
    ("diagram", lambda s: dataclasses.replace(s, edges=((0, 1), (1, 2), (2, 3), (3, 4)))),
])
def test_same_item_same_bytes_and_a_change_shows(name, change):
    item = ITEMS[name]
    assert render_png(item) == render_png(dataclasses.replace(item))
    assert render_png(change(item)) != render_png(item)


def _digests(items) -> dict[str, str]:
    return {k: hashlib.sha256(render_png(v)).hexdigest() for k, v in items.items()}


_CHILD = """
import hashlib, json, sys
from pipelines.render import from_dict, render_png
items = json.load(sys.stdin)
print(json.dumps({k: hashlib.sha256(render_png(from_dict(v))).hexdigest() for k, v in items.items()}))
"""


def test_bytes_are_identical_across_threads_processes_settings_and_a_busy_cpu(repo_root):
    import matplotlib

    expected = _digests(ITEMS)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # charts share matplotlib's process-wide settings
            runs = list(pool.map(lambda _: _digests(ITEMS), range(4)))
        env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(repo_root)}
        items = json.dumps({k: to_dict(v) for k, v in ITEMS.items()})
        child = subprocess.run([sys.executable, "-c", _CHILD], input=items, capture_output=True, text=True, env=env,
                               cwd=repo_root, timeout=300)
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()
    assert child.returncode == 0, child.stderr
    assert all(run == expected for run in runs)
    assert json.loads(child.stdout) == expected
    with matplotlib.rc_context({"font.size": 30, "lines.linewidth": 9, "axes.facecolor": "black"}):
        assert _digests(ITEMS) == expected  # a caller's matplotlib settings never leak into a chart


def test_shapes_have_exact_colours_at_their_centres_and_nothing_blends():
    scene = ITEMS["shapes"]
    pixels = decode(render_png(scene))
    palette = {COLORS[c] for c in (scene.background, *(s.color for s in scene.shapes))}
    assert {tuple(p) for p in np.unique(pixels.reshape(-1, 3), axis=0)} == palette  # no anti-aliasing
    for shape in scene.shapes:
        col, row = int(shape.x * scene.width), int(shape.y * scene.height)
        assert tuple(pixels[row, col]) == COLORS[shape.color], shape
        labels, n = ndimage.label(mask_of(pixels, COLORS[shape.color]))
        assert n == 1  # one shape per colour here
        radius = shape.size * min(scene.width, scene.height)
        rows, cols = np.nonzero(labels == 1)
        assert np.hypot(cols + 0.5 - shape.x * scene.width, rows + 0.5 - shape.y * scene.height).max() <= radius + 1
    fills = {}
    for shape in scene.shapes:
        m = mask_of(pixels, COLORS[shape.color])
        rows, cols = np.nonzero(m)
        fills[shape.kind] = m.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
    assert fills["square"] > 0.97 and 0.74 < fills["circle"] < 0.82 and fills["star"] < 0.45
    assert 0.45 < fills["triangle"] < 0.56 and 0.45 < fills["diamond"] < 0.56 and 0.7 < fills["hexagon"] < 0.8


shape_st = st.builds(Shape, st.sampled_from(SHAPE_KINDS), st.sampled_from(SHAPE_COLORS), st.floats(0, 1),
                     st.floats(0, 1), st.floats(0.03, 0.5))


@settings(max_examples=30, deadline=None)
@given(st.lists(shape_st, min_size=1, max_size=6), st.integers(32, 200), st.integers(32, 200))
def test_any_shape_scene_round_trips_and_its_top_shape_owns_its_centre(shapes, width, height):
    if min(s.size for s in shapes) * min(width, height) < MIN_SHAPE_RADIUS_PX:
        with pytest.raises(ValueError, match=r"ShapeScene.shapes\[\d\].size: gives a radius of"):
            ShapeScene(tuple(shapes), width, height)
        return
    scene = ShapeScene(tuple(shapes), width, height)
    data = render_png(scene)
    assert from_dict(json.loads(json.dumps(to_dict(scene)))) == scene and render_png(scene) == data
    top = shapes[-1]  # drawn last, so nothing covers its centre
    col, row = min(int(top.x * width), width - 1), min(int(top.y * height), height - 1)
    assert tuple(decode(data)[row, col]) == COLORS[top.color]


def test_bar_heights_are_proportional_to_the_values():
    chart = ITEMS["bar"]
    bars = mask_of(decode(render_png(chart)), COLORS[chart.color])
    labels, n = ndimage.label(bars)
    assert n == len(chart.values)
    objects = sorted(ndimage.find_objects(labels), key=lambda s: s[1].start)  # left to right
    heights = [s[0].stop - s[0].start for s in objects]
    for h, v in zip(heights, chart.values):
        assert h / heights[0] == pytest.approx(v / chart.values[0], rel=0.04)
    assert len({s[0].stop for s in objects}) == 1  # all standing on the same axis


def test_pie_wedges_are_proportional_to_the_values():
    chart = ITEMS["pie"]
    pixels = decode(render_png(chart))
    areas = [mask_of(pixels, COLORS[c]).sum() for c in SHAPE_COLORS[:len(chart.values)]]
    for area, value in zip(areas, chart.values):
        assert area / sum(areas) == pytest.approx(value / sum(chart.values), abs=0.01)


def test_line_chart_series_rise_and_fall_as_their_values():
    chart = ITEMS["line"]
    pixels = decode(render_png(chart))
    for series, rising in zip(chart.series, (True, False)):
        rows, cols = np.nonzero(mask_of(pixels, COLORS[series.color]))
        left, right = rows[cols < np.percentile(cols, 20)].mean(), rows[cols > np.percentile(cols, 80)].mean()
        assert (right < left) == rising  # image rows grow downwards


def test_table_has_a_ruled_line_per_row_and_diagram_a_box_per_node():
    table = ITEMS["table"]
    pixels = decode(render_png(table))
    column = mask_of(pixels, RULE)[:, 30]
    assert ndimage.label(column)[1] == len(table.rows) + 2  # top, under the header, under every row
    diagram = ITEMS["diagram"]
    boxes = mask_of(decode(render_png(diagram)), BOX_FILL)
    labels, n = ndimage.label(boxes)
    sizes = ndimage.sum_labels(boxes, labels, range(1, n + 1))
    assert sum(sizes > 200) == len(diagram.nodes)  # the small pieces are the insides of letters


def test_numbers_print_the_same_everywhere():
    assert [format_value(v) for v in (12, 12.0, 3.5, 2.25, 0.1 + 0.2, 0)] == ["12", "12", "3.5", "2.25", "0.3", "0"]


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_to_dict_round_trips_through_json(name):
    item = ITEMS[name]
    back = from_dict(json.loads(json.dumps(to_dict(item))))
    assert back == item and render_png(back) == render_png(item)


@pytest.mark.parametrize("make, words", [
    (lambda: Shape("oval", "red", 0.5, 0.5, 0.1), "Shape.kind: must be one of circle"),
    (lambda: Shape("star", "white", 0.5, 0.5, 0.1), "Shape.color"),
    (lambda: Shape("star", "red", 1.5, 0.5, 0.1), r"Shape.x: must be a number in \[0, 1\], got 1.5"),
    (lambda: Shape("star", "red", 0.5, 0.5, 0.0), "Shape.size"),
    (lambda: ShapeScene((), 20, 300), "ShapeScene.width"),
    (lambda: BarChart("t", ("a", "b"), (1,)), "BarChart.values: must be a tuple of 2 numbers"),
    (lambda: BarChart("t", ("a",), (float("nan"),)), r"BarChart.values\[0\]"),
    (lambda: BarChart("", ("a",), (1,)), "BarChart.title"),
    (lambda: LineChart("t", ("a", "b"), (Series("s", (1, 2), "teal"),)), r"LineChart.series\[0\].color"),
    (lambda: PieChart("t", ("a", "b"), (1, 0)), r"PieChart.values\[1\]: must be a finite number > 0"),
    (lambda: Table("t", ("a", "b"), (("1",),)), r"Table.rows\[0\]: must be a tuple of 2 cells"),
    (lambda: Document("t", ("two\nlines",)), r"Document.lines\[0\]"),
    (lambda: Diagram("t", ("a", "b"), ((0, 1), (1, 0))), "Diagram.edges: must not form a cycle"),
    (lambda: Diagram("t", ("a", "b"), ((0, 2),)), r"Diagram.edges\[0\]"),
])
def test_bad_data_is_refused_naming_the_field(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_text_that_cannot_fit_is_an_error_not_a_cropped_image():
    long_row = tuple("a very long cell text" for _ in range(8))
    with pytest.raises(ValueError, match=r"Table 't' does not fit in 200x100 pixels"):
        render_image(Table("t", tuple("col" for _ in range(8)), (long_row,), 200, 100))
    with pytest.raises(ValueError, match="Document 'd' does not fit"):
        render_image(Document("d", ("word " * 400,), width=200, height=100))
    with pytest.raises(TypeError, match="not a drawable item: str"):
        render_image("a picture")
    with pytest.raises(ValueError, match="'type' must be one of"):
        from_dict({"type": "photo"})
