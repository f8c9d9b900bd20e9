"""Draw a :class:`~pipelines.render.model.ShapeScene`: filled shapes with exact colours.

One job: turn a shape scene into pixels. Shapes are filled in their exact ``COLORS`` value with
no outline and no anti-aliasing, so every pixel is either the background or one shape's colour
and a shape's centre pixel has its colour (what the ground truth's points promise). Pixel
``(i, j)`` covers ``[i, i+1) x [j, j+1)``; a shape's centre is ``(x * width, y * height)``.
"""
from __future__ import annotations

import math

from PIL import Image

from pipelines.render.canvas import new_canvas
from pipelines.render.model import COLORS, Shape, ShapeScene

__all__ = ["shape_polygon", "render_shape_scene"]

_STAR_INNER = 0.45
"""Inner radius of a star's points, as a fraction of its outer radius."""


def _regular(cx: float, cy: float, r: float, n: int, start_deg: float) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(math.radians(start_deg + 360.0 * k / n)),
             cy + r * math.sin(math.radians(start_deg + 360.0 * k / n))) for k in range(n)]


def shape_polygon(shape: Shape, width: int, height: int) -> list[tuple[float, float]] | None:
    """Vertices (pixels) of a polygonal shape, clockwise on screen; None for a circle.

    Args:
        shape: the shape.
        width, height: the image size it is drawn on.

    Returns:
        Square: axis-aligned, corners on the circle of radius ``r``; diamond: a square turned
        45 degrees; triangle: equilateral, pointing up; hexagon: flat top and bottom; star: five
        points, one up, inner radius 0.45 r.
    """
    cx, cy, r = shape.x * width, shape.y * height, shape.size * min(width, height)
    if shape.kind == "circle":
        return None
    if shape.kind == "square":
        return _regular(cx, cy, r, 4, 45.0)
    if shape.kind == "diamond":
        return _regular(cx, cy, r, 4, -90.0)
    if shape.kind == "triangle":
        return _regular(cx, cy, r, 3, -90.0)
    if shape.kind == "hexagon":
        return _regular(cx, cy, r, 6, 0.0)
    outer = _regular(cx, cy, r, 5, -90.0)
    inner = _regular(cx, cy, r * _STAR_INNER, 5, -90.0 + 36.0)
    return [p for pair in zip(outer, inner) for p in pair]


def render_shape_scene(scene: ShapeScene) -> Image.Image:
    """The scene's RGB image (``scene.width`` x ``scene.height``)."""
    image, draw = new_canvas(scene.width, scene.height, scene.background)
    for shape in scene.shapes:
        fill = COLORS[shape.color]
        polygon = shape_polygon(shape, scene.width, scene.height)
        if polygon is None:
            cx, cy = shape.x * scene.width, shape.y * scene.height
            r = shape.size * min(scene.width, scene.height)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.polygon(polygon, fill=fill)
    return image
