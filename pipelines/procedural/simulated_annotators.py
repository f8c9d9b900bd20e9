"""Simulated annotators: Label Studio annotation results made from a procedural scene's ground truth.

One job: given a :class:`pipelines.procedural.scenes.Scene` and the ``data`` of a task pushed by
:mod:`annotation.push` (the contract of :mod:`annotation.tasks`), return the ``result`` list a
careful human would submit with that kind's label config, in Label Studio's own shapes
(``../shared/reference/labelstudio.md``), ready for ``client.annotations.create(task_id, result=...)``.
A :class:`Perturbation` makes a second, worse annotator for agreement checks.

* ``video_point`` (count by pointing): every object matching ``data.label`` gets ONE keypoint, at
  the first sampled frame where it is visible (scene time ``clip_start + timestamps[i]``), on
  ``item_index = i``; objects never visible on a sampled frame get none.
* ``video_track``: one ``videorectangle`` result per object (result id ``obj{object_id}``, kept for
  the whole clip). mp4 frame ``f`` (1-based) shows scene time ``clip_start + frame_times[f - 1]``.
  Keyframes go on every ``step``-th frame of each run of frames where the object is visible, and
  on the run's first and last frame; when the object disappears before the clip ends, the run's
  last frame is switched off (``enabled: false``: shown there, hidden after it), and the keyframe
  where it comes back starts the next run of the same result. The box is the object's box shrunk
  symmetrically about its centre until it fits in the frame (a drawn box cannot leave the frame),
  so the box centre, which is what the records keep, is the object's centre. The frames where an
  object is hidden (``occluded`` in the ground truth: there, behind the bar or another object)
  are marked with an ``occluded`` timeline span per run (result id ``occ{object_id}_{k}``),
  linked to the object's track by a ``relation`` when the task has two or more tracks (with one
  track the link may be left out, as the instructions say).
* ``multi_image_point``: keypoints per image from given points; ``multi_image_qa``:
  ``question_n``/``answer_n`` texts from given question/answer pairs (templated from an image
  set's ground truth); ``ask_model_anything`` and ``caption``: ``textarea`` results from the
  scene's templated QA pair and caption (plus an optional ``rating``).

Coordinates are percent of the frame; (x, y) of a box is its top-left corner.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Optional, Sequence

from pipelines.procedural.scene_model import FrameTruth, ObjectState, Scene

__all__ = ["Perturbation", "GENERIC_LABELS", "STROKE_PX", "matching_objects", "point_frames", "track_frames",
           "review_result",
           "video_point_result", "video_track_result", "multi_image_point_result", "multi_image_qa_result",
           "ask_model_anything_result", "caption_result", "simulate", "restyle"]

GENERIC_LABELS = frozenset({"object", "objects", "shape", "shapes", "thing", "things"})
"""Task labels that match every object of a scene (the VideoTrack projects use "object")."""
STROKE_PX = 2.0
"""The ``strokeWidth`` of the point configs; a keypoint's ``value.width`` is it in percent of the image width."""
LABEL = "object"
"""The one ``<Label>`` value of the point and track configs."""


@dataclass(frozen=True)
class Perturbation:
    """How an annotator departs from the ground truth (all off by default: a perfect annotator).

    Attributes:
        dx_px, dy_px: every point and box centre is moved by this many pixels (then kept in frame).
        miss: object ids (for ``multi_image_point``: the keys of the given points) left out.
        swap: two object ids whose tracks exchange result ids from frame ``swap_at`` on (an id switch).
        swap_at: the frame (1-based) of the switch; None: the first frame at or after the middle of
            the clip where both objects are visible.
        text: replaces the answer (``ask_model_anything``) or the caption (``caption``).
        restyle: rewrite texts in another style that ``annotation.agreement.normalize_text`` maps to
            the same string (lower case, no trailing punctuation).
        unsure: tick the ``unsure`` choice of the point configs.
        no_occlusion: mark no ``occluded`` spans (a track annotated as before the timeline existed:
            hidden frames are only switched off, so they read as absent).
    """

    dx_px: float = 0.0
    dy_px: float = 0.0
    miss: frozenset = frozenset()
    swap: Optional[tuple[int, int]] = None
    swap_at: Optional[int] = None
    text: Optional[str] = None
    restyle: bool = False
    unsure: bool = False
    no_occlusion: bool = False


NONE = Perturbation()


def matching_objects(scene: Scene, label: str) -> list[int]:
    """Ids of the scene's objects a task label asks for.

    A generic label (:data:`GENERIC_LABELS`) matches every object; otherwise the label, or its
    singular (a trailing ``s`` dropped), must equal an object's full label ("red circle"), its
    colour ("red") or its shape ("circles").
    """
    want = label.strip().lower()
    if want in GENERIC_LABELS:
        return [o.object_id for o in scene.objects]
    names = {want, want[:-1] if want.endswith("s") else want}
    return [o.object_id for o in scene.objects if names & {o.label, o.color, o.shape}]


