"""Templated text about a procedural scene: a caption, QA pairs and subtitle cues.

One job: stand in for human-written text in demos and tests. Every sentence is derived from
the scene's computed ground truth (frame states and events of :mod:`pipelines.procedural.scenes`), not
from what the scene generator planned, so each statement is true of the frames. Times are
printed with one decimal ("1.5 s"); a question's answer and its three negatives never overlap.
Randomness (which label to ask about, which wrong answers) comes from the scene's seed.
"""
from __future__ import annotations

import random

from pipelines.procedural.scene_model import PALETTE, SHAPES, QAPair, Scene
from schemas.record_types import SubtitleCue

__all__ = ["describe", "region_name", "plural"]

_CUE_SECONDS = 1.5


def plural(label: str) -> str:
    """English plural of a "<colour> <shape>" label."""
    return label + "s"


def region_name(x: float, y: float, width: int, height: int) -> str:
    """Which ninth of the frame a point lies in: "the top left", "the middle right", "the center"..."""
    col = ("left", "middle", "right")[min(2, max(0, int(3 * x / width)))]
    row = ("top", "middle", "bottom")[min(2, max(0, int(3 * y / height)))]
    return "the center" if row == col == "middle" else f"the {row} {col}"


_REGIONS = [region_name(x + 0.5, y + 0.5, 3, 3) for y in range(3) for x in range(3)]


def _t(t: float) -> str:
    return f"{t:.1f} s"


def _exit(side: str) -> str:
    return f"to the {side}" if side in ("left", "right") else f"through the {side}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _first_visible(scene: Scene) -> dict[int, float]:
    out: dict[int, float] = {}
    for f in scene.frames:
        for s in f.objects:
            if s.visible and s.object_id not in out:
                out[s.object_id] = f.time
    return out


def _caption(scene: Scene) -> str:
    spec, last = scene.spec, scene.frames[-1]
    first_vis = _first_visible(scene)
    order = sorted(first_vis, key=lambda i: (first_vis[i], i))
    mentioned: set[str] = set()
    sentences = []
    for oid in order:
        obj = scene.objects[oid]
        art = "Another" if obj.label in mentioned else "A"
        mentioned.add(obj.label)
        evs = [e for e in scene.events if e.object_id == oid]
        first_in = next(f for f in scene.frames if f.state(oid).status != "out_of_frame")
        s0 = first_in.state(oid)
        clauses = []
        if evs and evs[0].kind == "enter":
            clauses.append(f"enters from the {evs[0].side} at {_t(evs[0].time)}")
            evs = evs[1:]
        else:
            clauses.append(f"starts in {region_name(s0.x, s0.y, spec.width, spec.height)}")
        k = 0
        while k < len(evs):
            e = evs[k]
            if e.kind == "leave" and k + 1 < len(evs) and evs[k + 1].kind == "return":
                clauses.append(f"leaves the frame {_exit(e.side)} at {_t(e.time)} "
                               f"and comes back at {_t(evs[k + 1].time)}")
                k += 2
            else:
                clauses.append(f"leaves the frame {_exit(e.side)} at {_t(e.time)}")
                k += 1
        end = last.state(oid)
        if end.status != "out_of_frame":
            r0 = region_name(s0.x, s0.y, spec.width, spec.height)
            r1 = region_name(end.x, end.y, spec.width, spec.height)
            if len(clauses) == 1 and clauses[0].startswith("starts") and r0 == r1:
                clauses = [f"stays in {r0}"]
            else:
                clauses.append(f"ends in {r1}")
        text = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + ", then " + clauses[-1]
        sentences.append(f"{art} {obj.label} {text}.")
    covered = [f.time for f in scene.frames if f.occluder is not None]
    if covered and scene.occluder_path is not None:
        direction = ("left to right" if scene.occluder_path[0][1] < scene.occluder_path[1][1]
                     else "right to left")
        sentences.append(f"A dark bar sweeps from {direction} in front of the objects "
                         f"between {_t(covered[0])[:-2]} and {_t(covered[-1])}.")
    parts = [f"{n} {label if n == 1 else plural(label)}" for label, n in sorted(scene.counts.items())]
    if parts:
        sentences.append(f"In total the video shows {_join(parts)}.")
    return " ".join(sentences)


