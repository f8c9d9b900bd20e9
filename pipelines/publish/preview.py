"""A picture of one published sample: its frames or images with points and tracks drawn.

One job: ``render_sample(sample) -> (PNG bytes, caption)``, used by ``report.html`` and by the
``molmo2-data preview`` command. Frames are tiled in a grid (at most ``max_frames``, preferring
frames that carry points); VideoPoint and MultiImagePoint points are drawn as filled circles (one
colour per record), VideoTrack objects as rings with a trail through earlier frames (one colour
per object id; an occluded object's estimated position as a thin ring). Each tile is labelled
with its time (clips) or image number (image sets).
"""
from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, ImageDraw

__all__ = ["render_sample", "PALETTE"]

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
_TILE = 256


def _body(sample: dict[str, Any]) -> dict[str, Any]:
    body = sample["json"]
    return json.loads(body) if isinstance(body, (bytes, str)) else body


def _marks(body: dict[str, Any]) -> dict[int, list[tuple[str, float, float, tuple[int, int, int]]]]:
    """Frame index -> [(shape, x, y, colour)] for every point of every record."""
    marks: dict[int, list] = {}
    dataset = body["dataset"]
    times = body["clip"]["timestamps"] if body["media_type"] == "clip" else []

    def frame_at(t: float) -> int:
        return min(range(len(times)), key=lambda i: abs(times[i] - t))

    for r_index, record in enumerate(body["records"]):
        colour = PALETTE[r_index % len(PALETTE)]
        if dataset == "VideoPoint":
            for p in record["points"]:
                marks.setdefault(frame_at(p["time"]), []).append(("dot", p["x"], p["y"], colour))
        elif dataset == "MultiImagePoint":
            for p in record["points"]:
                image = body["image_set"]["images"]
                ids = [i["image_id"] for i in image]
                frame = ids.index(record["image_ids"][p["image_index"]])
                marks.setdefault(frame, []).append(("dot", p["x"], p["y"], colour))
        elif dataset == "VideoTrack":
            for obj in record["objects"]:
                colour = PALETTE[obj["object_id"] % len(PALETTE)]
                trail = []
                for t, p in zip(record["timestamps"], obj["points"]):
                    if p is None or p.get("x") is None:
                        continue
                    frame = frame_at(t)
                    trail.append((p["x"], p["y"]))
                    marks.setdefault(frame, []).append(("ring" if not p.get("occluded") else "hidden", p["x"], p["y"],
                                                        colour))
                    for (x0, y0), (x1, y1) in zip(trail[-4:], trail[-3:]):
                        marks[frame].append(("line", (x0, y0), (x1, y1), colour))
    return marks


def _pick(n_frames: int, marked: list[int], max_frames: int) -> list[int]:
    if n_frames <= max_frames:
        return list(range(n_frames))
    chosen = sorted(set(marked))[:max_frames]
    rest = [round(i * (n_frames - 1) / (max_frames - 1)) for i in range(max_frames)]
    for i in rest:
        if len(chosen) >= max_frames:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen)


def render_sample(sample: dict[str, Any], max_frames: int = 8, columns: int = 4) -> tuple[bytes, str]:
    """Draw a sample (as written or as read back from a shard).

    Returns:
        ``(PNG bytes, one-line caption)``.
    """
    body = _body(sample)
    marks = _marks(body)
    frames = body["frames"]
    chosen = _pick(len(frames), list(marks), max_frames)
    columns = max(1, min(columns, len(chosen)))
    rows = -(-len(chosen) // columns)
    first = Image.open(io.BytesIO(sample[frames[chosen[0]]])) if chosen else None
    tile_h = round(_TILE * min(1.0, first.height / first.width)) if first else _TILE
    canvas = Image.new("RGB", (columns * _TILE, rows * (tile_h + 16)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for n, index in enumerate(chosen):
        image = Image.open(io.BytesIO(sample[frames[index]])).convert("RGB")
        scale = min(_TILE / image.width, _TILE / image.height)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
        x0, y0 = (n % columns) * _TILE, (n // columns) * (tile_h + 16)
        canvas.paste(image, (x0, y0 + 16))
        w, h = image.size
        label = (f"t={body['clip']['timestamps'][index]:.1f}s" if body["media_type"] == "clip"
                 else f"image {index + 1}")
        draw.text((x0 + 4, y0 + 2), label, fill=(0, 0, 0))
        for mark in marks.get(index, []):
            shape, colour = mark[0], mark[3]
            if shape == "line":
                (ax, ay), (bx, by) = mark[1], mark[2]
                draw.line([(x0 + ax * w, y0 + 16 + ay * h), (x0 + bx * w, y0 + 16 + by * h)], fill=colour, width=2)
                continue
            cx, cy = x0 + mark[1] * w, y0 + 16 + mark[2] * h
            box = [cx - 5, cy - 5, cx + 5, cy + 5]
            if shape == "dot":
                draw.ellipse(box, fill=colour, outline=(0, 0, 0))
            elif shape == "hidden":  # occluded: the estimated position, dashed look
                draw.ellipse(box, outline=colour, width=1)
            else:
                draw.ellipse(box, outline=colour, width=3)
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    first = body["records"][0] if body["records"] else {}
    what = first.get("question") or first.get("expression") or first.get("clip_caption") or ""
    caption = (f"{body['dataset']} {body['key']}: {len(body['records'])} record(s), {len(frames)} "
               f"{'frames' if body['media_type'] == 'clip' else 'images'}; {what[:120]}")
    return out.getvalue(), caption
