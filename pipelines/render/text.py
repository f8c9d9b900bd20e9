"""Draw tables, small documents and flow diagrams with Pillow.

One job: lay out text-bearing images from a :class:`~pipelines.render.model.Table`,
``Document`` or ``Diagram``. Each layout tries font sizes from large to small and takes the first
at which everything fits; when nothing fits down to the smallest size it raises ``ValueError``
naming the item, so ground truth never claims text that the image cut off.
"""
from __future__ import annotations

from PIL import Image, ImageDraw

from pipelines.render.canvas import font, line_height, new_canvas, text_width
from pipelines.render.model import Diagram, Document, Table

__all__ = ["render_table", "render_document", "render_diagram", "wrap"]

INK = (20, 20, 20)
RULE = (90, 90, 90)
HEADER_FILL = (228, 228, 228)
BOX_FILL = (222, 235, 250)
_MARGIN = 14
_MIN_SIZE = 8


def _does_not_fit(item, why: str) -> ValueError:
    return ValueError(f"{type(item).__name__} {item.title!r} does not fit in {item.width}x{item.height} "
                      f"pixels even at {_MIN_SIZE} px text ({why}); give it more room or less text")


def _title(draw: ImageDraw.ImageDraw, item, size: int) -> int:
    """Draw the bold title centred at the top; return the y below it."""
    draw.text((item.width / 2, _MARGIN), item.title, font=font(size, True), fill=INK, anchor="ma")
    return _MARGIN + line_height(size)


def _begin(item, largest: int) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    """A blank canvas for ``item``, its drawer, and the largest title size (<= ``largest``) that fits."""
    for size in range(largest, _MIN_SIZE - 1, -1):
        if text_width(item.title, size, True) <= item.width - 2 * _MARGIN:
            return (*new_canvas(item.width, item.height), size)
    raise _does_not_fit(item, "title")


def wrap(text: str, size: int, max_width: float, bold: bool = False) -> list[str] | None:
    """Break ``text`` at spaces into lines no wider than ``max_width``; None if one word is wider."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, size, bold) <= max_width:
            current = candidate
        elif current and text_width(word, size, bold) <= max_width:
            lines.append(current)
            current = word
        else:
            return None
    return lines + ([current] if current else [])


def render_table(table: Table) -> Image.Image:
    """The table's RGB image: title, then a ruled grid whose columns share the width by content."""
    image, draw, title_size = _begin(table, 16)
    avail_w = table.width - 2 * _MARGIN
    for size in range(15, _MIN_SIZE - 1, -1):
        pad = round(size * 0.7)
        natural = [max([text_width(c, size, True)] + [text_width(r[j], size) for r in table.rows]) + 2 * pad
                   for j, c in enumerate(table.columns)]
        row_h = line_height(size) + pad
        top = _MARGIN + line_height(title_size) + 6
        if sum(natural) <= avail_w and top + row_h * (len(table.rows) + 1) <= table.height - _MARGIN:
            break
    else:
        raise _does_not_fit(table, f"{len(table.columns)} columns x {len(table.rows) + 1} rows")
    _title(draw, table, title_size)
    scale = avail_w / sum(natural)
    edges = [float(_MARGIN)]
    for w in natural:
        edges.append(edges[-1] + w * scale)
    bottom = top + row_h * (len(table.rows) + 1)
    draw.rectangle((_MARGIN, top, _MARGIN + avail_w, top + row_h), fill=HEADER_FILL)
    for i, cells in enumerate([table.columns, *table.rows]):
        y = top + row_h * (i + 0.5)
        for j, cell in enumerate(cells):
            draw.text(((edges[j] + edges[j + 1]) / 2, y), cell, font=font(size, i == 0), fill=INK, anchor="mm")
    for i in range(len(table.rows) + 2):
        draw.line((_MARGIN, top + row_h * i, _MARGIN + avail_w, top + row_h * i), fill=RULE, width=1)
    for x in edges:
        draw.line((round(x), top, round(x), bottom), fill=RULE, width=1)
    return image


