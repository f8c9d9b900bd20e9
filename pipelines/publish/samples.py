"""What one published sample is: a media item of one dataset with every record of it on it.

One job: the pure functions the publish pipeline's steps call to turn ingest media and records
into samples. No Beam here, so each piece is unit-tested directly.

Record shapes:

* media meta (``media_meta``): ``{"kind": "clip" | "image_set", "key", "record": Clip or
  ImageSet dict, "source_ids": [video id] or [set id, image ids...], "source", "license",
  "split", "frames": ["000.jpg", ...], "timestamps": [...] (clips), "width", "height"
  (clip frame size), "num_images" (sets)}``; clips get ``source``/``license`` from their
  ``VideoAsset`` (``attach_video``).
* media frames: ``[(member extension, bytes), ...]`` with extensions ``NNN.jpg``/``NNN.png``
  in frame or image order, stored bytes untouched (no re-encoding of line art).
* sample (``build_sample``): ``{"__key__": media key, "json": {...}, "000.jpg": bytes, ...}``
  whose JSON holds ``dataset``, ``media_type``, the media record (``clip`` or ``image_set``)
  with ``source``, ``license``, ``split``, ``source_ids``, the member names of its ``frames``,
  the ``records`` sorted by key, and ``conversations``: record key -> the messages it trains as
  (``conversation``: ``schemas.prompts.messages_for`` in the default style).
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, Optional

from shards.layout import SHARD_PREFIXES

__all__ = [
    "media_from_ingest", "attach_video", "media_key_of", "source_id_of", "resample_for_clip",
    "conversation", "build_sample", "CONVERSATION_STYLE",
]

_IMAGE_MEMBER = re.compile(r"^(\d+)\.(jpg|jpeg|png|webp)$")
_VIDEO_ONLY_FIELDS = ("mp4", "mp4_fps", "mp4_frame_indices")
CONVERSATION_STYLE: Optional[str] = None
"""Style passed to ``messages_for``: None is the dataset's default style."""


def _frames_of(sample: dict[str, Any], what: str) -> list[tuple[str, bytes]]:
    """Image members of an ingest sample renamed ``NNN.ext`` in numeric order."""
    found = []
    for ext, value in sample.items():
        if ext.startswith("__") or ext == "json":
            continue
        match = _IMAGE_MEMBER.match(ext)
        if not match:
            raise ValueError(f"{what} {sample['__key__']!r}: member {ext!r} is not an image numbered NNN.ext")
        found.append((int(match.group(1)), match.group(2), value))
    found.sort()
    if [i for i, _, _ in found] != list(range(len(found))):
        raise ValueError(f"{what} {sample['__key__']!r}: image members {[i for i, _, _ in found]} are not 0..n-1")
    return [(f"{i:03d}.{ext}", data) for i, ext, data in found]


def media_from_ingest(kind: str, sample: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Media meta and frames of one sample of an ingest shard.

    Args:
        kind: ``"clips"`` or ``"imagesets"`` (the ingest shard folder).
        sample: the sample as ``shards.reader.iter_samples`` yields it (``json`` as bytes).

    Returns:
        ``(media meta, frames)``; a clip's meta still lacks source and license (``attach_video``).

    Raises:
        ValueError: a record that breaks its schema, or frames that do not match the record.
    """
    from schemas.records import validate

    record_type = SHARD_PREFIXES[kind]
    record = validate(record_type, json.loads(sample["json"])).model_dump(mode="json")
    if record["key"] != sample["__key__"]:
        raise ValueError(f"{record_type} {sample['__key__']!r}: its JSON says key {record['key']!r}")
    frames = _frames_of(sample, record_type)
    meta: dict[str, Any] = {"kind": record_type, "key": record["key"], "frames": [e for e, _ in frames]}
    if record_type == "clip":
        if len(frames) != len(record["timestamps"]):
            raise ValueError(f"clip {record['key']!r}: {len(frames)} frames for {len(record['timestamps'])} timestamps")
        for name in _VIDEO_ONLY_FIELDS:  # the ingest's annotation mp4 is not published
            record[name] = None
        meta.update(record=record, source_ids=[record["video_id"]], split=record["split"],
                    timestamps=record["timestamps"], width=record["frame_width"], height=record["frame_height"])
    else:
        if len(frames) != len(record["images"]):
            raise ValueError(f"image_set {record['key']!r}: {len(frames)} images for {len(record['images'])} listed")
        meta.update(record=record, source_ids=[record["key"]] + [i["image_id"] for i in record["images"]],
                    split=record["split"], source=record["source"], license=record["license"],
                    num_images=len(frames))
    return meta, frames


def attach_video(meta: dict[str, Any], video: dict[str, Any]) -> dict[str, Any]:
    """A clip's meta with its source video's ``source``, ``license`` and ``uri``."""
    return {**meta, "source": video["source"], "license": video["license"], "video_uri": video["uri"]}


def media_key_of(dataset: str, record: dict[str, Any]) -> str:
    """The media item a record is about: its ``clip_id`` or its ``image_set_id``.

    Raises:
        ValueError: a record with neither.
    """
    for name in ("clip_id", "image_set_id"):
        if isinstance(record.get(name), str):
            return record[name]
    raise ValueError(f"{dataset} record {record.get('key')!r} names no clip_id or image_set_id")


def source_id_of(meta: dict[str, Any]) -> str:
    """The source a media item came from (video id or image-set id); splits must not share one."""
    return meta["source_ids"][0]


def resample_for_clip(dataset: str, record: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """VideoTrack records at the clip's stored sample times; other records unchanged.

    Raises:
        ValueError: the track shows no frame at one of the clip's times.
    """
    if dataset != "VideoTrack" or meta["kind"] != "clip":
        return record
    from schemas.tracks import resample_track

    if list(record["timestamps"]) == list(meta["timestamps"]):
        return record
    return resample_track(record, times=meta["timestamps"])


def conversation(dataset: str, record: dict[str, Any], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation a record trains as, for trainers other than ours.

    The one place publishing asks for it: ``schemas.prompts.messages_for(dataset, record, media,
    style)`` in the default style, with the media record (Clip or ImageSet) as ``media``.

    Returns:
        The HF-style messages.

    Raises:
        ValueError: the record cannot be phrased (``messages_for`` names why).
    """
    from schemas.prompts import messages_for

    return messages_for(dataset, record, meta["record"], style=CONVERSATION_STYLE)


def build_sample(dataset: str, meta: dict[str, Any], frames: list[tuple[str, bytes]],
                 records: Iterable[tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    """The sample of one media item in one dataset.

    Args:
        dataset: dataset name.
        meta: media meta (see the module docstring), with source and license.
        frames: the media's frames, ``[(NNN.ext, bytes), ...]``.
        records: the dataset's validated records on this media with their conversations,
            ``(record, messages)``, any order.

    Returns:
        ``{"__key__": key, "json": {...}, "NNN.ext": bytes, ...}`` ready for ``shards.writer``.
    """
    pairs = sorted(records, key=lambda pair: pair[0]["key"])
    records = [r for r, _ in pairs]
    conversations = {r["key"]: messages for r, messages in pairs}
    body = {
        "key": meta["key"],
        "dataset": dataset,
        "media_type": meta["kind"],
        meta["kind"]: meta["record"],
        "source": meta["source"],
        "license": meta["license"],
        "split": meta["split"],
        "source_ids": meta["source_ids"],
        "frames": [ext for ext, _ in frames],
        "records": records,
        "conversations": conversations,
    }
    sample: dict[str, Any] = {"__key__": meta["key"], "json": body}
    sample.update(frames)
    return sample
