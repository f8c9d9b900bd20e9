"""The demo's checks of normalized records against the procedural ground truth, one line per difference.

One job: say, for each record the demo's annotation stage normalized, what differs from what the
scene or image-set ground truth says it must be. Nothing here raises on a difference; the caller
collects the lines and fails the demo (``CheckFailed``) naming all of them.

| dataset | checked against the ground truth |
|---|---|
| VideoPoint | count (each matching object once); the source video's real source and duration |
| VideoTrack | per object, visible / occluded / absent on every mp4 frame as the scene says; source |
| Cap | the clip's templated caption and the rating given |
| AskModelAnything | the scene's first templated question and answer |
| MultiImagePoint | the query's count and every point, within one pixel of its image |
| MultiImageQA | the image set's first question/answer pairs, not the model draft |
| every dataset | provenance: a human record of a ``demo ...`` project |
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["RATING", "QA_PAIRS", "qa_pairs", "count_mismatches", "track_mismatches", "check_records"]

RATING = 4
"""The quality rating the simulated captioner gives."""
QA_PAIRS = 3
"""Question/answer pairs per MultiImageQA task (the config's slots)."""


def qa_pairs(truth: Any) -> list[tuple[str, str]]:
    """The question/answer pairs a MultiImageQA annotator writes for an image set: its first ``QA_PAIRS``."""
    return [(qa.question, qa.answer) for qa in truth.qa[:QA_PAIRS]]


def count_mismatches(records: list[dict], known: dict[str, dict], scenes: dict) -> list[str]:
    """VideoPoint records whose count differs from the ground truth: one line each, naming both."""
    lines = []
    for r in records:
        clip = known[r["clip_id"]]
        truth = scenes[clip["video_id"]]
        expected = len({s.object_id for t in clip["timestamps"]
                        for s in truth.ground_truth_at(clip["start"] + t).visible_objects if s.label == r["label"]})
        if r["count"] != expected:
            lines.append(f"{r['key']} ({r['label']!r} on clip {r['clip_id']}): count {r['count']}, "
                         f"ground truth {expected}")
    return lines


def _state(point: Any) -> str:
    return "out_of_frame" if point is None else "occluded" if point["occluded"] else "visible"


def track_mismatches(records: list[dict], known: dict[str, dict], scenes: dict) -> list[str]:
    """VideoTrack records whose objects are not visible, occluded and absent exactly where the scene says.

    Record objects are matched to scene objects by the frame where each is first visible and its
    position there (ids are given in that order).
    """
    lines = []
    for r in records:
        clip = known[r["clip_id"]]
        scene = scenes[clip["video_id"]]
        frames = [scene.ground_truth_at(clip["start"] + t) for t in r["timestamps"]]
        truth = []
        for obj in scene.objects:
            states = [f.state(obj.object_id) for f in frames]
            first = next((i for i, s in enumerate(states) if s.visible), None)
            if first is not None:
                truth.append(((first, states[first].x_norm, states[first].y_norm), [s.status for s in states]))
        truth.sort(key=lambda t: t[0])
        got = [[_state(p) for p in o["points"]] for o in r["objects"]]
        if got != [states for _, states in truth]:
            lines.append(f"{r['key']} (clip {r['clip_id']}): per-frame visible/occluded/absent differs from the "
                         f"scene ({sum(s.count('occluded') for s in got)} occluded entries, ground truth "
                         f"{sum(s.count('occluded') for _, s in truth)})")
    return lines


def _image_points(records: list[dict], image_sets: dict, sets: dict) -> list[str]:
    lines = []
    for r in records:
        query = sets[r["image_set_id"]].query(r["label"])
        images = image_sets[r["image_set_id"]]["images"]
        want = sorted((p.image_index, p.x, p.y) for p in query.points)
        ok = r["count"] == query.count == len(want) and all(
            p["image_index"] == i and abs(p["x"] - x) <= 1 / images[i]["width"]
            and abs(p["y"] - y) <= 1 / images[i]["height"] for p, (i, x, y) in zip(r["points"], want))
        if not ok:
            lines.append(f"{r['key']} ({r['label']!r} in {r['image_set_id']}): count {r['count']}, ground truth "
                         f"{query.count}, or a point more than a pixel off")
    return lines


def check_records(dataset: str, records: list[dict], known: dict[str, dict], scenes: dict, image_sets: dict,
                  sets: dict, videos: dict) -> list[str]:
    """Every difference between a dataset's normalized records and the ground truth, one line each.

    Args:
        dataset: the dataset name.
        records: its record dicts.
        known: clip records by key; scenes: scene ground truth by video id.
        image_sets: image-set records by key; sets: image-set ground truth by key.
        videos: video records by key.

    Returns:
        The lines (empty when every record matches).
    """
    lines = [f"{r['key']}: provenance {r['provenance']} is not a human record of a demo project"
             for r in records if r["provenance"]["method"] != "human"
             or not r["provenance"]["project"].startswith("demo ")]
    for r in records:
        if dataset in ("VideoPoint", "VideoTrack") and r["source"] != videos[r["video_id"]]["source"]:
            lines.append(f"{r['key']}: source {r['source']!r}, video {r['video_id']} has {videos[r['video_id']]['source']!r}")
        if dataset == "VideoPoint" and r["duration"] != videos[r["video_id"]]["duration"]:
            lines.append(f"{r['key']}: duration {r['duration']}, video has {videos[r['video_id']]['duration']}")

    def scene(r: dict) -> Any:
        return scenes[known[r["clip_id"]]["video_id"]]

    checks: dict[str, Callable[[], list[str]]] = {
        "VideoPoint": lambda: count_mismatches(records, known, scenes),
        "VideoTrack": lambda: track_mismatches(records, known, scenes),
        "Cap": lambda: [f"{r['key']}: caption {r['clip_caption']!r} / score {r['annotation_score']}"
                        for r in records if (r["clip_caption"], r["annotation_score"]) != (scene(r).caption, RATING)],
        "AskModelAnything": lambda: [f"{r['key']}: {r['question']!r} -> {r['answer']!r}" for r in records
                                     if (r["question"], r["answer"]) != (scene(r).qa[0].question, scene(r).qa[0].answer)],
        "MultiImagePoint": lambda: _image_points(records, image_sets, sets),
        "MultiImageQA": lambda: [f"{r['key']}: pairs {r['qa_pairs']}" for r in records
                                 if [(q["question"], q["answer"]) for q in r["qa_pairs"]]
                                 != qa_pairs(sets[r["image_set_id"]])],
    }
    return lines + checks[dataset]()