def render_document(doc: Document) -> Image.Image:
    """The document's RGB image: bold title, wrapped lines, a rule, then aligned ``key: value`` lines."""
    image, draw, title_size = _begin(doc, 18)
    avail_w = doc.width - 2 * _MARGIN
    for size in range(14, _MIN_SIZE - 1, -1):
        wrapped = [wrap(line, size, avail_w) for line in doc.lines]
        key_w = max([text_width(f"{k}:", size, True) for k, _ in doc.fields] or [0.0])
        gap = size
        values = [wrap(v, size, avail_w - key_w - gap) for _, v in doc.fields]
        if any(w is None for w in wrapped + values):
            continue
        lh = line_height(size)
        body = sum(len(w) for w in wrapped) * lh + (lh if doc.fields and doc.lines else 0)
        body += sum(len(v) for v in values) * lh
        if _MARGIN + line_height(title_size) + 8 + body <= doc.height - _MARGIN:
            break
    else:
        raise _does_not_fit(doc, f"{len(doc.lines)} lines and {len(doc.fields)} fields")
    y = _title(draw, doc, title_size) + 8
    for lines in wrapped:
        for line in lines:
            draw.text((_MARGIN, y), line, font=font(size), fill=INK)
            y += lh
    if doc.fields and doc.lines:
        draw.line((_MARGIN, y + lh * 0.4, doc.width - _MARGIN, y + lh * 0.4), fill=RULE, width=1)
        y += lh
    for (key, _), lines in zip(doc.fields, values):
        draw.text((_MARGIN, y), f"{key}:", font=font(size, True), fill=INK)
        for line in lines:
            draw.text((_MARGIN + key_w + gap, y), line, font=font(size), fill=INK)
            y += lh
    return image


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], head: float) -> None:
    (x0, y0), (x1, y1) = start, end
    length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-9)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    bx, by = x1 - ux * head, y1 - uy * head
    draw.line((x0, y0, bx, by), fill=RULE, width=2)
    draw.polygon([(x1, y1), (bx - uy * head * 0.5, by + ux * head * 0.5),
                  (bx + uy * head * 0.5, by - ux * head * 0.5)], fill=RULE)


def render_diagram(diagram: Diagram) -> Image.Image:
    """The diagram's RGB image: boxes in layers (``Diagram.layers``) top to bottom, arrows between."""
    image, draw, title_size = _begin(diagram, 16)
    layers = diagram.layers()
    rows = [[i for i, layer in enumerate(layers) if layer == k] for k in range(max(layers) + 1)]
    top = _MARGIN + line_height(title_size) + 4
    row_h = (diagram.height - _MARGIN - top) / len(rows)
    for size in range(14, _MIN_SIZE - 1, -1):
        pad = round(size * 0.6)
        box_w = [text_width(n, size) + 2 * pad for n in diagram.nodes]
        box_h = line_height(size) + pad
        if box_h <= row_h * 0.6 and all(sum(box_w[i] for i in row) + pad * 2 * len(row)
                                        <= diagram.width - 2 * _MARGIN for row in rows):
            break
    else:
        raise _does_not_fit(diagram, f"{len(diagram.nodes)} boxes in {len(rows)} layers")
    centres: dict[int, tuple[float, float]] = {}
    for k, row in enumerate(rows):
        for j, node in enumerate(row):
            centres[node] = (diagram.width * (j + 0.5) / len(row), top + row_h * (k + 0.5))
    _title(draw, diagram, title_size)
    for a, b in diagram.edges:
        (xa, ya), (xb, yb) = centres[a], centres[b]
        _arrow(draw, (xa, ya + box_h / 2), (xb, yb - box_h / 2 - 1), head=max(6.0, size * 0.7))
    for node, (x, y) in centres.items():
        half_w, half_h = box_w[node] / 2, box_h / 2
        draw.rounded_rectangle((x - half_w, y - half_h, x + half_w, y + half_h), radius=round(pad * 0.8),
                               fill=BOX_FILL, outline=INK, width=2)
        draw.text((x, y), diagram.nodes[node], font=font(size), fill=INK, anchor="mm")
    return image
