"""Record types of procedural test scenes: the spec, per-frame ground truth, and its JSON.

One job: define what a scene's ground truth *is* (dataclasses, constants, the JSON form and how
to read it back), with no generation logic; :mod:`pipelines.procedural.scenes` computes it and documents
the geometry conventions (pixel grid, ``visible`` / ``occluded`` / ``out_of_frame``).
"""
from __future__ import annotations

import bisect
import dataclasses
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from schemas.record_types import SubtitleCue
from schemas.records import canonical_json

__all__ = [
    "PALETTE", "SHAPES", "BEHAVIORS", "STATUSES", "GT_SCHEMA", "GT_VERSION", "OCCLUDER_RGB",
    "SceneSpec", "SceneObject", "ObjectState", "FrameTruth", "Event", "QAPair", "Scene",
    "load_ground_truth",
]

GT_SCHEMA = "molmo2-data/scene-ground-truth"
GT_VERSION = 1

# Saturated colours, far apart in chroma, none close to the grey background or the dark bar.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (225, 25, 25),
    "green": (20, 185, 40),
    "blue": (30, 60, 235),
    "yellow": (250, 220, 0),
    "magenta": (220, 30, 210),
    "cyan": (0, 200, 225),
}
SHAPES = ("circle", "square", "diamond")
BEHAVIORS = ("stay", "enter", "leave", "return", "cross")
STATUSES = ("visible", "occluded", "out_of_frame")
OCCLUDER_RGB = (35, 35, 35)
_CONTAINERS = {"h264": ("mp4",), "mpeg4": ("mp4",), "vp9": ("webm", "mp4")}
_TICKS = {"mp4": 30000, "webm": 1000}
_TIME_EPS = 1e-6  # ground_truth_at tolerance for float noise in query times


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines a scene; the same spec always gives the same scene."""

    seed: int = 0
    """Seed of every random choice (labels, sizes, paths, frame intervals, text negatives)."""
    width: int = 160
    """Frame width in pixels (even, >= 48)."""
    height: int = 120
    """Frame height in pixels (even, >= 48)."""
    fps: float = 10.0
    """Nominal frame rate; with ``vfr`` the mean interval stays close to ``1 / fps``."""
    duration: float | None = 4.0
    """Clip length in seconds (frames are emitted while pts < duration). Ignored if n_frames set."""
    n_frames: int | None = None
    """Exact number of frames; when set, it wins over ``duration``."""
    n_objects: int = 3
    """Number of moving objects (1-8)."""
    labels: tuple[str, ...] | None = None
    """Per-object labels "<colour> <shape>" (repeats allowed); None draws them from the seed."""
    behaviors: tuple[str, ...] | None = None
    """Per-object behaviours from BEHAVIORS; None draws them (all "stay" without enter_exit)."""
    enter_exit: bool = True
    """Whether objects enter late, leave, cross, and leave-then-return."""
    occluder: bool = True
    """Whether a dark full-height bar sweeps across in front of the objects."""
    background: str = "texture"
    """"plain" (flat grey) or "texture" (mild grey pattern)."""
    codec: str = "h264"
    """"h264" (libx264), "vp9" (libvpx-vp9) or "mpeg4"; always yuv420p."""
    container: str | None = None
    """"mp4" or "webm"; None picks mp4 for h264/mpeg4 and webm for vp9."""
    vfr: bool = False
    """Variable frame rate: frame intervals drawn from {0.5, 1, 1.5} / fps."""
    subtitles: bool = True
    """Whether the scene carries subtitle cues (written by write_vtt)."""

    def __post_init__(self) -> None:
        if self.width < 48 or self.height < 48 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even and >= 48, got {self.width}x{self.height}")
        if not (math.isfinite(self.fps) and 1.0 <= self.fps <= 120.0):
            raise ValueError(f"fps must be in [1, 120], got {self.fps!r}")
        if self.n_frames is None and self.duration is None:
            raise ValueError("give duration or n_frames")
        if self.n_frames is None and not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"duration must be a positive number of seconds, got {self.duration!r}")
        if self.n_frames is not None and self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if not 1 <= self.n_objects <= 8:
            raise ValueError(f"n_objects must be in 1..8, got {self.n_objects}")
        for name in ("labels", "behaviors"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))  # lists from JSON become tuples
                if len(getattr(self, name)) != self.n_objects:
                    raise ValueError(f"{name} has {len(value)} entries for {self.n_objects} objects")
        for label in self.labels or ():
            parts = label.split(" ")
            if len(parts) != 2 or parts[0] not in PALETTE or parts[1] not in SHAPES:
                raise ValueError(f"label {label!r} is not '<colour> <shape>' with colour in "
                                 f"{sorted(PALETTE)} and shape in {SHAPES}")
        for behavior in self.behaviors or ():
            if behavior not in BEHAVIORS:
                raise ValueError(f"behavior {behavior!r} not in {BEHAVIORS}")
        if self.background not in ("plain", "texture"):
            raise ValueError(f"background must be 'plain' or 'texture', got {self.background!r}")
        if self.codec not in _CONTAINERS:
            raise ValueError(f"codec must be one of {sorted(_CONTAINERS)}, got {self.codec!r}")
        if self.container is not None and self.container not in _CONTAINERS[self.codec]:
            raise ValueError(f"codec {self.codec} cannot go in container {self.container!r}")

    @property
    def container_format(self) -> str:
        """The container actually used ("mp4" or "webm")."""
        return self.container or _CONTAINERS[self.codec][0]

    @property
    def ticks_per_second(self) -> int:
        """Integer pts units per second (the stream time base is ``1 / ticks_per_second``)."""
        return _TICKS[self.container_format]


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: identity, look and planned motion."""

    object_id: int
    label: str
    color: str
    shape: str
    rgb: tuple[int, int, int]
    half_size: float
    """Half the side of the shape's box, pixels."""
    behavior: str
    waypoints: tuple[tuple[float, float, float], ...]
    """(time, x, y) knots of a piecewise-linear path, clamped before the first/after the last."""

    def position(self, t: float) -> tuple[float, float]:
        """Centre at time ``t``, rounded to 1/1000 px (the value stored in the ground truth)."""
        ts = [w[0] for w in self.waypoints]
        k = bisect.bisect_right(ts, t)
        if k == 0:
            x, y = self.waypoints[0][1:]
        elif k == len(ts):
            x, y = self.waypoints[-1][1:]
        else:
            (t0, x0, y0), (t1, x1, y1) = self.waypoints[k - 1], self.waypoints[k]
            a = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
            x, y = x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return round(x, 3), round(y, 3)


