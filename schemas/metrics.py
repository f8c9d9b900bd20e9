"""Evaluation metrics of Molmo 2 answers, one definition for annotation agreement and the trainer.

One job: score predictions against references the way ../shared/reference/molmo2-formats.md
("Evaluation metrics") states, on numbers and on model text (read with ``schemas.pointing``):

* **Points**: one-to-one matching by Hungarian assignment (``scipy.optimize.linear_sum_assignment``)
  on Euclidean distance in normalized coordinates; a pair counts only within ``max_distance``
  (inclusive), and the assignment maximizes the number of such pairs first, then minimizes their
  total distance. The release counts a point as correct when it falls inside the object's mask;
  without masks this uses the distance threshold, ``DEFAULT_POINT_DISTANCE`` (5 % of the frame
  side) unless told otherwise. Points with different group labels (frame time, image index)
  never match. A is the reference, B the prediction: precision = matches / |B|, recall =
  matches / |A|, F1 = 2 matches / (|A| + |B|); two empty sets score 1.0.
* **Video pointing**: the same over (t / duration, x, y).
* **Counting**: exact match, and close = ``|pred - true| <= 1 + floor(0.05 * true)``; the count is
  read from the text by ``schemas.pointing.parse_count`` ("a total of N", "There are N", a bare
  integer, "none" = 0); an unreadable count is wrong.
* **Tracking**: per frame, visible points matched one-to-one within a distance regardless of ids;
  ``frame_f1`` = 2 total matches / total visible points. Identity: an **id switch** is a match of
  an object whose partner differs from its partner at its previous match. Between two records
  (agreement) objects are also matched as wholes by mean distance over the frames both show.
* **Multiple choice**: the letter read from the answer (``"B. text"``, ``"B"``, ``"(B)"``), else the
  option text after ``normalize_text``; accuracy over the items.
* **Free-form QA**: normalized match (NFKC, lowercase, punctuation dropped, whitespace collapsed),
  plus token F1.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from schemas.pointing import parse_count, parse_points, parse_tracks
from schemas.text import normalize_text
from schemas.tracks import is_occluded

__all__ = [
    "DEFAULT_POINT_DISTANCE", "PointScores", "match_points", "point_scores", "video_point_scores",
    "score_point_text", "count_close", "count_scores", "track_array", "match_objects", "track_scores",
    "score_track_text", "read_choice", "choice_correct", "multiple_choice_accuracy", "normalize_text",
    "token_f1", "normalized_match",
]

DEFAULT_POINT_DISTANCE = 0.05
"""Largest distance (normalized, 1.0 = frame side) at which a predicted point hits a true one."""


# ----------------------------------------------------------------------------- points


@dataclass(frozen=True)
class PointScores:
    """One-to-one point matching between A (reference) and B (prediction)."""

    matches: tuple[tuple[int, int], ...]
    n_a: int
    n_b: int

    @property
    def precision(self) -> float:
        return len(self.matches) / self.n_b if self.n_b else 1.0

    @property
    def recall(self) -> float:
        return len(self.matches) / self.n_a if self.n_a else 1.0

    @property
    def f1(self) -> float:
        total = self.n_a + self.n_b
        return 2.0 * len(self.matches) / total if total else 1.0

    def figures(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "matches": float(len(self.matches)), "count_a": float(self.n_a), "count_b": float(self.n_b)}


def match_points(a: Any, b: Any, max_distance: float, groups_a: Optional[Sequence[Any]] = None,
                 groups_b: Optional[Sequence[Any]] = None) -> list[tuple[int, int]]:
    """One-to-one matches between two point sets, most pairs within ``max_distance`` first.

    Args:
        a, b: arrays of shape (n, d) and (m, d) (same d), any real coordinates.
        max_distance: largest Euclidean distance of a match (inclusive).
        groups_a, groups_b: optional labels; points match only within the same label
            (frame time, image index).

    Returns:
        Sorted ``(i, j)`` index pairs.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return []
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    dist = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    ok = dist <= max_distance
    if groups_a is not None and groups_b is not None:
        ok &= np.asarray(groups_a, dtype=object)[:, None] == np.asarray(groups_b, dtype=object)[None, :]
    # a non-match costs more than every possible match together, so the count of matches wins
    penalty = max_distance * (min(len(a), len(b)) + 1) + 1.0
    rows, cols = linear_sum_assignment(np.where(ok, dist, penalty))
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if ok[i, j])


def point_scores(a: Any, b: Any, max_distance: float, groups_a: Optional[Sequence[Any]] = None,
                 groups_b: Optional[Sequence[Any]] = None) -> PointScores:
    """Precision, recall and F1 of B against A under ``match_points``.

    Returns:
        ``PointScores`` (both empty: everything 1.0).
    """
    matches = match_points(a, b, max_distance, groups_a, groups_b)
    return PointScores(tuple(matches), len(np.asarray(a, dtype=float)), len(np.asarray(b, dtype=float)))


def _txy(points: Any, duration: float) -> np.ndarray:
    arr = np.asarray(points, dtype=float).reshape(-1, 3)
    scale = 1.0 / duration if duration > 0 else 0.0
    return arr * np.array([scale, 1.0, 1.0])


