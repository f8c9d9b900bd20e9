"""Procedural image sets with exact ground truth, for MultiImagePoint and MultiImageQA (demo and tests).

One job: turn a seeded :class:`ImageSetSpec` into an :class:`ImageSetTruth` (2-5 images drawn
by :mod:`pipelines.render`, point queries, question / answer pairs) and write sets as lossless
PNG files, their ground truth JSON and ingest manifest rows (``images`` set rows with an explicit
``split``, ``source`` and ``license``; README, Ingest).

Kinds of sets (``SET_KINDS``):

* ``shapes``: 3-7 shapes per image from a vocabulary of three kinds and three colours per set,
  never touching (their bounding circles stay 4 px apart and inside the image), so each shape's
  centre pixel has its colour. Point queries: every kind in the set, one colour-and-kind label,
  and one kind that appears in no image (count 0, ``There are none.``). QA from
  :func:`pipelines.procedural.image_set_qa.shape_qa`.
* ``charts``: one topic (fruit sales, rainfall, visitors) over the same categories, one entity per
  image (a store, a city, a museum), each drawn as a bar, line or pie chart, a table or a
  document; QA reads and compares the values (``chart_qa``).
* ``diagrams``: one flow diagram of a different process per image (``diagram_qa``).

Files of set ``key``: ``{key}_{i}.png`` (i from 0) and ``{key}.json`` (``ImageSetTruth.to_json``);
each file is written to a temporary name, then renamed.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipelines.procedural import image_set_qa
from pipelines.procedural.image_set_model import (
    GT_SCHEMA, GT_VERSION, MAX_IMAGES, MIN_IMAGES, SET_KINDS, ImageSetSpec, ImageSetTruth, PointQuery, SetPoint,
    SetQA, load_ground_truth,
)
from pipelines.render import (
    SHAPE_COLORS, SHAPE_KINDS, BarChart, Diagram, Document, LineChart, PieChart, Series, Shape, ShapeScene, Table,
    format_value, render_png,
)
from schemas.pointing import format_multi_image_points
from shards.atomic import write_bytes

__all__ = [
    "GT_SCHEMA", "GT_VERSION", "SET_KINDS", "SOURCE", "LICENSE", "ImageSetSpec", "SetPoint", "PointQuery", "SetQA",
    "ImageSetTruth", "ImageSetFiles", "load_ground_truth", "make_image_set", "write_image_set",
    "generate_image_sets", "write_manifest", "chart_facts",
]

SOURCE = "procedural"
LICENSE = "CC0-1.0"
_GAP_PX = 4
_PLACE_TRIES = 60
_TOPICS = (  # title, measure, category noun, categories, entity noun, entities, ordered categories
    ("Fruit sales", "Units sold", "fruit", ("apples", "pears", "plums", "cherries", "grapes", "lemons"),
     "store", ("North store", "South store", "East store", "West store", "Harbor store"), False),
    ("Monthly rainfall", "Rainfall (mm)", "month", ("Jan", "Feb", "Mar", "Apr", "May", "Jun"),
     "city", ("Oslo", "Lima", "Perth", "Osaka", "Quito"), True),
    ("Museum visitors", "Visitors", "day", ("Mon", "Tue", "Wed", "Thu", "Fri"),
     "museum", ("Art museum", "Science museum", "History museum", "Toy museum", "Train museum"), True),
)
_PROCESSES = (
    ("Making tea", ("Boil water", "Warm the pot", "Add tea", "Pour water", "Steep", "Serve")),
    ("Baking bread", ("Mix flour", "Knead dough", "Let it rise", "Shape loaf", "Bake", "Cool")),
    ("Planting a tree", ("Pick a spot", "Dig a hole", "Place the tree", "Fill with soil", "Water it")),
    ("Shipping an order", ("Receive order", "Pick items", "Pack box", "Print label", "Ship")),
    ("Doing laundry", ("Sort clothes", "Wash", "Rinse", "Dry", "Fold", "Put away")),
)
_CHART_COLORS = ("blue", "green", "orange", "purple", "red")


# ---------------------------------------------------------------- shapes

def _place(spec: ImageSetSpec, rng: random.Random, placed: list[Shape], kind: str, color: str) -> Shape | None:
    """A shape at a random free spot (bounding circles apart by ``_GAP_PX``), or None when none is found."""
    short = min(spec.width, spec.height)
    size = round(rng.uniform(0.06, 0.11), 4)
    r = size * short
    for _ in range(_PLACE_TRIES):
        x = round(rng.uniform((r + _GAP_PX) / spec.width, 1 - (r + _GAP_PX) / spec.width), 4)
        y = round(rng.uniform((r + _GAP_PX) / spec.height, 1 - (r + _GAP_PX) / spec.height), 4)
        if all(((x - s.x) * spec.width) ** 2 + ((y - s.y) * spec.height) ** 2
               > (r + s.size * short + _GAP_PX) ** 2 for s in placed):
            return Shape(kind, color, x, y, size)
    return None


def _shape_scenes(spec: ImageSetSpec, rng: random.Random, n: int) -> list[ShapeScene]:
    kinds, colors = rng.sample(SHAPE_KINDS, 3), rng.sample(SHAPE_COLORS, 3)
    scenes = []
    for _ in range(n):
        shapes: list[Shape] = []
        for _ in range(rng.randint(3, 7)):
            shape = _place(spec, rng, shapes, rng.choice(kinds), rng.choice(colors))
            if shape is not None:
                shapes.append(shape)
        scenes.append(ShapeScene(tuple(shapes), spec.width, spec.height))
    return scenes


def _point_query(scenes: list[ShapeScene], label: str) -> PointQuery:
    """Every shape whose kind (or ``"color kind"``) is ``label``, as points and html-v2 text."""
    def matches(s: Shape) -> bool:
        return label in (s.kind, s.label)

    groups = [sorted((s.x, s.y) for s in scene.shapes if matches(s)) for scene in scenes]
    points = tuple(SetPoint(i, x, y) for i, group in enumerate(groups) for x, y in group)
    numbered = [(i + 1, g) for i, g in enumerate(groups) if g]
    text = format_multi_image_points([i for i, _ in numbered], [g for _, g in numbered], label, "point_then_count")
    return PointQuery(label=label, question=f"Point to every {label} in these images.", count=len(points),
                      counts=tuple(len(g) for g in groups), points=points, text=text)


def _shape_set(spec: ImageSetSpec, rng: random.Random, n: int) -> ImageSetTruth:
    scenes = _shape_scenes(spec, rng, n)
    shapes = [s for scene in scenes for s in scene.shapes]
    kinds = sorted({s.kind for s in shapes})
    labels = list(kinds) + [rng.choice(sorted({s.label for s in shapes}))]
    labels.append(rng.choice(sorted(set(SHAPE_KINDS) - set(kinds))))  # a class no image has
    return ImageSetTruth(spec=spec, topic="shapes", images=tuple(scenes),
                         point_queries=tuple(_point_query(scenes, label) for label in labels),
                         qa=tuple(image_set_qa.shape_qa(scenes, rng)))


# ---------------------------------------------------------------- charts, tables, documents

def chart_facts(item: Any) -> image_set_qa.ChartFacts:
    """The entity and values a chart-set image shows, read back from the item that draws it.

    Raises:
        TypeError: ``item`` is not one of the types a chart set draws.
    """
    if isinstance(item, BarChart):
        return image_set_qa.ChartFacts(item.title.split(": ", 1)[1], item.categories, item.values)
    if isinstance(item, LineChart):
        return image_set_qa.ChartFacts(item.series[0].name, item.x_labels, item.series[0].values)
    if isinstance(item, PieChart):
        return image_set_qa.ChartFacts(item.title.split(": ", 1)[1], item.labels, item.values)
    if isinstance(item, Table):
        return image_set_qa.ChartFacts(item.title.split(": ", 1)[1], tuple(r[0] for r in item.rows),
                                       tuple(float(r[1]) if "." in r[1] else int(r[1]) for r in item.rows))
    if isinstance(item, Document):
        fields = dict(item.fields)
        rest = [(k, v) for k, v in item.fields if k != "Place"]
        return image_set_qa.ChartFacts(fields["Place"], tuple(k for k, _ in rest), tuple(int(v) for _, v in rest))
    raise TypeError(f"chart_facts: a chart set has no {type(item).__name__} images")


def _chart_item(form: str, topic: tuple, entity: str, cats: tuple[str, ...], values: tuple[int, ...],
                color: str, spec: ImageSetSpec) -> Any:
    title, measure, cat_noun = topic[0], topic[1], topic[2]
    size = {"width": spec.width, "height": spec.height}
    if form == "bar":
        return BarChart(f"{title}: {entity}", cats, values, y_label=measure, color=color, **size)
    if form == "line":
        return LineChart(f"{title}: {entity}", cats, (Series(entity, values, color),), y_label=measure, **size)
    if form == "pie":
        return PieChart(f"{title}: {entity}", cats, values, **size)
    if form == "table":
        return Table(f"{title}: {entity}", (cat_noun.capitalize(), measure),
                     tuple((c, format_value(v)) for c, v in zip(cats, values)), **size)
    return Document(f"{title} report", (f"{measure} for each {cat_noun}, as counted at {entity}.",),
                    (("Place", entity),) + tuple((c, format_value(v)) for c, v in zip(cats, values)), **size)


def _chart_set(spec: ImageSetSpec, rng: random.Random, n: int) -> ImageSetTruth:
    topic = rng.choice(_TOPICS)
    title, _, cat_noun, categories, entity_noun, entities, ordered = topic
    k = rng.randint(3, 5)
    cats = categories[:k] if ordered else tuple(rng.sample(categories, k))
    forms = ("bar", "pie", "table", "document") + (("line",) if ordered else ())
    items = []
    for entity in rng.sample(entities, n):
        values = tuple(rng.randint(5, 95) for _ in cats)
        items.append(_chart_item(rng.choice(forms), topic, entity, cats, values, rng.choice(_CHART_COLORS), spec))
    qa = image_set_qa.chart_qa([chart_facts(item) for item in items], cat_noun, entity_noun, rng)
    return ImageSetTruth(spec=spec, topic=title, images=tuple(items), qa=tuple(qa))


# ---------------------------------------------------------------- diagrams

def _diagram_set(spec: ImageSetSpec, rng: random.Random, n: int) -> ImageSetTruth:
    diagrams = []
    for name, steps in rng.sample(_PROCESSES, n):
        m = rng.randint(3, len(steps))
        edges = [(i, i + 1) for i in range(m - 1)]
        if m >= 4 and rng.random() < 0.5:  # the last two steps both follow the one before them
            edges[-1] = (m - 3, m - 1)
        diagrams.append(Diagram(name, steps[:m], tuple(edges), spec.width, spec.height))
    return ImageSetTruth(spec=spec, topic="processes", images=tuple(diagrams),
                         qa=tuple(image_set_qa.diagram_qa(diagrams, rng)))


# ---------------------------------------------------------------- sets and files

def make_image_set(spec: ImageSetSpec) -> ImageSetTruth:
    """Compute an image set's ground truth (nothing is drawn or written).

    Args:
        spec: the set description; every random choice comes from ``spec.seed`` (and the kind).

    Returns:
        The :class:`ImageSetTruth`: images as render items, point queries (shape sets), QA pairs.
    """
    rng = random.Random(f"imageset:{spec.seed}:{spec.kind}")
    n = spec.n_images if spec.n_images is not None else rng.randint(MIN_IMAGES, MAX_IMAGES)
    build = {"shapes": _shape_set, "charts": _chart_set, "diagrams": _diagram_set}[spec.kind]
    return build(spec, rng, n)


@dataclass(frozen=True)
class ImageSetFiles:
    """Where one written set is, and the split it is meant for."""

    key: str
    """The set's id (manifest ``id``; ingest keeps it as the ImageSet key)."""
    images: tuple[Path, ...]
    ground_truth: Path
    split: str
    spec: ImageSetSpec

    def manifest_row(self, source: str = SOURCE, license: str = LICENSE) -> dict[str, Any]:
        """The ingest manifest row of this set: ``id``, ``images``, ``split``, ``source``, ``license``."""
        return {"id": self.key, "images": [str(p) for p in self.images], "split": self.split,
                "source": source, "license": license}


