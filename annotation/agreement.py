"""Agreement between the annotators of one task, and the consensus record when they agree.

One job: given the records two or more annotators produced for one task (already normalized,
schema-shaped dicts of one dataset), measure how far they agree, then either merge them into one
record or send the task to review. Definitions (thresholds in ``AgreementConfig``):

* **Points** (VideoPoint, MultiImagePoint): one-to-one matching by Hungarian assignment
  (``scipy.optimize.linear_sum_assignment``) on Euclidean distance in normalized coordinates; a
  pair counts only within ``point_distance``, and the assignment maximizes the number of such
  pairs first, then minimizes their total distance. Points of different images never match.
  Video points match only on the same frame (``video_time="same_frame"``, the default: the
  annotators click on the same sampled frames) or, with ``video_time="normalized"``, over
  (t / clip duration, x, y). Annotator A is the reference, B the prediction: precision =
  matches / |B|, recall = matches / |A|, F1 = 2 matches / (|A| + |B|); two empty sets agree (1.0).
* **Tracks** (VideoTrack, same timestamps): objects are matched between annotators by the mean
  distance over frames where both are visible (Hungarian, within ``track_object_distance``).
  Per frame, visible points are matched one-to-one within ``track_point_distance`` regardless
  of ids; ``frame_f1`` = 2 total matches / total visible points. An **id switch** is a frame
  where an object's per-frame partner differs from its previous partner; the larger count of
  the two directions is reported. ``id_consistency`` = share of per-frame matches that agree
  with the object matching.
* **Text** (AskModelAnything, Cap, MultiImageQA): exact match and normalized match (NFKC,
  lowercase, punctuation dropped, whitespace collapsed), plus token F1 for information.
  MultiImageQA compares its question/answer pairs in order; a different number of pairs never
  matches.

With more than two annotators every pair is scored; the reported ``figures`` are those of the
worst pair. Merging uses the first record (lowest annotation id) as reference: points and
objects matched by every other annotator are kept and averaged (times and image indices from
the reference; an object visible to only some annotators on a frame keeps the mean of those);
unmatched ones are dropped; text keeps the reference text when all are normalized-equal. A merged
track keeps occlusion: on a frame where no annotator sees a kept object but one or more mark it
occluded, it is occluded (at the mean of the positions given, or with none); otherwise absent.

The matching, track scores and text normalization are ``schemas.metrics`` (one definition, which
the trainer's evaluation uses too); this module adds the thresholds, the decision and the merge.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal, Optional, Sequence

import numpy as np

from schemas import metrics
from schemas.metrics import (
    PointScores,
    match_objects,
    match_points,
    normalize_text,
    point_scores,
    token_f1,
    track_array,
)

__all__ = ["AgreementConfig", "Agreement", "PointScores", "match_points", "point_scores", "track_scores",
           "normalize_text", "assess"]

Decision = Literal["merged", "review"]


@dataclass(frozen=True)
class AgreementConfig:
    """Thresholds for agreement; distances are in normalized image units (1.0 = frame side)."""

    point_distance: float = 0.05
    """Largest distance at which two points are the same point (5% of the frame)."""
    video_time: Literal["same_frame", "normalized"] = "same_frame"
    """Video points: require the same frame, or add time / clip duration as a third coordinate."""
    min_point_f1: float = 0.8
    """Point tasks merge when every pair of annotators reaches this F1."""
    track_point_distance: float = 0.05
    """Per-frame match distance for track points."""
    track_object_distance: float = 0.1
    """Largest mean distance at which two annotators' objects are the same object."""
    min_track_f1: float = 0.8
    """Track tasks merge when every pair reaches this per-frame F1 ..."""
    max_id_switches: int = 0
    """... has at most this many id switches ..."""
    same_object_count: bool = True
    """... and (when True) both annotators tracked the same number of objects, all matched."""

    def __post_init__(self) -> None:
        for name in ("point_distance", "track_point_distance", "track_object_distance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("min_point_f1", "min_track_f1"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)!r}")
        if self.video_time not in ("same_frame", "normalized"):
            raise ValueError(f"video_time must be 'same_frame' or 'normalized', got {self.video_time!r}")
        if self.max_id_switches < 0:
            raise ValueError(f"max_id_switches must be >= 0, got {self.max_id_switches}")


@dataclass(frozen=True)
class Agreement:
    """How the annotators of one task agree, and what was decided.

    ``figures`` are the worst pair's (see the module docstring); ``pairs`` holds every pair as
    ``{"a": id, "b": id, **figures}``; ``merged`` is the consensus record (not yet validated)
    when ``decision == "merged"``, else None.
    """

    dataset: str
    annotators: tuple[str, ...]
    figures: dict[str, float]
    pairs: tuple[dict[str, Any], ...]
    decision: Decision
    reasons: tuple[str, ...]
    merged: Optional[dict] = None
    task_id: Optional[int] = None
    task_key: Optional[str] = None


# ----------------------------------------------------------------------------- points