def video_point_scores(true: Any, pred: Any, duration: float,
                       max_distance: float = DEFAULT_POINT_DISTANCE) -> PointScores:
    """Video pointing: match over (t / duration, x, y).

    Args:
        true, pred: sequences of ``(t, x, y)``, t in clip seconds, x and y normalized.
        duration: clip duration in seconds (t is divided by it; 0 drops the time axis).
        max_distance: match distance in the normalized (t, x, y) space.

    Returns:
        ``PointScores`` of ``pred`` against ``true``.
    """
    return point_scores(_txy(true, duration), _txy(pred, duration), max_distance)


def score_point_text(pred: str, target: str, max_distance: float = DEFAULT_POINT_DISTANCE,
                     duration: Optional[float] = None) -> PointScores:
    """Score a model's point text against the target text (html-v2 or v1 points).

    Args:
        pred: the model's answer.
        target: the reference answer (e.g. a ``messages_for`` target).
        max_distance: match distance.
        duration: for video pointing, the clip duration: points match over (t / duration, x, y);
            None matches points only within the same group (image index, or the exact time).

    Returns:
        ``PointScores``; a count-only or "There are none." target has no points.
    """
    ta, tb = parse_points(target), parse_points(pred)
    if duration is not None:
        return video_point_scores([(p.group, p.x, p.y) for p in ta], [(p.group, p.x, p.y) for p in tb],
                                  duration, max_distance)
    return point_scores([(p.x, p.y) for p in ta], [(p.x, p.y) for p in tb], max_distance,
                        [p.group for p in ta], [p.group for p in tb])


# ----------------------------------------------------------------------------- counts


def count_close(pred: int, true: int) -> bool:
    """The counting metric's "close": ``|pred - true| <= 1 + floor(0.05 * true)``."""
    return abs(pred - true) <= 1 + math.floor(0.05 * true)


def count_scores(pred_text: str, true_count: int) -> dict[str, Any]:
    """Exact and close count of one answer.

    Args:
        pred_text: the model's answer (the count is read with ``parse_count``).
        true_count: the reference count.

    Returns:
        ``{"count": int | None, "exact": bool, "close": bool}``; an unreadable count is neither.
    """
    count = parse_count(pred_text)
    if count is None:
        return {"count": None, "exact": False, "close": False}
    return {"count": count, "exact": count == true_count, "close": count_close(count, true_count)}


# ----------------------------------------------------------------------------- tracks


def track_array(record: dict) -> np.ndarray:
    """A VideoTrack record dict as (objects, frames, 2), NaN where the object is not visible.

    A None point (absent) and a point marked ``occluded`` are both not visible.
    """
    n = len(record["timestamps"])
    arr = np.full((len(record["objects"]), n, 2), np.nan)
    for i, obj in enumerate(record["objects"]):
        for t, p in enumerate(obj["points"]):
            if p is not None and not is_occluded(p):
                arr[i, t] = (p["x"], p["y"])
    return arr


