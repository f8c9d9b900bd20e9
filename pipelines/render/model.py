"""What the renderer draws: one frozen dataclass per kind of image, checked when built.

One job: state the data every rendered image is a pure function of (shape scenes, bar / line /
pie charts, tables, small documents, flow diagrams), check it up front with errors that name the
field, and turn it into plain JSON data and back (``to_dict`` / ``from_dict``), so ground truth
saved next to an image is enough to draw that image again. Drawing is in
:mod:`pipelines.render.shapes`, :mod:`pipelines.render.charts` and :mod:`pipelines.render.text`.

Conventions: sizes in pixels are the output image's ``width`` x ``height``; positions are
normalized to [0, 1] from the top-left corner (Molmo 2 points, see
../shared/reference/molmo2-formats.md); colours are names from ``COLORS``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "COLORS", "SHAPE_COLORS", "SHAPE_KINDS", "MIN_SHAPE_RADIUS_PX", "Shape", "ShapeScene", "BarChart", "Series",
    "LineChart",
    "PieChart", "Table", "Document", "Diagram", "CONTENT_TYPES", "format_value", "to_dict", "from_dict",
]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 130, 0),
    "yellow": (235, 200, 0),
    "green": (30, 150, 50),
    "blue": (30, 80, 220),
    "purple": (130, 50, 180),
    "pink": (240, 110, 180),
    "brown": (130, 80, 30),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
}
"""Named colours, far apart in hue or lightness, so a colour name is a fair answer."""
SHAPE_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
"""Colours a shape may have (never the white background or the grays of text and lines)."""
SHAPE_KINDS = ("circle", "square", "triangle", "star", "diamond", "hexagon")
_MIN_SIDE, _MAX_SIDE = 32, 4096
MIN_SHAPE_RADIUS_PX = 4.0
"""Smallest radius a shape may have in pixels: large enough that the pixel under its centre is its own."""


def format_value(value: float) -> str:
    """The text a chart, table or answer shows for a number: ``12`` for 12.0, else up to 2 decimals."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _fail(cls: type, field: str, why: str, value: Any) -> ValueError:
    return ValueError(f"{cls.__name__}.{field}: {why}, got {value!r}")


def _check_size(obj: Any) -> None:
    for name in ("width", "height"):
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or not _MIN_SIDE <= value <= _MAX_SIDE:
            raise _fail(type(obj), name, f"must be an int of {_MIN_SIDE} to {_MAX_SIDE} pixels", value)


def _check_color(obj: Any, field: str, value: Any, allowed=COLORS) -> None:
    if value not in allowed:
        raise _fail(type(obj), field, f"must be one of {', '.join(allowed)}", value)


def _check_text(obj: Any, field: str, value: Any, empty_ok: bool = False) -> None:
    if not isinstance(value, str) or (not empty_ok and not value.strip()) or "\n" in value:
        raise _fail(type(obj), field, "must be " + ("a" if empty_ok else "a non-empty") + " one-line string", value)


def _check_texts(obj: Any, field: str, values: Any, at_least: int = 1) -> None:
    if not isinstance(values, tuple) or len(values) < at_least:
        raise _fail(type(obj), field, f"must be a tuple of at least {at_least} strings", values)
    for i, value in enumerate(values):
        _check_text(obj, f"{field}[{i}]", value)


def _check_numbers(obj: Any, field: str, values: Any, n: int, positive: bool = False) -> None:
    if not isinstance(values, tuple) or len(values) != n:
        raise _fail(type(obj), field, f"must be a tuple of {n} numbers (one per label)", values)
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                (positive and v <= 0) or v < 0:
            raise _fail(type(obj), f"{field}[{i}]", "must be a finite number " + ("> 0" if positive else ">= 0"), v)


