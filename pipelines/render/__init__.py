"""Deterministic rendering of known data to lossless images: shapes, charts, tables, documents, diagrams.

One job: ``render_png(item)`` turns one of the dataclasses of :mod:`pipelines.render.model`
(``ShapeScene``, ``BarChart``, ``LineChart``, ``PieChart``, ``Table``, ``Document``, ``Diagram``)
into PNG bytes, the same bytes for the same item on every call, thread and process (fixed fonts
shipped with matplotlib, matplotlib's built-in settings, no metadata chunks). The procedural image
sets (:mod:`pipelines.procedural.image_sets`) and SynMultiImageQA's generator draw with it, so
the data an image was drawn from is its exact ground truth.

Modules: ``model`` (the dataclasses, ``to_dict`` / ``from_dict``), ``canvas`` (fonts, PNG
encoder), ``shapes`` (Pillow, no anti-aliasing: exact colours), ``charts`` (matplotlib Agg),
``text`` (Pillow: tables, documents, diagrams).

May import: nothing of ours but its own modules (Pillow, numpy, matplotlib).
"""
from __future__ import annotations

from typing import Any

from PIL import Image

from pipelines.render.canvas import encode_png
from pipelines.render.model import (
    COLORS, CONTENT_TYPES, MIN_SHAPE_RADIUS_PX, SHAPE_COLORS, SHAPE_KINDS, BarChart, Diagram, Document,
    LineChart, PieChart, Series, Shape, ShapeScene, Table, format_value, from_dict, to_dict,
)

__all__ = [
    "COLORS", "SHAPE_COLORS", "SHAPE_KINDS", "MIN_SHAPE_RADIUS_PX", "CONTENT_TYPES", "Shape", "ShapeScene",
    "BarChart", "Series", "LineChart", "PieChart", "Table", "Document", "Diagram", "format_value", "to_dict",
    "from_dict", "render_image", "render_png", "encode_png",
]


def render_image(item: Any) -> Image.Image:
    """Draw ``item`` as an RGB Pillow image of ``item.width`` x ``item.height`` pixels.

    Args:
        item: one of ``CONTENT_TYPES``' dataclasses (checked when it was built).

    Returns:
        A new RGB image.

    Raises:
        TypeError: ``item`` is not a drawable type.
        ValueError: a table, document or diagram whose text does not fit its size.
    """
    if isinstance(item, ShapeScene):
        from pipelines.render.shapes import render_shape_scene

        return render_shape_scene(item)
    if isinstance(item, (BarChart, LineChart, PieChart)):
        from pipelines.render.charts import render_chart

        return render_chart(item)
    from pipelines.render import text

    draw = {Table: text.render_table, Document: text.render_document, Diagram: text.render_diagram}.get(type(item))
    if draw is None:
        raise TypeError(f"render_image: not a drawable item: {type(item).__name__} "
                        f"(expected one of {', '.join(c.__name__ for c in CONTENT_TYPES.values())})")
    return draw(item)


def render_png(item: Any) -> bytes:
    """Draw ``item`` and encode it as PNG (``render_image`` then ``encode_png``).

    Returns:
        PNG bytes: byte-identical for equal items.

    Raises:
        TypeError, ValueError: as ``render_image``.
    """
    return encode_png(render_image(item))
