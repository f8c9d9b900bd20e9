"""Procedural test scenes with exact per-frame ground truth.

One job: turn a seeded :class:`SceneSpec` into a :class:`Scene`, the exact ground truth of a
small synthetic video (coloured shapes moving over a plain or mildly textured background, an
optional dark occluder bar sweeping across), without encoding anything. The pixels of every
frame are a pure function of the scene (:func:`draw_frame`), and the visibility recorded in the
ground truth is computed from the very same label map that paints those pixels.

Geometry conventions (pixels, origin top left; pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``
and belongs to a shape when its centre ``(i + 0.5, j + 0.5)`` lies inside it):

* ``x, y`` is the object's centre; ``x_norm = x / width``, ``y_norm = y / height`` (Molmo 2
  points); ``box = (x0, y0, x1, y1)`` is the full, unclipped extent of the shape.
* ``in_frame_fraction``: share of the shape's pixels that lie inside the frame;
  ``visible_fraction``: share that is inside the frame and actually shown (not painted over
  by the occluder bar or by an object drawn above it; objects are drawn in id order).
* ``status`` is exactly one of:
  ``"out_of_frame"`` - the centre lies outside the frame or ``in_frame_fraction < 0.5``;
  ``"occluded"`` - otherwise, when the pixel under the centre is not this object's or
  ``visible_fraction < 0.5``; ``"visible"`` - otherwise. ``visible`` is ``status == "visible"``.

Times are ``pts / ticks_per_second`` with integer pts (30000 ticks/s in mp4, 1000 in webm, the
time base the muxer keeps), so variable-frame-rate scenes carry exact presentation times.
Encoding lives in :mod:`pipelines.procedural.scene_media` (``render_scene``, ``write_vtt``,
``generate_corpus``, ``write_test_media``); those names are also importable from here.
The captions, QA pairs and subtitle cues are built by :mod:`pipelines.procedural.scene_text`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import random

import numpy as np

from pipelines.procedural import scene_text
from pipelines.procedural.scene_model import (
    BEHAVIORS, GT_SCHEMA, GT_VERSION, OCCLUDER_RGB, PALETTE, SHAPES, STATUSES, Event,
    FrameTruth, ObjectState, QAPair, Scene, SceneObject, SceneSpec, load_ground_truth,
)

__all__ = [
    "PALETTE", "SHAPES", "BEHAVIORS", "STATUSES", "GT_SCHEMA", "GT_VERSION", "OCCLUDER_RGB",
    "SceneSpec", "SceneObject", "ObjectState", "FrameTruth", "Event", "QAPair", "Scene",
    "make_scene", "draw_frame", "label_map", "load_ground_truth",
    # re-exported lazily from pipelines.procedural.scene_media
    "render_scene", "write_vtt", "generate_corpus", "SceneFiles", "write_test_media",
    "TEST_MEDIA_KINDS",
]

_SHAPE_SCALE = {"circle": 1.0, "square": 0.9, "diamond": 1.25}  # similar areas
_ATTEMPTS = 20


# ---------------------------------------------------------------- planning (seeded choices)

def _frame_pts(spec: SceneSpec, rng: random.Random) -> tuple[list[int], int]:
    """Integer pts of every frame and the pts at which the clip ends."""
    tps = spec.ticks_per_second
    if spec.vfr:
        base = 1000.0 / spec.fps  # intervals on a whole-millisecond grid, exact in both containers
        step = lambda: round(base * rng.choice((0.5, 1.0, 1.5))) * (tps // 1000)  # noqa: E731
        pts, p = [], 0
        limit = None if spec.n_frames is not None else round(spec.duration * tps)
        while (len(pts) < spec.n_frames) if limit is None else (p < limit):
            pts.append(p)
            p += max(step(), tps // 1000)
        intervals = {b - a for a, b in zip(pts, pts[1:])}
        if len(pts) >= 3 and len(intervals) == 1:  # make sure the rate really varies
            shift = max(1, (pts[1] - pts[0]) // 2)
            pts = [pts[0]] + [q - shift for q in pts[1:]]
        end = pts[-1] + round(base) * (tps // 1000)
        return pts, end
    n = spec.n_frames if spec.n_frames is not None else max(1, round(spec.duration * spec.fps))
    pts = [round(i * tps / spec.fps) for i in range(n + 1)]
    return pts[:-1], pts[-1]


def _draw_labels(spec: SceneSpec, rng: random.Random) -> list[str]:
    if spec.labels is not None:
        return list(spec.labels)
    pool = [f"{c} {s}" for c in PALETTE for s in SHAPES]
    labels = rng.sample(pool, min(spec.n_objects, len(pool)))
    if spec.n_objects >= 3 and rng.random() < 0.5:  # a repeated label, so counts can exceed 1
        labels[-1] = labels[0]
    rng.shuffle(labels)
    return labels


def _draw_behaviors(spec: SceneSpec, rng: random.Random) -> list[str]:
    if spec.behaviors is not None:
        return list(spec.behaviors)
    if not spec.enter_exit:
        return ["stay"] * spec.n_objects
    chosen = ["return", "enter", "leave", "stay", "cross"][: spec.n_objects]
    chosen += [rng.choice(BEHAVIORS) for _ in range(spec.n_objects - len(chosen))]
    rng.shuffle(chosen)
    return chosen


def _waypoints(behavior: str, h: float, spec: SceneSpec, d: float,
               rng: random.Random) -> list[tuple[float, float, float]]:
    """Path knots for one behaviour; d is the clip length in seconds."""
    w, hh = spec.width, spec.height
    lo_x, hi_x, lo_y, hi_y = h + 2, w - h - 2, h + 2, hh - h - 2
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}

    def inside() -> tuple[float, float]:
        return rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)

    def near(side: str) -> tuple[float, float]:
        x, y = inside()
        if side in ("left", "right"):
            x = lo_x + rng.uniform(0, 0.2) * (hi_x - lo_x)
            return (x if side == "left" else w - x), y
        y = lo_y + rng.uniform(0, 0.2) * (hi_y - lo_y)
        return x, (y if side == "top" else hh - y)

    def off(side: str) -> tuple[float, float]:
        x, y = inside()
        return {"left": (-h - 3, y), "right": (w + h + 3, y),
                "top": (x, -h - 3), "bottom": (x, hh + h + 3)}[side]

    side = rng.choice(("left", "right", "top", "bottom"))
    u = lambda a, b: d * rng.uniform(a, b)  # noqa: E731
    if behavior == "stay":
        knots = [(0.0, *inside()), (u(0.4, 0.6), *inside()), (d, *inside())]
    elif behavior == "enter":
        t1 = u(0.15, 0.35)
        knots = [(0.0, *off(side)), (t1, *off(side)), (t1 + 0.15 * d, *near(side)), (d, *inside())]
    elif behavior == "leave":
        t1 = u(0.45, 0.6)
        knots = [(0.0, *inside()), (t1, *near(side)), (t1 + 0.15 * d, *off(side)), (d, *off(side))]
    elif behavior == "return":
        t1 = u(0.08, 0.18)
        t2, t3 = t1 + 0.12 * d, t1 + 0.35 * d
        knots = [(0.0, *inside()), (t1, *near(side)), (t2, *off(side)), (t3, *off(side)),
                 (t3 + 0.12 * d, *near(side)), (d, *inside())]
    else:  # cross
        t1 = u(0.05, 0.3)
        far = opposite[side]
        start, end = off(side), off(far)
        knots = [(0.0, *start), (t1, *start), (t1 + u(0.45, 0.6), *end), (d, *end)]
    return [(round(t, 4), round(x, 3), round(y, 3)) for t, x, y in knots]


# ---------------------------------------------------------------- geometry and pixels

def _shape_mask(shape: str, x: float, y: float, h: float) -> tuple[int, int, np.ndarray]:
    """Boolean mask of a shape on the integer pixel grid, unclipped: (col0, row0, mask)."""
    c0, c1 = math.floor(x - h), math.ceil(x + h)
    r0, r1 = math.floor(y - h), math.ceil(y + h)
    dx = (np.arange(c0, c1) + 0.5 - x)[None, :]
    dy = (np.arange(r0, r1) + 0.5 - y)[:, None]
    if shape == "circle":
        mask = dx * dx + dy * dy <= h * h
    elif shape == "square":
        mask = (np.abs(dx) <= h) & (np.abs(dy) <= h)
    else:
        mask = np.abs(dx) + np.abs(dy) <= h
    return c0, r0, mask


def _clip(c0: int, r0: int, mask: np.ndarray, w: int, h: int):
    """Frame slices and the matching part of a mask (None when nothing is in frame)."""
    a0, b0 = max(c0, 0), max(r0, 0)
    a1, b1 = min(c0 + mask.shape[1], w), min(r0 + mask.shape[0], h)
    if a1 <= a0 or b1 <= b0:
        return None
    return (slice(b0, b1), slice(a0, a1)), mask[b0 - r0:b1 - r0, a0 - c0:a1 - c0]


def _occluder_columns(path, width: int, bar: int, t: float) -> tuple[int, int] | None:
    """Columns [c0, c1) the bar covers at time t (its left edge moves linearly along path)."""
    if path is None:
        return None
    (t0, x0), (t1, x1) = path
    a = min(1.0, max(0.0, (t - t0) / (t1 - t0)))
    left = x0 + a * (x1 - x0)
    c0, c1 = max(0, math.floor(left)), min(width, math.floor(left) + bar)
    return (c0, c1) if c1 > c0 else None


def _paint(canvas: np.ndarray, spec: SceneSpec, objects, positions,
           occluder: tuple[int, int] | None, values) -> np.ndarray:
    """Paint objects (in id order, later on top) then the bar onto ``canvas``, in place.

    ``values`` gives what to write: per object, then for the bar. The label map and the RGB
    frame are both painted by this one function, so pixels and ground truth cannot disagree.
    """
    *per_object, bar_value = values
    for obj, (x, y), value in zip(objects, positions, per_object):
        clipped = _clip(*_shape_mask(obj.shape, x, y, obj.half_size), spec.width, spec.height)
        if clipped is not None:
            region, m = clipped
            canvas[region][m] = value
    if occluder is not None:
        canvas[:, occluder[0]:occluder[1]] = bar_value
    return canvas


def _label_map(spec: SceneSpec, objects, positions, occluder: tuple[int, int] | None) -> np.ndarray:
    """Owner of each pixel: object id, -1 background, -2 occluder bar."""
    owner = np.full((spec.height, spec.width), -1, dtype=np.int16)
    return _paint(owner, spec, objects, positions, occluder, [o.object_id for o in objects] + [-2])


def label_map(scene: Scene, index: int) -> np.ndarray:
    """Per-pixel owner of frame ``index``: object id, -1 background, -2 occluder (int16 HxW)."""
    f = scene.frames[index]
    return _label_map(scene.spec, scene.objects, [(s.x, s.y) for s in f.objects], f.occluder)


@functools.lru_cache(maxsize=8)
def _background(width: int, height: int, seed: int, kind: str) -> np.ndarray:
    """The static background (read-only; copy before drawing on it)."""
    img = np.full((height, width, 3), 128, dtype=np.uint8)
    if kind == "texture":  # mild, colourless, seeded phase
        ph = (seed % 97) / 97.0 * 2 * math.pi
        yy, xx = np.mgrid[0:height, 0:width]
        v = 128 + 9 * np.sin(xx / 7.0 + ph) * np.cos(yy / 11.0 - ph) + 4 * (((xx // 8) + (yy // 8)) % 2)
        img[:] = np.clip(np.rint(v), 0, 255).astype(np.uint8)[..., None]
    img.flags.writeable = False
    return img


def draw_frame(scene: Scene, index: int) -> np.ndarray:
    """RGB pixels (uint8, height x width x 3) of frame ``index``, exactly as encoded.

    Raises:
        IndexError: for an index outside the clip.
    """
    spec, f = scene.spec, scene.frames[index]
    img = _background(spec.width, spec.height, spec.seed, spec.background).copy()
    return _paint(img, spec, scene.objects, [(st.x, st.y) for st in f.objects], f.occluder,
                  [o.rgb for o in scene.objects] + [OCCLUDER_RGB])


# ---------------------------------------------------------------- ground truth

def _states(spec: SceneSpec, objects, positions, owner) -> tuple[ObjectState, ...]:
    out = []
    for obj, (x, y) in zip(objects, positions):
        c0, r0, mask = _shape_mask(obj.shape, x, y, obj.half_size)
        total = int(mask.sum())
        clipped = _clip(c0, r0, mask, spec.width, spec.height)
        in_frame = shown = 0
        if clipped is not None:
            region, m = clipped
            in_frame = int(m.sum())
            shown = int((m & (owner[region] == obj.object_id)).sum())
        fin, fvis = round(in_frame / total, 4), round(shown / total, 4)
        centre_in = 0 <= x < spec.width and 0 <= y < spec.height
        if not centre_in or in_frame / total < 0.5:
            status = "out_of_frame"
        elif owner[int(y), int(x)] != obj.object_id or shown / total < 0.5:
            status = "occluded"
        else:
            status = "visible"
        h = obj.half_size
        out.append(ObjectState(
            object_id=obj.object_id, label=obj.label, x=x, y=y,
            x_norm=round(x / spec.width, 6), y_norm=round(y / spec.height, 6),
            box=(round(x - h, 3), round(y - h, 3), round(x + h, 3), round(y + h, 3)),
            status=status, visible=status == "visible", in_frame_fraction=fin, visible_fraction=fvis))
    return tuple(out)


def _side(spec: SceneSpec, s: ObjectState) -> str:
    """The frame edge an out-of-frame (or edge-straddling) object is beyond or nearest to."""
    over = {"left": -s.x, "right": s.x - spec.width, "top": -s.y, "bottom": s.y - spec.height}
    return max(sorted(over), key=lambda k: over[k])


def _events(spec: SceneSpec, objects, frames) -> list[Event]:
    events = []
    for obj in objects:
        seen_in, prev = False, None
        for f in frames:
            s = f.state(obj.object_id)
            now_in = s.status != "out_of_frame"
            if prev is not None and now_in and prev.status == "out_of_frame":
                kind = "return" if seen_in else "enter"
                events.append(Event(f.time, obj.object_id, kind, _side(spec, prev)))
            elif prev is not None and not now_in and prev.status != "out_of_frame":
                events.append(Event(f.time, obj.object_id, "leave", _side(spec, s)))
            seen_in = seen_in or now_in
            prev = s
    return sorted(events, key=lambda e: (e.time, e.object_id, e.kind))


def _behavior_problem(objects, frames) -> str | None:
    """Why a planned behaviour does not show in the frames (None when all do)."""
    for obj in objects:
        states = [f.state(obj.object_id) for f in frames]
        inside = [s.status != "out_of_frame" for s in states]
        runs = [v for i, v in enumerate(inside) if i == 0 or v != inside[i - 1]]  # in/out runs
        returns = any(runs[i:i + 3] == [True, False, True] for i in range(len(runs)))
        if not any(s.visible for s in states) or (obj.behavior == "return" and not returns):
            return (f"object {obj.object_id} ({obj.behavior}) does not show as planned in "
                    f"{len(frames)} frames")
    return None


def _attempt(spec: SceneSpec, rng: random.Random) -> Scene:
    """Draw one candidate scene (times, objects, paths, bar) and compute its frame states."""
    pts, end = _frame_pts(spec, rng)
    if len(pts) < 12:
        raise ValueError(f"a scene needs at least 12 frames, this spec gives {len(pts)}")
    tps = spec.ticks_per_second
    duration = end / tps
    labels, behaviors = _draw_labels(spec, rng), _draw_behaviors(spec, rng)
    base = min(spec.width, spec.height)
    objects = []
    for i, (label, behavior) in enumerate(zip(labels, behaviors)):
        color, shape = label.split(" ")
        h = round(base * rng.uniform(0.07, 0.095) * _SHAPE_SCALE[shape], 2)
        objects.append(SceneObject(i, label, color, shape, PALETTE[color], h, behavior,
                                   tuple(_waypoints(behavior, h, spec, duration, rng))))
    bar = max(4, round(0.16 * spec.width))
    occ_path = None
    if spec.occluder:
        t0 = round(duration * rng.uniform(0.15, 0.3), 4)
        t1 = round(t0 + duration * rng.uniform(0.4, 0.6), 4)
        xs = (-bar, spec.width) if rng.random() < 0.5 else (spec.width, -bar)
        occ_path = ((t0, float(xs[0])), (t1, float(xs[1])))
    frames = []
    for i, p in enumerate(pts):
        t = p / tps
        positions = [o.position(t) for o in objects]
        occ = _occluder_columns(occ_path, spec.width, bar, t)
        owner = _label_map(spec, objects, positions, occ)
        frames.append(FrameTruth(i, p, t, occ, _states(spec, objects, positions, owner)))
    counts: dict[str, int] = {}
    for obj in objects:
        if any(f.state(obj.object_id).visible for f in frames):
            counts[obj.label] = counts.get(obj.label, 0) + 1
    return Scene(spec=spec, objects=tuple(objects), frames=tuple(frames), duration=duration,
                 occluder_path=occ_path, occluder_width=bar, counts=counts,
                 events=tuple(_events(spec, objects, frames)))


def make_scene(spec: SceneSpec) -> Scene:
    """Compute a scene's ground truth (no encoding).

    Every object is visible in at least one frame and a "return" object is seen in frame,
    out of frame, then in frame again. A draw that misses this (an object hidden all along,
    say) is redrawn from the next seeded stream, ``"scene:<seed>:<k>"``, up to 20 times.

    Args:
        spec: the scene description; every random choice comes from ``spec.seed``.

    Returns:
        The :class:`Scene`, with per-frame states, counts, events, caption, QA and cues.

    Raises:
        ValueError: if the clip has fewer than 12 frames, or no draw shows every planned
            behaviour (clip too short or frame rate too low for them).
    """
    problem = None
    for k in range(_ATTEMPTS):
        rng = random.Random(f"scene:{spec.seed}" + (f":{k}" if k else ""))
        scene = _attempt(spec, rng)
        problem = _behavior_problem(scene.objects, scene.frames)
        if problem is None:
            caption, qa, cues = scene_text.describe(scene)
            return dataclasses.replace(scene, caption=caption, qa=tuple(qa),
                                       cues=tuple(cues) if spec.subtitles else ())
    raise ValueError(f"{problem} after {_ATTEMPTS} draws; use a longer clip or a higher fps")


_MEDIA_NAMES = {"render_scene", "write_vtt", "generate_corpus", "SceneFiles", "write_test_media",
                "TEST_MEDIA_KINDS"}


def __getattr__(name: str):  # PEP 562: the encoding half lives in scene_media (it imports us)
    if name in _MEDIA_NAMES:
        from pipelines.procedural import scene_media
        return getattr(scene_media, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