@dataclass(frozen=True)
class Shape:
    """One filled shape; it fits inside the circle of radius ``size`` around its centre."""

    kind: str
    """One of ``SHAPE_KINDS`` (triangles point up, hexagons have flat tops, stars five points up)."""
    color: str
    """One of ``SHAPE_COLORS``."""
    x: float
    """Centre, as a fraction of the image width from the left (the Molmo 2 point of the shape)."""
    y: float
    """Centre, as a fraction of the image height from the top."""
    size: float
    """Radius of the circle the shape fits in, as a fraction of the image's shorter side (0-0.5]."""

    def __post_init__(self) -> None:
        if self.kind not in SHAPE_KINDS:
            raise _fail(Shape, "kind", f"must be one of {', '.join(SHAPE_KINDS)}", self.kind)
        _check_color(self, "color", self.color, SHAPE_COLORS)
        for name in ("x", "y"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise _fail(Shape, name, "must be a number in [0, 1]", v)
        if isinstance(self.size, bool) or not isinstance(self.size, (int, float)) or not 0.0 < self.size <= 0.5:
            raise _fail(Shape, "size", "must be a number in (0, 0.5]", self.size)

    @property
    def label(self) -> str:
        """``"<color> <kind>"``, e.g. ``"red star"``."""
        return f"{self.color} {self.kind}"


@dataclass(frozen=True)
class ShapeScene:
    """Shapes on a plain background, drawn in order (later ones on top), without anti-aliasing."""

    TYPE: ClassVar[str] = "shape_scene"
    shapes: tuple[Shape, ...]
    width: int = 384
    height: int = 288
    background: str = "white"
    """A colour name that no shape uses."""

    def __post_init__(self) -> None:
        _check_size(self)
        if not isinstance(self.shapes, tuple) or not all(isinstance(s, Shape) for s in self.shapes):
            raise _fail(ShapeScene, "shapes", "must be a tuple of Shape", self.shapes)
        _check_color(self, "background", self.background)
        for i, shape in enumerate(self.shapes):
            radius = shape.size * min(self.width, self.height)
            if radius < MIN_SHAPE_RADIUS_PX:
                raise _fail(ShapeScene, f"shapes[{i}].size", f"gives a radius of {radius:.2f} px here, below "
                            f"{MIN_SHAPE_RADIUS_PX:g} px (its centre pixel might not be its own)", shape.size)
        if self.background in {s.color for s in self.shapes}:
            raise _fail(ShapeScene, "background", "must differ from every shape's colour", self.background)


@dataclass(frozen=True)
class BarChart:
    """Vertical bars, one per category, each labelled with its value (``format_value``)."""

    TYPE: ClassVar[str] = "bar_chart"
    title: str
    categories: tuple[str, ...]
    values: tuple[float, ...]
    y_label: str = ""
    color: str = "blue"
    width: int = 448
    height: int = 336

    def __post_init__(self) -> None:
        _check_size(self)
        _check_text(self, "title", self.title)
        _check_texts(self, "categories", self.categories)
        _check_numbers(self, "values", self.values, len(self.categories))
        _check_text(self, "y_label", self.y_label, empty_ok=True)
        _check_color(self, "color", self.color)


@dataclass(frozen=True)
class Series:
    """One line of a line chart."""

    name: str
    values: tuple[float, ...]
    color: str = "blue"


@dataclass(frozen=True)
class LineChart:
    """One or more series over ordered x labels, markers labelled with their values; a legend if >1."""

    TYPE: ClassVar[str] = "line_chart"
    title: str
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]
    y_label: str = ""
    width: int = 448
    height: int = 336

    def __post_init__(self) -> None:
        _check_size(self)
        _check_text(self, "title", self.title)
        _check_texts(self, "x_labels", self.x_labels, at_least=2)
        _check_text(self, "y_label", self.y_label, empty_ok=True)
        if not isinstance(self.series, tuple) or not self.series or \
                not all(isinstance(s, Series) for s in self.series):
            raise _fail(LineChart, "series", "must be a non-empty tuple of Series", self.series)
        for i, s in enumerate(self.series):
            _check_text(self, f"series[{i}].name", s.name)
            _check_numbers(self, f"series[{i}].values", s.values, len(self.x_labels))
            _check_color(self, f"series[{i}].color", s.color)


@dataclass(frozen=True)
class PieChart:
    """Wedges clockwise from 12 o'clock, each labelled ``"<label>\\n<value>"``."""

    TYPE: ClassVar[str] = "pie_chart"
    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    colors: tuple[str, ...] = ()
    """One colour name per wedge; empty picks ``SHAPE_COLORS`` in order."""
    width: int = 448
    height: int = 336

    def __post_init__(self) -> None:
        _check_size(self)
        _check_text(self, "title", self.title)
        _check_texts(self, "labels", self.labels, at_least=2)
        _check_numbers(self, "values", self.values, len(self.labels), positive=True)
        if self.colors:
            if len(self.colors) != len(self.labels):
                raise _fail(PieChart, "colors", f"must name {len(self.labels)} colours (one per wedge)", self.colors)
            for i, c in enumerate(self.colors):
                _check_color(self, f"colors[{i}]", c)
        elif len(self.labels) > len(SHAPE_COLORS):
            raise _fail(PieChart, "labels", f"need explicit colors above {len(SHAPE_COLORS)} wedges", self.labels)


@dataclass(frozen=True)
class Table:
    """A grid: a bold header row of ``columns``, then ``rows`` of cell text; a title above."""

    TYPE: ClassVar[str] = "table"
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    width: int = 448
    height: int = 336

    def __post_init__(self) -> None:
        _check_size(self)
        _check_text(self, "title", self.title)
        _check_texts(self, "columns", self.columns)
        if not isinstance(self.rows, tuple) or not self.rows:
            raise _fail(Table, "rows", "must be a non-empty tuple of rows", self.rows)
        for i, row in enumerate(self.rows):
            if not isinstance(row, tuple) or len(row) != len(self.columns):
                raise _fail(Table, f"rows[{i}]", f"must be a tuple of {len(self.columns)} cells", row)
            for j, cell in enumerate(row):
                _check_text(self, f"rows[{i}][{j}]", cell, empty_ok=True)