def point_frames(scene: Scene, data: Mapping[str, Any]) -> list[FrameTruth]:
    """Ground truth of each sampled frame of a ``video_point`` task (``clip_start + timestamps[i]``)."""
    start = float(data["clip_start"])
    return [scene.ground_truth_at(start + float(t)) for t in data["timestamps"]]


def track_frames(scene: Scene, data: Mapping[str, Any]) -> list[FrameTruth]:
    """Ground truth of each mp4 frame of a ``video_track`` task: entry ``f - 1`` is frame ``f``."""
    start = float(data["clip_start"])
    return [scene.ground_truth_at(start + float(t)) for t in data["frame_times"]]


def _pct(value: float, size: float) -> float:
    return min(max(value / size * 100.0, 0.0), 100.0)


def _keypoint(rid: str, to_name: str, index: int, x: float, y: float, width: float, height: float) -> dict:
    """A keypoint at pixel (x, y) of an image of ``width`` x ``height`` pixels."""
    return {"id": rid, "from_name": "points", "to_name": to_name, "type": "keypointlabels", "origin": "manual",
            "item_index": index, "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {"x": _pct(x, width), "y": _pct(y, height), "width": STROKE_PX / width * 100.0,
                      "keypointlabels": [LABEL]}}


def _unsure(to_name: str) -> dict:
    return {"id": "unsure", "from_name": "unsure", "to_name": to_name, "type": "choices", "origin": "manual",
            "value": {"choices": ["unsure"]}}


def video_point_result(scene: Scene, data: Mapping[str, Any], perturb: Perturbation = NONE) -> list[dict]:
    """Count-by-pointing keypoints for a ``video_point`` task.

    Args:
        scene: the clip's scene ground truth.
        data: the task's data (``label``, ``timestamps``, ``clip_start``, ``width``, ``height``).
        perturb: how this annotator errs.

    Returns:
        One ``keypointlabels`` result per matching object visible on some sampled frame, at its
        first such frame (plus an ``unsure`` choice when asked).
    """
    width, height = float(data["width"]), float(data["height"])
    frames = point_frames(scene, data)
    out = []
    for oid in matching_objects(scene, data["label"]):
        if oid in perturb.miss:
            continue
        for i, frame in enumerate(frames):
            s = frame.state(oid)
            if s.visible:
                x, y = s.x_norm * width + perturb.dx_px, s.y_norm * height + perturb.dy_px
                out.append(_keypoint(f"p{oid}", "frames", i, x, y, width, height))
                break
    return out + ([_unsure("frames")] if perturb.unsure else [])