def _point_view(dataset: str, record: dict, config: AgreementConfig) -> tuple[np.ndarray, Optional[list]]:
    pts = record["points"]
    if dataset == "MultiImagePoint":
        return np.array([[p["x"], p["y"]] for p in pts]).reshape(-1, 2), [p["image_index"] for p in pts]
    if config.video_time == "normalized" and record["clip_end"] > record["clip_start"]:
        dur = record["clip_end"] - record["clip_start"]
        return np.array([[p["time"] / dur, p["x"], p["y"]] for p in pts]).reshape(-1, 3), None
    return np.array([[p["x"], p["y"]] for p in pts]).reshape(-1, 2), [round(p["time"] * 1e6) for p in pts]


def _points_pair(dataset: str, ra: dict, rb: dict, config: AgreementConfig) -> PointScores:
    (xa, ga), (xb, gb) = _point_view(dataset, ra, config), _point_view(dataset, rb, config)
    return point_scores(xa, xb, config.point_distance, ga, gb)


def _merge_points(dataset: str, records: Sequence[dict], config: AgreementConfig, key: str) -> dict:
    ref = records[0]
    partners = [dict(_points_pair(dataset, ref, other, config).matches) for other in records[1:]]
    points = []
    for i, p in enumerate(ref["points"]):
        if all(i in m for m in partners):
            group = [p] + [other["points"][m[i]] for other, m in zip(records[1:], partners)]
            q = dict(p)
            q["x"] = float(np.mean([g["x"] for g in group]))
            q["y"] = float(np.mean([g["y"] for g in group]))
            points.append(q)
    order = ("image_index", "x", "y") if dataset == "MultiImagePoint" else ("time", "x", "y")
    points.sort(key=lambda q: tuple(q[k] for k in order))
    merged = copy.deepcopy(ref)
    merged.update(key=key, points=points, count=len(points))
    if "annotator_unsure" in ref:
        merged["annotator_unsure"] = any(r["annotator_unsure"] for r in records)
    return merged


# ----------------------------------------------------------------------------- tracks


def track_scores(ra: dict, rb: dict, config: AgreementConfig = AgreementConfig()) -> dict[str, float]:
    """Per-frame F1, id switches and id consistency between two VideoTrack records.

    ``schemas.metrics.track_scores`` with the config's distances (``track_point_distance``,
    ``track_object_distance``); see there for the figures.
    """
    return metrics.track_scores(ra, rb, config.track_point_distance, config.track_object_distance)


def _first_seen(obj: np.ndarray) -> tuple[int, float, float]:
    seen = np.flatnonzero(~np.isnan(obj[:, 0]))
    if not len(seen):
        return obj.shape[0], 0.0, 0.0
    t = int(seen[0])
    return t, float(obj[t, 0]), float(obj[t, 1])


def _occluded_view(record: dict) -> np.ndarray:
    """(objects, frames, 3): 1 where an object is marked occluded, and its position (NaN when none)."""
    arr = np.full((len(record["objects"]), len(record["timestamps"]), 3), np.nan)
    for i, obj in enumerate(record["objects"]):
        for t, p in enumerate(obj["points"]):
            if p is not None and p.get("occluded"):
                arr[i, t] = (1.0, np.nan if p.get("x") is None else p["x"], np.nan if p.get("y") is None else p["y"])
    return arr


def _merge_tracks(records: Sequence[dict], config: AgreementConfig, key: str) -> dict:
    ref = track_array(records[0])
    others = [track_array(r) for r in records[1:]]
    hidden = [_occluded_view(r) for r in records]
    partners = [dict(match_objects(ref, o, config.track_object_distance)[0]) for o in others]
    kept = []
    for i in range(len(ref)):
        if all(i in m for m in partners):
            stack = np.stack([ref[i]] + [o[m[i]] for o, m in zip(others, partners)])
            occ = np.stack([hidden[0][i]] + [h[m[i]] for h, m in zip(hidden[1:], partners)])
            with warnings.catch_warnings():  # frames nobody saw: mean of nothing is NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                kept.append((np.nanmean(stack, axis=0), np.nanmax(occ[:, :, 0], axis=0),
                             np.nanmean(occ[:, :, 1:], axis=0)))
    kept.sort(key=lambda k: _first_seen(k[0]))  # ids by first appearance, then (x, y) there

    def entry(p: np.ndarray, occluded: float, at: np.ndarray) -> Optional[dict]:
        if not np.isnan(p[0]):
            return {"x": float(p[0]), "y": float(p[1]), "occluded": False}
        if occluded == 1.0:
            return {"x": None if np.isnan(at[0]) else float(at[0]), "y": None if np.isnan(at[1]) else float(at[1]),
                    "occluded": True}
        return None

    objects = [{"object_id": n + 1, "points": [entry(p, o, a) for p, o, a in zip(*obj)]}
               for n, obj in enumerate(kept)]
    merged = copy.deepcopy(records[0])
    merged.update(key=key, objects=objects)
    return merged