def match_objects(a: np.ndarray, b: np.ndarray, max_mean: float) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Match whole objects of two ``track_array``s by mean distance over the frames both show.

    Returns:
        ``(pairs, mean)``: sorted index pairs within ``max_mean`` (Hungarian), and the
        (objects_a, objects_b) mean-distance table (inf where never both visible).
    """
    mean = np.full((len(a), len(b)), np.inf)
    for i in range(len(a)):
        for j in range(len(b)):
            both = ~np.isnan(a[i, :, 0]) & ~np.isnan(b[j, :, 0])
            if both.any():
                mean[i, j] = float(np.sqrt(((a[i, both] - b[j, both]) ** 2).sum(axis=1)).mean())
    if not len(a) or not len(b):
        return [], mean
    ok = mean <= max_mean
    rows, cols = linear_sum_assignment(np.where(ok, mean, max_mean * (min(len(a), len(b)) + 1) + 1.0))
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if ok[i, j]), mean


def track_scores(ra: dict, rb: dict, point_distance: float = DEFAULT_POINT_DISTANCE,
                 object_distance: float = 2 * DEFAULT_POINT_DISTANCE) -> dict[str, float]:
    """Per-frame F1, id switches and id consistency between two VideoTrack record dicts.

    Args:
        ra, rb: records with equal ``timestamps``.
        point_distance: per-frame match distance.
        object_distance: largest mean distance at which two objects are the same object.

    Returns:
        ``frame_f1``, ``id_switches`` (the larger count of the two directions),
        ``id_consistency`` (share of per-frame matches that agree with the object matching),
        ``objects_a``, ``objects_b``, ``matched_objects``, ``mean_distance`` (over matched
        objects; NaN when none).

    Raises:
        ValueError: the records have different timestamps.
    """
    if len(ra["timestamps"]) != len(rb["timestamps"]) or not np.allclose(ra["timestamps"], rb["timestamps"]):
        raise ValueError("track agreement needs records on the same timestamps")
    a, b = track_array(ra), track_array(rb)
    objects, mean = match_objects(a, b, object_distance)
    pairs = set(objects)
    matched = visible = consistent = 0
    last_a: dict[int, int] = {}
    last_b: dict[int, int] = {}
    switches_a = switches_b = 0
    for t in range(len(ra["timestamps"])):
        ia = [i for i in range(len(a)) if not np.isnan(a[i, t, 0])]
        ib = [j for j in range(len(b)) if not np.isnan(b[j, t, 0])]
        visible += len(ia) + len(ib)
        for p, q in match_points(a[ia, t] if ia else [], b[ib, t] if ib else [], point_distance):
            i, j = ia[p], ib[q]
            matched += 1
            consistent += (i, j) in pairs
            switches_a += last_a.get(i, j) != j
            switches_b += last_b.get(j, i) != i
            last_a[i], last_b[j] = j, i
    return {
        "frame_f1": 2.0 * matched / visible if visible else 1.0,
        "id_switches": float(max(switches_a, switches_b)),
        "id_consistency": consistent / matched if matched else 1.0,
        "objects_a": float(len(a)), "objects_b": float(len(b)), "matched_objects": float(len(objects)),
        "mean_distance": float(np.mean([mean[i, j] for i, j in objects])) if objects else float("nan"),
    }


def score_track_text(pred: str, target: str, max_distance: float = DEFAULT_POINT_DISTANCE) -> dict[str, float]:
    """Tracking metric on text: per-frame one-to-one F1, and id switches of the target objects.

    Frames are the printed times (one decimal). Every entry of the prediction counts, also a
    repeated ``(time, id)``, so a duplicate costs precision. An id switch is a target object
    matched to a predicted id other than the one it was matched to before.

    Args:
        pred: the model's ``<tracks>`` answer.
        target: the reference ``<tracks>`` text.
        max_distance: per-frame match distance.

    Returns:
        ``frame_f1``, ``precision``, ``recall``, ``matches``, ``id_switches``, ``true_points``,
        ``pred_points``.
    """
    frames: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for side, marks in enumerate((parse_tracks(target), parse_tracks(pred))):
        for m in marks:
            frames[round(m.time * 10)][side].append(m)
    matched = n_true = n_pred = switches = 0
    partner: dict[int, int] = {}
    for key in sorted(frames):
        true, guess = frames[key]
        n_true, n_pred = n_true + len(true), n_pred + len(guess)
        for i, j in match_points([(m.x, m.y) for m in true], [(m.x, m.y) for m in guess], max_distance):
            matched += 1
            obj, pid = true[i].object_id, guess[j].object_id
            switches += partner.get(obj, pid) != pid
            partner[obj] = pid
    total = n_true + n_pred
    return {"frame_f1": 2.0 * matched / total if total else 1.0,
            "precision": matched / n_pred if n_pred else 1.0, "recall": matched / n_true if n_true else 1.0,
            "matches": float(matched), "id_switches": float(switches),
            "true_points": float(n_true), "pred_points": float(n_pred)}


# ----------------------------------------------------------------------------- text answers


def token_f1(a: str, b: str) -> float:
    """F1 of the normalized word multisets of ``a`` and ``b`` (1.0 when both are empty)."""
    ta, tb = normalize_text(a).split(), normalize_text(b).split()
    if not ta and not tb:
        return 1.0
    common = sum(min(ta.count(w), tb.count(w)) for w in set(ta))
    return 2.0 * common / (len(ta) + len(tb))


def normalized_match(pred: str, reference: str) -> bool:
    """Free-form QA: equal after ``normalize_text``."""
    return normalize_text(pred) == normalize_text(reference)


_CHOICE_RES = (
    re.compile(r"^\s*\(?([A-Z])\s*[.):]"),  # "B. text", "(B) text", "B) text", "B: text"
    re.compile(r"^\s*\(?([A-Z])\)?\s*$"),  # "B", "(B)"
)


def read_choice(text: str) -> Optional[str]:
    """The option letter an answer starts with (``"B. text"``, ``"(B)"``, ``"B"``), or None."""
    for pattern in _CHOICE_RES:
        m = pattern.match(text)
        if m is not None:
            return m.group(1)
    return None


def choice_correct(pred: str, target: str) -> bool:
    """Multiple choice: is ``pred`` the option of ``target`` (``"B. <text>"``)?

    The letters are compared when both have one; otherwise the option texts after
    ``normalize_text`` (a prediction of only the option text still counts).
    """
    want = read_choice(target)
    got = read_choice(pred)
    if want is not None and got is not None:
        return want == got
    strip = re.compile(r"^\s*\(?[A-Z]\s*[.):]\s*")
    return normalized_match(strip.sub("", pred, count=1), strip.sub("", target, count=1))


def multiple_choice_accuracy(preds: Sequence[str], targets: Sequence[str]) -> float:
    """Share of ``choice_correct`` pairs.

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(preds) != len(targets) or not preds:
        raise ValueError(f"need equally many predictions and targets (>0), got {len(preds)} and {len(targets)}")
    return sum(choice_correct(p, t) for p, t in zip(preds, targets)) / len(preds)