def write_image_set(truth: ImageSetTruth, out_dir: str | os.PathLike, key: str) -> tuple[tuple[Path, ...], Path]:
    """Draw every image of ``truth`` to ``{key}_{i}.png`` and save ``{key}.json`` in ``out_dir``.

    Returns:
        ``(image paths in order, ground truth path)``.

    Raises:
        ValueError: ``key`` is not a WebDataset-safe key (letters, digits, ``_``, ``-``).
    """
    if not key or not all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        raise ValueError(f"write_image_set: key must be letters, digits, '_' or '-', got {key!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for i, item in enumerate(truth.images):
        path = out / f"{key}_{i}.png"
        write_bytes(path, render_png(item))
        images.append(path)
    gt = out / f"{key}.json"
    write_bytes(gt, (truth.to_json() + "\n").encode("utf-8"))
    return tuple(images), gt


def generate_image_sets(out_dir: str | os.PathLike, n: int, seed: int = 0, kinds: tuple[str, ...] = SET_KINDS,
                        splits: tuple[str, ...] = ("train",), prefix: str = "imageset",
                        **overrides: Any) -> list[ImageSetFiles]:
    """Write ``n`` image sets named ``{prefix}_0000``... with their ground truth.

    Set ``i`` is ``kinds[i % len(kinds)]`` with seed ``seed * 100_000 + i`` and split
    ``splits[i % len(splits)]``: it depends only on ``(seed, i)``, so a bigger ``n`` extends a
    smaller one.

    Args:
        out_dir: folder to write into (created if missing).
        n: number of sets (>= 0).
        seed: corpus seed.
        kinds: kinds to cycle through.
        splits: splits to cycle through (``train``, ``validation``, ``test``).
        prefix: key prefix (letters, digits, ``_``, ``-``).
        **overrides: ImageSetSpec fields forced on every set (``n_images``, ``width``, ``height``).

    Returns:
        One :class:`ImageSetFiles` per set, in order.

    Raises:
        ValueError: a negative ``n``, empty ``kinds`` / ``splits``, an unknown split or kind.
        TypeError: an override that is not an ImageSetSpec field.
    """
    if n < 0 or not kinds or not splits:
        raise ValueError(f"generate_image_sets: need n >= 0 and non-empty kinds and splits, got {n}, {kinds}, {splits}")
    bad = [s for s in splits if s not in ("train", "validation", "test")]
    if bad:
        raise ValueError(f"generate_image_sets: unknown split(s) {bad}; use train, validation or test")
    files = []
    for i in range(n):
        spec = replace(ImageSetSpec(seed=seed * 100_000 + i, kind=kinds[i % len(kinds)]), **overrides)
        key = f"{prefix}_{i:04d}"
        images, gt = write_image_set(make_image_set(spec), out_dir, key)
        files.append(ImageSetFiles(key, images, gt, splits[i % len(splits)], spec))
    return files


def write_manifest(files: list[ImageSetFiles], path: str | os.PathLike, source: str = SOURCE,
                   license: str = LICENSE) -> Path:
    """Write the sets' manifest rows as JSONL (sorted keys), atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(f.manifest_row(source, license), sort_keys=True) + "\n" for f in files)
    write_bytes(path, text.encode("utf-8"))
    return path
