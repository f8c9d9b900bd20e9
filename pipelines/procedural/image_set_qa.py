"""Question programs over an image set's ground truth: each answer is computed, never written by hand.

One job: given what each image of a set shows (shape scenes, per-image chart values, flow
diagrams), make question / answer pairs with a category and a short explanation. Each program
is asked at most once per set and only where its answer is unique (no question about "the image
with the most stars" when two images tie). Choices come from the ``random.Random`` passed in.
Images are named by their 1-based number, as the prompt numbers them.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.procedural.image_set_model import SetQA
from pipelines.render import Diagram, ShapeScene, format_value

__all__ = ["ChartFacts", "images_phrase", "shape_qa", "chart_qa", "diagram_qa", "LARGEST_MARGIN"]

LARGEST_MARGIN = 1.2
"""The largest shape of an image is asked about only when it is this many times the next one's size."""


@dataclass(frozen=True)
class ChartFacts:
    """The numbers one chart-like image shows: whose they are and one value per category."""

    entity: str
    categories: tuple[str, ...]
    values: tuple[float, ...]

    def value(self, category: str) -> float:
        """The value shown for ``category``."""
        return self.values[self.categories.index(category)]


def images_phrase(numbers: Sequence[int]) -> str:
    """``[1]`` -> ``"Image 1"``, ``[1, 3]`` -> ``"Images 1 and 3"``, ``[]`` -> ``"None of them"``."""
    if not numbers:
        return "None of them"
    if len(numbers) == 1:
        return f"Image {numbers[0]}"
    return "Images " + ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"


def _listing(counts: Sequence[int | float]) -> str:
    """``"image 1 has 2, image 2 has 0"``: one clause per image."""
    return ", ".join(f"image {i + 1} has {format_value(c)}" for i, c in enumerate(counts))