@dataclass(frozen=True)
class ObjectState:
    """Ground truth of one object in one frame (every object appears in every frame)."""

    object_id: int
    label: str
    x: float
    y: float
    x_norm: float
    y_norm: float
    box: tuple[float, float, float, float]
    status: str
    visible: bool
    in_frame_fraction: float
    visible_fraction: float


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame."""

    index: int
    pts: int
    time: float
    """``pts / ticks_per_second`` seconds from the clip start."""
    occluder: tuple[int, int] | None
    """Pixel columns ``[x0, x1)`` covered by the bar (full height), or None."""
    objects: tuple[ObjectState, ...]

    def state(self, object_id: int) -> ObjectState:
        """The state of one object in this frame. Raises KeyError for an unknown id."""
        for s in self.objects:
            if s.object_id == object_id:
                return s
        raise KeyError(object_id)

    @property
    def visible_objects(self) -> tuple[ObjectState, ...]:
        """States whose status is "visible"."""
        return tuple(s for s in self.objects if s.visible)


@dataclass(frozen=True)
class Event:
    """An object entering the frame, leaving it, or returning after having left."""

    time: float
    object_id: int
    kind: str
    """"enter" (first time in frame, after t=0), "leave", "return"."""
    side: str
    """Edge crossed: "left", "right", "top" or "bottom"."""


@dataclass(frozen=True)
class QAPair:
    """A templated question with its answer and three wrong answers (CapQA style)."""

    question: str
    answer: str
    negatives: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class Scene:
    """A scene's full ground truth. Build with :func:`make_scene`."""

    spec: SceneSpec
    objects: tuple[SceneObject, ...]
    frames: tuple[FrameTruth, ...]
    duration: float
    """End of the last frame (its pts plus one nominal interval), seconds."""
    occluder_path: tuple[tuple[float, float], ...] | None
    """(time, left edge x) knots of the bar, or None."""
    occluder_width: int
    counts: dict[str, int]
    """Distinct objects per label that are visible in at least one frame."""
    events: tuple[Event, ...]
    caption: str = ""
    qa: tuple[QAPair, ...] = ()
    cues: tuple[SubtitleCue, ...] = ()
    """Subtitle cues (seconds, millisecond precision)."""
    _times: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_times", [f.time for f in self.frames])  # bisect index

    @property
    def times(self) -> list[float]:
        """Presentation times of all frames, seconds."""
        return [f.time for f in self.frames]

    @property
    def time_base(self) -> Fraction:
        """Stream time base of the rendered video."""
        return Fraction(1, self.spec.ticks_per_second)

    def frame_index_at(self, t: float) -> int:
        """Index of the frame played at ``t``: the last one with ``pts <= t`` (1e-6 s slack).

        Raises:
            ValueError: if ``t`` is negative or not finite.
        """
        if not math.isfinite(t) or t < -_TIME_EPS:
            raise ValueError(f"time must be finite and >= 0, got {t!r}")
        return max(0, bisect.bisect_right(self._times, t + _TIME_EPS) - 1)

    def ground_truth_at(self, t: float) -> FrameTruth:
        """Ground truth of the frame played at time ``t`` seconds (any t >= 0; past the end,
        the last frame).

        Raises:
            ValueError: if ``t`` is negative or not finite.
        """
        return self.frames[self.frame_index_at(t)]

    def track(self, object_id: int) -> list[ObjectState]:
        """One object's state in every frame, in frame order."""
        return [f.state(object_id) for f in self.frames]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ground truth (see ``GT_SCHEMA``); ``load_ground_truth`` reads it back."""
        d = {
            "schema": GT_SCHEMA,
            "version": GT_VERSION,
            "spec": dataclasses.asdict(self.spec),
            "width": self.spec.width,
            "height": self.spec.height,
            "fps": self.spec.fps,
            "time_base": f"1/{self.spec.ticks_per_second}",
            "n_frames": len(self.frames),
            "duration": self.duration,
            "objects": [dataclasses.asdict(o) for o in self.objects],
            "occluder_path": self.occluder_path,
            "occluder_width": self.occluder_width,
            "counts": dict(sorted(self.counts.items())),
            "events": [dataclasses.asdict(e) for e in self.events],
            "caption": self.caption,
            "qa": [dataclasses.asdict(q) for q in self.qa],
            "cues": [c.model_dump() for c in self.cues],
            "frames": [dataclasses.asdict(f) for f in self.frames],
        }
        return json.loads(json.dumps(d))  # tuples -> lists, so dict == what a reader gets

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, fixed separators): byte-identical for a spec."""
        return canonical_json(self.to_dict())


