"""The numbers of a published version: per-sample measurements and the ``stats.json`` they sum to.

One job: say what to measure on each sample (``sample_metrics``) and assemble ``stats.json``
from the summed tallies, histograms and shard list (``build_stats``). The measurements are
exact value counts (durations rounded to 0.1 s), summed by a Beam ``CombinePerKey``; the report
plots them.

``stats.json``::

    {"dataset", "version",
     "records": {"read", "published", "failed", "excluded"},
     "failed": {error type or rule: n}, "excluded": {reason: n}, "review": {decision: n},
     "splits": {split: {"samples", "records", "shards", "bytes"}},
     "licenses": {license: samples}, "sources": {source: samples},
     "histograms": {metric: [[value, count], ...]}}

Every record read is published, failed or excluded: ``read == published + failed + excluded``
(``build_stats`` checks it and raises when the outcomes do not add up).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

__all__ = ["sample_metrics", "build_stats", "METRIC_TITLES"]

METRIC_TITLES = {
    "clip_duration_s": "Clip duration (s)",
    "frames_per_clip": "Frames per clip",
    "images_per_set": "Images per set",
    "records_per_sample": "Records per sample",
    "points_per_frame": "Points per frame (frames with points)",
    "count": "Counts (points per query)",
    "track_length_frames": "Track length (frames visible per object)",
    "provenance": "Records by provenance (how they were made)",
    "objects_per_track": "Objects per track",
    "category": "Categories",
    "answer_words": "Answer length (words)",
    "caption_words": "Caption length (words)",
}
"""Plot title of each histogram metric."""

_QA_ANSWER = ("AskModelAnything", "CapQA", "SubtitleQA", "SynMultiImageQA")


def _words(text: str) -> int:
    return len(text.split())


def sample_metrics(dataset: str, body: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    """``(metric, value)`` measurements of one sample's JSON (see ``pipelines.publish.samples``)."""
    records = body["records"]
    yield "license", body["license"]
    yield "source", body["source"]
    yield "records_per_sample", len(records)
    if body["media_type"] == "clip":
        clip = body["clip"]
        yield "clip_duration_s", round(clip["end"] - clip["start"], 1)
        yield "frames_per_clip", len(body["frames"])
    else:
        yield "images_per_set", len(body["frames"])
    for r in records:
        if dataset in ("VideoPoint", "MultiImagePoint"):
            yield "count", r["count"]
            where = "time" if dataset == "VideoPoint" else "image_index"
            for n in Counter(p[where] for p in r["points"]).values():
                yield "points_per_frame", n
        elif dataset == "VideoTrack":
            yield "objects_per_track", len(r["objects"])
            for obj in r["objects"]:
                yield "track_length_frames", sum(p is not None and not p.get("occluded") for p in obj["points"])
        if dataset in _QA_ANSWER:
            yield "answer_words", _words(r["answer"])
        elif dataset == "MultiImageQA":
            for pair in r["qa_pairs"]:
                yield "answer_words", _words(pair["answer"])
        elif dataset == "Cap":
            yield "caption_words", _words(r["clip_caption"])
        if r.get("category"):
            yield "category", r["category"]
        yield "provenance", (r.get("provenance") or {}).get("method", "unrecorded")


def build_stats(dataset: str, version: str, tallies: dict[tuple[str, str], int],
                histograms: dict[str, dict[Any, int]], shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Assemble ``stats.json``.

    Args:
        tallies: ``(group, name) -> n`` summed over the dataset (groups ``records``, ``failed``,
            ``excluded``, ``review``, ``split_records``).
        histograms: ``metric -> {value: count}``.
        shards: the manifest's shard entries.

    Raises:
        ValueError: the outcomes of the records read do not add up.
    """
    def group(name: str) -> dict[str, int]:
        return {k: n for (g, k), n in sorted(tallies.items()) if g == name}

    splits: dict[str, dict[str, int]] = {}
    for shard in shards:
        entry = splits.setdefault(shard["split"], {"samples": 0, "records": 0, "shards": 0, "bytes": 0})
        entry["samples"] += shard["num_samples"]
        entry["shards"] += 1
        entry["bytes"] += shard["num_bytes"]
    for split, n in group("split_records").items():
        splits.setdefault(split, {"samples": 0, "records": 0, "shards": 0, "bytes": 0})["records"] = n
    histograms = dict(histograms)
    licenses, sources = histograms.pop("license", {}), histograms.pop("source", {})
    failed, excluded = group("failed"), group("excluded")
    read = tallies.get(("records", "read"), 0)
    published = sum(s["records"] for s in splits.values())
    if read != published + sum(failed.values()) + sum(excluded.values()):
        raise ValueError(f"{dataset}: {read} records read but {published} published + {sum(failed.values())} "
                         f"failed + {sum(excluded.values())} excluded: outcomes do not add up")
    return {
        "dataset": dataset,
        "version": version,
        "records": {"read": read, "published": published, "failed": sum(failed.values()),
                    "excluded": sum(excluded.values())},
        "failed": failed,
        "excluded": excluded,
        "review": group("review"),
        "splits": dict(sorted(splits.items())),
        "licenses": dict(sorted(licenses.items())),
        "sources": dict(sorted(sources.items())),
        "histograms": {m: sorted(([v, n] for v, n in h.items()), key=lambda x: (isinstance(x[0], str), x[0]))
                       for m, h in sorted(histograms.items())},
    }