@dataclass(frozen=True)
class Document:
    """A small page: a bold title, a few lines of text (wrapped), a rule, then ``key: value`` lines."""

    TYPE: ClassVar[str] = "document"
    title: str
    lines: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    width: int = 448
    height: int = 336

    def __post_init__(self) -> None:
        _check_size(self)
        _check_text(self, "title", self.title)
        if not isinstance(self.lines, tuple):
            raise _fail(Document, "lines", "must be a tuple of strings", self.lines)
        for i, line in enumerate(self.lines):
            _check_text(self, f"lines[{i}]", line)
        if not isinstance(self.fields, tuple):
            raise _fail(Document, "fields", "must be a tuple of (key, value) pairs", self.fields)
        for i, pair in enumerate(self.fields):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise _fail(Document, f"fields[{i}]", "must be a (key, value) pair", pair)
            _check_text(self, f"fields[{i}][0]", pair[0])
            _check_text(self, f"fields[{i}][1]", pair[1])


@dataclass(frozen=True)
class Diagram:
    """A flow diagram: boxed ``nodes`` in layers from top to bottom, arrows for ``edges``."""

    TYPE: ClassVar[str] = "diagram"
    title: str
    nodes: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    """``(from, to)`` node indices; the graph must have no cycle. A node's layer is its longest path from a source."""
    width: int = 448
    height: int = 336

    def __post_init__(self) -> None:
        _check_size(self)
        _check_text(self, "title", self.title)
        _check_texts(self, "nodes", self.nodes)
        if not isinstance(self.edges, tuple):
            raise _fail(Diagram, "edges", "must be a tuple of (from, to) pairs", self.edges)
        for i, edge in enumerate(self.edges):
            if not (isinstance(edge, tuple) and len(edge) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(self.nodes) for v in edge)
                    and edge[0] != edge[1]):
                raise _fail(Diagram, f"edges[{i}]", f"must be a pair of distinct node indices < {len(self.nodes)}",
                            edge)
        if len(set(self.edges)) != len(self.edges):
            raise _fail(Diagram, "edges", "must not repeat an edge", self.edges)
        self.layers()  # raises on a cycle

    def layers(self) -> tuple[int, ...]:
        """Each node's layer: 0 for a node no edge points to, else 1 + the largest layer before it.

        Raises:
            ValueError: the edges make a cycle.
        """
        layer = [0] * len(self.nodes)
        for _ in range(len(self.nodes)):
            changed = False
            for a, b in self.edges:
                if layer[b] < layer[a] + 1:
                    layer[b], changed = layer[a] + 1, True
            if not changed:
                return tuple(layer)
        raise _fail(Diagram, "edges", "must not form a cycle", self.edges)


CONTENT_TYPES: dict[str, type] = {cls.TYPE: cls for cls in (ShapeScene, BarChart, LineChart, PieChart, Table,
                                                             Document, Diagram)}
"""Every drawable type by its ``TYPE`` name (the ``"type"`` key of ``to_dict``)."""
_NESTED = {"shapes": Shape, "series": Series}


def to_dict(item: Any) -> dict[str, Any]:
    """Plain JSON data for a drawable item: ``{"type": TYPE, <fields>}``, tuples as lists.

    Raises:
        TypeError: ``item`` is not one of ``CONTENT_TYPES``.
    """
    if type(item) not in CONTENT_TYPES.values():
        raise TypeError(f"to_dict: not a drawable item: {type(item).__name__}")
    return {"type": item.TYPE, **dataclasses.asdict(item)}


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def from_dict(data: dict[str, Any]) -> Any:
    """Rebuild the item ``to_dict`` gave (equal to the original).

    Raises:
        ValueError: an unknown ``type``, unknown or missing fields, or values the type refuses.
    """
    data = dict(data)
    cls = CONTENT_TYPES.get(data.pop("type", None))
    if cls is None:
        raise ValueError(f"from_dict: 'type' must be one of {sorted(CONTENT_TYPES)}, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    if set(data) - names:
        raise ValueError(f"from_dict: {cls.TYPE} has no fields {sorted(set(data) - names)}")
    fields: dict[str, Any] = {}
    for name, value in data.items():
        nested = _NESTED.get(name)
        if nested is not None:
            fields[name] = tuple(nested(**{k: _tupled(v) for k, v in entry.items()}) for entry in value)
        else:
            fields[name] = _tupled(value)
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"from_dict: {cls.TYPE}: {exc}") from None