# ----------------------------------------------------------------------------- text


_TEXT_FIELDS = {"AskModelAnything": ("question", "answer"), "Cap": ("clip_caption",), "MultiImageQA": ("qa_pairs",)}


def _texts(dataset: str, record: dict) -> list[str]:
    if dataset == "MultiImageQA":
        return [text for qa in record["qa_pairs"] for text in (qa["question"], qa["answer"])]
    return [record[f] for f in _TEXT_FIELDS[dataset]]


def _text_pair(dataset: str, ra: dict, rb: dict) -> dict[str, float]:
    ta, tb = _texts(dataset, ra), _texts(dataset, rb)
    if len(ta) != len(tb):  # MultiImageQA: another number of pairs
        return {"exact": 0.0, "normalized": 0.0, "token_f1": 0.0}
    return {
        "exact": float(ta == tb),
        "normalized": float(all(normalize_text(a) == normalize_text(b) for a, b in zip(ta, tb))),
        "token_f1": min((token_f1(a, b) for a, b in zip(ta, tb)), default=1.0),
    }


# ----------------------------------------------------------------------------- decision


def assess(dataset: str, records: Sequence[dict], annotators: Sequence[str], key: str,
           config: AgreementConfig = AgreementConfig()) -> Agreement:
    """Score every pair of annotators of one task, then merge or send to review.

    Args:
        dataset: ``VideoPoint``, ``MultiImagePoint``, ``VideoTrack``, ``AskModelAnything``, ``Cap`` or
            ``MultiImageQA``.
        records: the annotators' record dicts for the task (two or more), reference first.
        annotators: a name per record (annotation ids), used in ``pairs`` and reasons.
        key: the key the merged record gets.
        config: thresholds.

    Returns:
        An ``Agreement``; ``merged`` holds the consensus record when the decision is ``merged``.

    Raises:
        ValueError: fewer than two records, mismatched ``annotators``, or an unknown dataset.
    """
    if len(records) < 2 or len(records) != len(annotators):
        raise ValueError("assess needs two or more records and one annotator name per record")
    names = tuple(str(a) for a in annotators)
    pairs: list[dict[str, Any]] = []
    reasons: list[str] = []
    for (i, ra), (j, rb) in combinations(enumerate(records), 2):
        who = f"annotations {names[i]} and {names[j]}"
        if dataset in ("VideoPoint", "MultiImagePoint"):
            s = _points_pair(dataset, ra, rb, config)
            fig = s.figures()
            if s.f1 < config.min_point_f1:
                reasons.append(f"{who}: point F1 {s.f1:.2f} < {config.min_point_f1:.2f} ({len(s.matches)} matched "
                               f"of {s.n_a} and {s.n_b} points within {config.point_distance:g})")
        elif dataset == "VideoTrack":
            fig = track_scores(ra, rb, config)
            if fig["frame_f1"] < config.min_track_f1:
                reasons.append(f"{who}: per-frame track F1 {fig['frame_f1']:.2f} < {config.min_track_f1:.2f}")
            if fig["id_switches"] > config.max_id_switches:
                reasons.append(f"{who}: {fig['id_switches']:.0f} id switches > {config.max_id_switches}")
            counts = {fig["objects_a"], fig["objects_b"], fig["matched_objects"]}
            if config.same_object_count and len(counts) > 1:
                reasons.append(f"{who}: {fig['objects_a']:.0f} and {fig['objects_b']:.0f} objects, "
                               f"{fig['matched_objects']:.0f} matched")
        elif dataset in _TEXT_FIELDS:
            fig = _text_pair(dataset, ra, rb)
            if not fig["normalized"]:
                reasons.append(f"{who}: {' / '.join(_TEXT_FIELDS[dataset])} differ after normalization "
                               f"(token F1 {fig['token_f1']:.2f})")
        else:
            raise ValueError(f"no agreement rule for dataset {dataset!r}")
        pairs.append({"a": names[i], "b": names[j], **fig})
    primary = {"VideoTrack": "frame_f1", "AskModelAnything": "token_f1", "Cap": "token_f1",
               "MultiImageQA": "token_f1"}.get(dataset, "f1")
    worst = min(pairs, key=lambda p: (p.get("normalized", 1.0), p[primary]))
    figures = {k: v for k, v in worst.items() if k not in ("a", "b")}
    if reasons:
        return Agreement(dataset, names, figures, tuple(pairs), "review", tuple(reasons))
    if dataset == "VideoTrack":
        merged = _merge_tracks(records, config, key)
    elif dataset in _TEXT_FIELDS:
        merged = copy.deepcopy(records[0])
        merged["key"] = key
        scores = [r.get("annotation_score") for r in records if r.get("annotation_score") is not None]
        if dataset == "Cap":
            merged["annotation_score"] = float(np.mean(scores)) if scores else None
    else:
        merged = _merge_points(dataset, records, config, key)
    return Agreement(dataset, names, figures, tuple(pairs), "merged", (), merged)