def _swap_frame(rows: dict[int, list[Optional[ObjectState]]], pair: tuple[int, int], n: int,
                at: Optional[int]) -> int:
    if at is not None:
        return at
    a, b = pair
    middle = max(1, (n + 1) // 2)
    both = [f for f in range(middle, n + 1) if rows[a][f - 1] is not None and rows[b][f - 1] is not None]
    return both[0] if both else middle


def _keyframe(state: ObjectState, f: int, fps: float, enabled: bool, size: tuple[float, float],
              shift: tuple[float, float]) -> dict:
    (w, h), (dx, dy) = size, shift
    cx = min(max(state.x_norm * w + dx, 0.0), w)
    cy = min(max(state.y_norm * h + dy, 0.0), h)
    half = (state.box[2] - state.box[0]) / 2.0
    hx, hy = min(half, cx, w - cx), min(half, cy, h - cy)  # shrunk about the centre to fit the frame
    return {"frame": f, "enabled": enabled, "rotation": 0, "x": (cx - hx) / w * 100.0,
            "y": (cy - hy) / h * 100.0, "width": 2.0 * hx / w * 100.0, "height": 2.0 * hy / h * 100.0,
            "time": f / fps}


def video_track_result(scene: Scene, data: Mapping[str, Any], perturb: Perturbation = NONE, *,
                       step: int = 1) -> list[dict]:
    """Box tracks for a ``video_track`` task, one ``videorectangle`` result per object.

    Args:
        scene: the clip's scene ground truth.
        data: the task's data (``label``, ``frame_times``, ``fps``, ``clip_start``, ``width``, ``height``).
        perturb: how this annotator errs (``dx_px``/``dy_px``, ``miss``, ``swap``).
        step: keyframe every ``step`` frames inside a visible run (1: every frame, exact; more:
            Label Studio interpolates linearly in between, which is off where the motion bends).

    Returns:
        The box tracks, ordered by object id (an object never visible on an mp4 frame has none),
        then the ``occluded`` spans of the tracked objects and, with two or more tracks, the
        relations linking each span to its track.

    Raises:
        ValueError: ``step`` < 1, or a ``swap`` naming an object that is not tracked.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    frames = track_frames(scene, data)
    n, fps = len(frames), float(data["fps"])
    size, shift = (float(data["width"]), float(data["height"])), (perturb.dx_px, perturb.dy_px)
    ids = [o for o in matching_objects(scene, data["label"]) if o not in perturb.miss]
    rows = {o: [fr.state(o) if fr.state(o).visible else None for fr in frames] for o in ids}
    hidden = {o: [fr.state(o).status == "occluded" for fr in frames] for o in ids}
    if perturb.swap is not None:
        a, b = perturb.swap
        if a not in rows or b not in rows:
            raise ValueError(f"swap {perturb.swap} names an object that is not tracked (tracked: {ids})")
        k = _swap_frame(rows, (a, b), n, perturb.swap_at)
        for table in (rows, hidden):  # the track of a carries b from frame k on, hidden frames included
            table[a], table[b] = table[a][:k - 1] + table[b][k - 1:], table[b][:k - 1] + table[a][k - 1:]
    out = []
    for oid in ids:
        row, sequence = rows[oid], []
        for f in range(1, n + 1):
            state = row[f - 1]
            if state is None:
                continue
            first = f == 1 or row[f - 2] is None
            last = f == n or row[f] is None
            if first or last or (f - 1) % step == 0:
                sequence.append(_keyframe(state, f, fps, not (last and f < n), size, shift))
        if sequence:
            out.append({"id": f"obj{oid}", "from_name": "box", "to_name": "video", "type": "videorectangle",
                        "origin": "manual",
                        "value": {"framesCount": n, "duration": float(data.get("duration", n / fps)),
                                  "labels": [LABEL], "sequence": sequence}})
    if perturb.no_occlusion:
        return out
    tracked = [int(r["id"][3:]) for r in out]
    spans = [(oid, k, run) for oid in tracked for k, run in enumerate(_runs(hidden[oid]))]
    for oid, k, (a, b) in spans:
        out.append({"id": f"occ{oid}_{k}", "from_name": "occluded", "to_name": "video", "type": "timelinelabels",
                    "origin": "manual", "value": {"ranges": [{"start": a, "end": b}], "timelinelabels": ["occluded"]}})
    if len(tracked) > 1:
        out += [{"type": "relation", "from_id": f"occ{oid}_{k}", "to_id": f"obj{oid}", "direction": "right"}
                for oid, k, _ in spans]
    return out


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """1-based inclusive ``(first, last)`` frames of each run of True."""
    runs, start = [], None
    for f, flag in enumerate(list(flags) + [False], start=1):
        if flag and start is None:
            start = f
        elif not flag and start is not None:
            runs.append((start, f - 1))
            start = None
    return runs


def multi_image_point_result(data: Mapping[str, Any], points: Sequence[Mapping[Hashable, tuple[float, float]]],
                             perturb: Perturbation = NONE) -> list[dict]:
    """Keypoints for a ``multi_image_point`` task from known points.

    Args:
        data: the task's data (``widths``, ``heights``: each image's size in pixels).
        points: per image, ``{key: (x, y)}`` in [0, 1] (key: an object id, used by ``perturb.miss``).
        perturb: how this annotator errs (``dx_px``/``dy_px`` in each image's pixels, ``miss``, ``unsure``).

    Returns:
        One ``keypointlabels`` result per kept point, ``item_index`` = the image.

    Raises:
        ValueError: ``points`` does not have one entry per image of the task.
    """
    widths, heights = data["widths"], data["heights"]
    if len(points) != len(widths):
        raise ValueError(f"points has {len(points)} entries for a set of {len(widths)} images")
    out = []
    for i, image in enumerate(points):
        w, h = float(widths[i]), float(heights[i])
        for key, (x, y) in image.items():
            if key not in perturb.miss:
                out.append(_keypoint(f"i{i}_{key}", "images", i, x * w + perturb.dx_px, y * h + perturb.dy_px, w, h))
    return out + ([_unsure("images")] if perturb.unsure else [])


def multi_image_qa_result(pairs: Sequence[tuple[str, str]], perturb: Perturbation = NONE) -> list[dict]:
    """``question_n`` / ``answer_n`` texts for a ``multi_image_qa`` task from known pairs.

    Args:
        pairs: 1 to 3 ``(question, answer)`` pairs, in slot order.
        perturb: ``text`` replaces the first answer; ``restyle`` rewrites every text.

    Raises:
        ValueError: no pair, or more pairs than the config has slots (3).
    """
    if not 1 <= len(pairs) <= 3:
        raise ValueError(f"a multi_image_qa task holds 1 to 3 pairs, got {len(pairs)}")
    out = []
    for n, (question, answer) in enumerate(pairs, start=1):
        if n == 1 and perturb.text is not None:
            answer = perturb.text
        if perturb.restyle:
            question, answer = restyle(question), restyle(answer)
        out += [_textarea(f"question_{n}", question, "images"), _textarea(f"answer_{n}", answer, "images")]
    return out


def restyle(text: str) -> str:
    """The same text as another annotator would type it: lower case, no trailing punctuation."""
    return text.lower().rstrip(" .!?")


def _textarea(name: str, text: str, to_name: str = "video") -> dict:
    return {"id": name, "from_name": name, "to_name": to_name, "type": "textarea", "origin": "manual",
            "value": {"text": [text]}}


def ask_model_anything_result(scene: Scene, perturb: Perturbation = NONE, *, qa_index: int = 0) -> list[dict]:
    """``question`` and ``answer`` texts for an ``ask_model_anything`` task from the scene's QA pair.

    Raises:
        IndexError: the scene has no QA pair ``qa_index``.
    """
    qa = scene.qa[qa_index]
    question, answer = qa.question, perturb.text if perturb.text is not None else qa.answer
    if perturb.restyle:
        question, answer = restyle(question), restyle(answer)
    return [_textarea("question", question), _textarea("answer", answer)]


def caption_result(scene: Scene, perturb: Perturbation = NONE, *, rating: Optional[int] = None) -> list[dict]:
    """The ``caption`` text for a ``caption`` task (the scene's caption), and a ``quality`` rating if given."""
    text = perturb.text if perturb.text is not None else scene.caption
    out = [_textarea("caption", restyle(text) if perturb.restyle else text)]
    if rating is not None:
        out.append({"id": "quality", "from_name": "quality", "to_name": "video", "type": "rating",
                    "origin": "manual", "value": {"rating": rating}})
    return out


def review_result(decision: str, edits: Optional[Mapping[str, str]] = None, note: Optional[str] = None) -> list[dict]:
    """A reviewer's result for a ``review`` task (``annotation.review``): the decision, the edited
    fields' new text (``{"answer": "3"}`` fills ``edit_answer``) and an optional note."""
    out = [{"id": "decision", "from_name": "decision", "to_name": "question", "type": "choices", "origin": "manual",
            "value": {"choices": [decision]}}]
    out += [_textarea(f"edit_{name}", text, "question") for name, text in sorted((edits or {}).items())]
    return out + ([_textarea("note", note, "question")] if note else [])


def simulate(kind: str, data: Mapping[str, Any], scene: Optional[Scene] = None, perturb: Perturbation = NONE, *,
             points: Optional[Sequence[Mapping[Hashable, tuple[float, float]]]] = None,
             pairs: Optional[Sequence[tuple[str, str]]] = None, **options: Any) -> list[dict]:
    """The result list for a task of any kind (dispatches on ``kind``; ``data["kind"]`` by default).

    Args:
        kind: the project kind (``video_point``, ``video_track``, ``multi_image_point``,
            ``multi_image_qa``, ``ask_model_anything``, ``caption``).
        data: the task's data.
        scene: the clip's scene (the video kinds).
        perturb: how this annotator errs.
        points: the per-image points of a ``multi_image_point`` task.
        pairs: the question/answer pairs of a ``multi_image_qa`` task.
        **options: ``step`` (tracks), ``qa_index`` (ask_model_anything), ``rating`` (caption).

    Raises:
        ValueError: an unknown kind, or a missing scene, points or pairs.
    """
    if kind == "multi_image_point":
        if points is None:
            raise ValueError("multi_image_point needs points")
        return multi_image_point_result(data, points, perturb)
    if kind == "multi_image_qa":
        if pairs is None:
            raise ValueError("multi_image_qa needs pairs")
        return multi_image_qa_result(pairs, perturb)
    builders = {"video_point": video_point_result, "video_track": video_track_result,
                "ask_model_anything": lambda s, d, p, **o: ask_model_anything_result(s, p, **o),
                "caption": lambda s, d, p, **o: caption_result(s, p, **o)}
    if kind not in builders:
        raise ValueError(f"unknown kind {kind!r}; known: {sorted([*builders, 'multi_image_point', 'multi_image_qa'])}")
    if scene is None:
        raise ValueError(f"{kind} needs the clip's scene")
    return builders[kind](scene, data, perturb, **options)