def _plural(count: int, noun: str) -> str:
    """``1 star``, ``2 stars``, ``0 stars``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _unique_argmax(values: Sequence[float]) -> int | None:
    best = max(values)
    return values.index(best) if values.count(best) == 1 else None


def shape_qa(scenes: Sequence[ShapeScene], rng: random.Random) -> list[SetQA]:
    """Questions about counts, colours and sizes of shapes across the scenes of a set."""
    kinds = sorted({s.kind for scene in scenes for s in scene.shapes})
    colors = sorted({s.color for scene in scenes for s in scene.shapes})
    n = len(scenes)
    per_kind = {k: [sum(s.kind == k for s in scene.shapes) for scene in scenes] for k in kinds}
    out: list[SetQA] = []
    if kinds:
        kind = rng.choice(kinds)
        counts = per_kind[kind]
        out.append(SetQA(f"How many {kind}s are there in all the images together?", str(sum(counts)), "count_total",
                         f"Counting {kind}s: {_listing(counts)}; {sum(counts)} in all."))
        unique = [k for k in kinds if _unique_argmax(per_kind[k]) is not None]
        if unique:
            kind = rng.choice(unique)
            best = _unique_argmax(per_kind[kind])
            out.append(SetQA(f"Which image has the most {kind}s?", f"Image {best + 1}", "most",
                             f"Counting {kind}s: {_listing(per_kind[kind])}; image {best + 1} has the most."))
    single = [(i, k) for i, scene in enumerate(scenes) for k in kinds if per_kind[k][i] == 1]
    if single:
        i, kind = rng.choice(single)
        color = next(s.color for s in scenes[i].shapes if s.kind == kind)
        out.append(SetQA(f"What color is the {kind} in image {i + 1}?", color, "color",
                         f"Image {i + 1} has one {kind}, and it is {color}."))
    i = rng.randrange(n)
    out.append(SetQA(f"How many shapes are in image {i + 1}?", str(len(scenes[i].shapes)), "count_image",
                     f"Image {i + 1} shows {_plural(len(scenes[i].shapes), 'shape')}."))
    if kinds and colors:
        color, kind = rng.choice(colors), rng.choice(kinds)
        having = [i + 1 for i, scene in enumerate(scenes)
                  if any(s.kind == kind and s.color == color for s in scene.shapes)]
        where = images_phrase(having).lower() if having else "no image"
        out.append(SetQA(f"Which images contain a {color} {kind}?", images_phrase(having), "which_images",
                         f"A {color} {kind} appears in {where}."))
    clear = []
    for i, scene in enumerate(scenes):
        sizes = sorted((s.size for s in scene.shapes), reverse=True)
        if len(sizes) >= 2 and sizes[0] >= LARGEST_MARGIN * sizes[1]:
            clear.append(i)
    if clear:
        i = rng.choice(clear)
        largest = max(scenes[i].shapes, key=lambda s: s.size)
        out.append(SetQA(f"What color is the largest shape in image {i + 1}?", largest.color, "largest",
                         f"The largest shape in image {i + 1} is a {largest.color} {largest.kind}."))
    if kinds and n >= 2:
        a, b = rng.sample(range(n), 2)
        kind = rng.choice(kinds)
        ca, cb = per_kind[kind][a], per_kind[kind][b]
        out.append(SetQA(f"Are there more {kind}s in image {a + 1} than in image {b + 1}?", "Yes" if ca > cb else "No",
                         "compare", f"Image {a + 1} has {_plural(ca, kind)} and image {b + 1} has {cb}."))
    return out


def chart_qa(facts: Sequence[ChartFacts], category_noun: str, entity_noun: str,
             rng: random.Random) -> list[SetQA]:
    """Questions reading and comparing values across chart-like images sharing one set of categories."""
    n = len(facts)
    categories = list(facts[0].categories)
    out: list[SetQA] = []
    i, cat = rng.randrange(n), rng.choice(categories)
    v = facts[i].value(cat)
    out.append(SetQA(f"What value does image {i + 1} show for {cat}?", format_value(v), "value",
                     f"Image {i + 1} ({facts[i].entity}) shows {format_value(v)} for {cat}."))
    unique = [c for c in categories if _unique_argmax([f.value(c) for f in facts]) is not None]
    if unique:
        cat = rng.choice(unique)
        values = [f.value(cat) for f in facts]
        best = _unique_argmax(values)
        out.append(SetQA(f"Which image shows the highest value for {cat}?", f"Image {best + 1}", "most",
                         f"For {cat}, {_listing(values)}; image {best + 1} is highest."))
    tops = [j for j, f in enumerate(facts) if _unique_argmax(list(f.values)) is not None]
    if tops:
        j = rng.choice(tops)
        top = facts[j].categories[_unique_argmax(list(facts[j].values))]
        out.append(SetQA(f"In image {j + 1}, which {category_noun} has the highest value?", top, "max_category",
                         f"In image {j + 1}, {top} has the highest value, {format_value(facts[j].value(top))}."))
    cat = rng.choice(categories)
    values = [f.value(cat) for f in facts]
    total = sum(values)
    out.append(SetQA(f"What is the total for {cat} across all the images?", format_value(total), "sum",
                     f"For {cat}, {_listing(values)}; together {format_value(total)}."))
    pairs = [(a, b, c) for a in range(n) for b in range(n) for c in categories
             if facts[a].value(c) > facts[b].value(c)]
    if pairs:
        a, b, cat = rng.choice(pairs)
        va, vb = facts[a].value(cat), facts[b].value(cat)
        out.append(SetQA(f"How much higher is the value for {cat} in image {a + 1} than in image {b + 1}?",
                         format_value(va - vb), "difference",
                         f"Image {a + 1} shows {format_value(va)} and image {b + 1} shows {format_value(vb)} "
                         f"for {cat}; the difference is {format_value(va - vb)}."))
    i = rng.randrange(n)
    out.append(SetQA(f"Which {entity_noun} does image {i + 1} show?", facts[i].entity, "entity",
                     f"Image {i + 1} gives the figures of {facts[i].entity}."))
    return out


def _successors(diagram: Diagram, node: int) -> list[int]:
    return [b for a, b in diagram.edges if a == node]


def diagram_qa(diagrams: Sequence[Diagram], rng: random.Random) -> list[SetQA]:
    """Questions about the steps of flow diagrams (one process per image)."""
    n = len(diagrams)
    steps = [len(d.nodes) for d in diagrams]
    out: list[SetQA] = []
    i = rng.randrange(n)
    out.append(SetQA(f"How many steps does the diagram in image {i + 1} have?", str(steps[i]), "count_image",
                     f"The diagram in image {i + 1} ({diagrams[i].title}) has {steps[i]} boxes."))
    i = rng.randrange(n)
    firsts = [k for k in range(len(diagrams[i].nodes)) if all(b != k for _, b in diagrams[i].edges)]
    if len(firsts) == 1:
        first = diagrams[i].nodes[firsts[0]]
        out.append(SetQA(f"What is the first step in image {i + 1}?", first, "first",
                         f"In image {i + 1}, no arrow points to \"{first}\", so it comes first."))
    nexts = [(j, k) for j, d in enumerate(diagrams) for k in range(len(d.nodes)) if len(_successors(d, k)) == 1]
    if nexts:
        j, k = rng.choice(nexts)
        after = diagrams[j].nodes[_successors(diagrams[j], k)[0]]
        out.append(SetQA(f"In image {j + 1}, which step comes right after \"{diagrams[j].nodes[k]}\"?", after,
                         "next_step", f"In image {j + 1}, the only arrow from \"{diagrams[j].nodes[k]}\" "
                         f"leads to \"{after}\"."))
    best = _unique_argmax(steps)
    if best is not None:
        out.append(SetQA("Which image shows the process with the most steps?", f"Image {best + 1}", "most",
                         f"Counting boxes: {_listing(steps)}; image {best + 1} has the most."))
    i = rng.randrange(n)
    out.append(SetQA(f"Which image shows the process \"{diagrams[i].title}\"?", f"Image {i + 1}", "which_image",
                     f"The diagram titled \"{diagrams[i].title}\" is image {i + 1}."))
    out.append(SetQA("How many steps are there in all the diagrams together?", str(sum(steps)), "count_total",
                     f"Counting boxes: {_listing(steps)}; {sum(steps)} in all."))
    return out