def load_ground_truth(data: str | dict[str, Any]) -> Scene:
    """Rebuild a :class:`Scene` from ``Scene.to_json()`` text or its parsed dict.

    Raises:
        ValueError: if the data is not this schema and version.
    """
    d = json.loads(data) if isinstance(data, str) else data
    if d.get("schema") != GT_SCHEMA or d.get("version") != GT_VERSION:
        raise ValueError(f"not {GT_SCHEMA} v{GT_VERSION}: {d.get('schema')!r} v{d.get('version')!r}")
    objects = tuple(SceneObject(**{**o, "rgb": tuple(o["rgb"]),
                                   "waypoints": tuple(tuple(w) for w in o["waypoints"])})
                    for o in d["objects"])
    frames = tuple(FrameTruth(
        index=f["index"], pts=f["pts"], time=f["time"],
        occluder=tuple(f["occluder"]) if f["occluder"] is not None else None,
        objects=tuple(ObjectState(**{**s, "box": tuple(s["box"])}) for s in f["objects"]))
        for f in d["frames"])
    path = d["occluder_path"]
    return Scene(
        spec=SceneSpec(**d["spec"]), objects=objects, frames=frames, duration=d["duration"],
        occluder_path=tuple(tuple(p) for p in path) if path is not None else None,
        occluder_width=d["occluder_width"], counts=dict(d["counts"]),
        events=tuple(Event(**e) for e in d["events"]), caption=d["caption"],
        qa=tuple(QAPair(**{**q, "negatives": tuple(q["negatives"])}) for q in d["qa"]),
        cues=tuple(SubtitleCue(**c) for c in d["cues"]))