def _label_choices(scene: Scene, answer: str, rng: random.Random) -> tuple[str, ...]:
    """Three wrong labels: other labels of the scene first, then absent ones."""
    present = sorted(set(scene.counts) - {answer})
    absent = sorted({f"{c} {s}" for c in PALETTE for s in SHAPES} - set(scene.counts))
    rng.shuffle(present)
    picks = present[:3] + rng.sample(absent, max(0, 3 - len(present)))
    return tuple(f"The {p}" for p in picks)


def _qa(scene: Scene) -> list[QAPair]:
    rng = random.Random(f"text:{scene.spec.seed}")
    out: list[QAPair] = []
    if not scene.counts:
        return out
    top = max(scene.counts.values())
    label = rng.choice(sorted(k for k, v in scene.counts.items() if v == top))
    n = scene.counts[label]
    wrong = sorted(rng.sample([k for k in range(max(6, n + 4)) if k != n], 3))
    out.append(QAPair(f"How many {plural(label)} appear in the video?", str(n),
                      tuple(str(k) for k in wrong), "counting"))

    first_vis = _first_visible(scene)
    by_label: dict[str, float] = {}
    for oid, t in first_vis.items():
        lab = scene.objects[oid].label
        by_label[lab] = min(t, by_label.get(lab, t))
    times = sorted(by_label.values())
    for which, pick in (("first", times[0]), ("last", times[-1])):
        winners = [lab for lab, t in by_label.items() if t == pick]
        if len(by_label) > 1 and len(winners) == 1 and times.count(pick) == 1 and not (
                which == "last" and pick == 0.0):
            out.append(QAPair(f"Which object appears {which}?", f"The {winners[0]}",
                              _label_choices(scene, winners[0], rng), "temporal"))
            break

    returners = sorted({scene.objects[e.object_id].label for e in scene.events if e.kind == "return"})
    if len(returners) == 1:
        out.append(QAPair("Which object leaves the frame and later comes back?", f"The {returners[0]}",
                          _label_choices(scene, returners[0], rng), "temporal"))

    f0 = scene.frames[0]
    singles = sorted(s.label for s in f0.visible_objects
                     if sum(o.label == s.label for o in scene.objects) == 1)
    if singles:
        lab = rng.choice(singles)
        s = next(s for s in f0.objects if s.label == lab)
        where = region_name(s.x, s.y, scene.spec.width, scene.spec.height)
        others = rng.sample([r for r in _REGIONS if r != where], 3)
        out.append(QAPair(f"Where is the {lab} at the start of the video?", f"In {where}",
                          tuple(f"In {r}" for r in others), "spatial"))
    return out


def _cues(scene: Scene) -> list[SubtitleCue]:
    labels = [o.label for o in scene.objects]
    name = lambda oid: ("A " if labels.count(labels[oid]) > 1 else "The ") + labels[oid]  # noqa: E731
    f0 = scene.frames[0]
    seen = [s.label for s in f0.visible_objects]
    items: list[tuple[float, str]] = [
        (0.0, f"We see {_join([f'a {lab}' for lab in seen])}." if seen else "The frame starts empty.")]
    for e in scene.events:
        verb = {"enter": f"is entering from the {e.side} now",
                "leave": f"is leaving the frame {_exit(e.side)} now",
                "return": "is coming back now"}[e.kind]
        items.append((e.time, f"{name(e.object_id)} {verb}."))
    bar = next((f.time for f in scene.frames if f.occluder is not None), None)
    if bar is not None:
        items.append((bar, "A dark bar starts to cross the frame."))
    grouped: dict[int, list[str]] = {}
    for t, text in sorted(items, key=lambda it: it[0]):
        grouped.setdefault(round(t * 1000), []).append(text)
    starts = sorted(grouped)
    cues = []
    end_ms = round(scene.duration * 1000)
    for k, ms in enumerate(starts):
        nxt = starts[k + 1] if k + 1 < len(starts) else end_ms
        stop = min(ms + round(_CUE_SECONDS * 1000), nxt, end_ms)
        if stop > ms:
            cues.append(SubtitleCue(start=ms / 1000, end=stop / 1000, text=" ".join(grouped[ms])))
    return cues


def describe(scene: Scene) -> tuple[str, list[QAPair], list[SubtitleCue]]:
    """Caption, QA pairs and subtitle cues of a scene.

    Args:
        scene: a scene whose frames, counts and events are filled in.

    Returns:
        ``(caption, qa, cues)``: one paragraph; up to four QA pairs (categories "counting",
        "temporal", "spatial"), each with three negatives; time-ordered, non-overlapping cues.
    """
    return _caption(scene), _qa(scene), _cues(scene)
