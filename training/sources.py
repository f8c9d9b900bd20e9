"""Published dataset versions as trainer sources: random access to decoded samples.

One job: adapt one split of a committed version (``<root>/<dataset>/<version>/``, read with
``shards.dataset.PublishedSplit``: its index gives every sample's shard and byte span, and each
read is checked against the sample's checksum) to the trainer's ``Source`` interface
(``training.data``): ``len(source)`` and ``source.get(i)`` -> ``Sample``.

Why random access rather than ``shards.open_dataset``'s streams: the trainer's global sample
sequence (``training.mixture``) is a pure function of (seed, index) over a *mixture* of
versions, and each rank and worker computes which samples it reads; it needs sample ``i`` of
entry ``e``, not the next sample of a per-dataset stream. Both read the same index and spans.

A published sample (``pipelines/publish/samples.py``): ``{key}.json`` holds ``dataset``,
``media_type`` (``clip`` or ``image_set``), the media record under that name, ``frames`` (member
names in frame or image order), ``records`` and ``conversations`` (record key -> messages in the
default style); the frames are the members ``000.jpg``, ``001.png``, ...
"""
from __future__ import annotations

import io
import json
from typing import Any, Sequence

from training.config import MixtureEntry
from training.data import Sample

__all__ = ["PublishedSource", "EmptySource", "decode_sample", "open_sources"]


def decode_sample(raw: dict[str, Any], dataset: str) -> Sample:
    """Turn a published sample (member extension -> bytes) into a ``Sample``.

    Raises:
        ValueError: the sample belongs to another dataset, or a listed frame is missing.
    """
    from PIL import Image

    body = raw["json"]
    if isinstance(body, (bytes, str)):
        body = json.loads(body)
    key = raw.get("__key__", body.get("key"))
    if body.get("dataset") != dataset:
        raise ValueError(f"sample {key!r} is of dataset {body.get('dataset')!r}, expected {dataset!r}")
    media = body[body["media_type"]]
    images = []
    for name in body["frames"]:
        if name not in raw:
            raise ValueError(f"sample {key!r} lists frame {name!r} but has no such member")
        with Image.open(io.BytesIO(raw[name])) as img:
            images.append(img.convert("RGB"))
    records = list(body["records"])
    conversations = body.get("conversations")
    ordered = [conversations[r["key"]] for r in records] if conversations else None
    return Sample(key=key, dataset=dataset, media=media, records=records, images=images, conversations=ordered)


class PublishedSource:
    """One split of a published version, read sample by sample.

    Args:
        root: the published root (local path or fsspec URL).
        entry: dataset, version and split.
        verify: check each sample's checksum before decoding it.
    """

    def __init__(self, root: str, entry: MixtureEntry, verify: bool = True):
        from shards.dataset import PublishedSplit

        self.entry = entry
        self.split = PublishedSplit(root, entry.dataset, entry.version, entry.split, verify=verify)

    def __len__(self) -> int:
        return len(self.split)

    def get(self, index: int) -> Sample:
        return decode_sample(next(self.split.read([index])), self.entry.dataset)


class EmptySource:
    """A validation set whose version has no such split: no samples, and the reason."""

    def __init__(self, entry: MixtureEntry, reason: str):
        self.entry, self.reason = entry, reason

    def __len__(self) -> int:
        return 0

    def get(self, index: int) -> Sample:
        raise IndexError(f"{self.entry.dataset} {self.entry.version} {self.entry.split}: {self.reason}")


def open_sources(root: str, entries: Sequence[MixtureEntry], missing_split_ok: bool = False) -> list:
    """One ``PublishedSource`` per mixture or validation entry.

    Args:
        root: the published root.
        entries: the entries, in order.
        missing_split_ok: a version without the entry's split gives an ``EmptySource`` (validation
            sets: reported as "n/a (no data)") instead of raising.

    Raises:
        FileNotFoundError: a version that is not published (committed) under ``root``.
        KeyError: a split the version does not have (unless ``missing_split_ok``).
    """
    out: list = []
    for e in entries:
        try:
            out.append(PublishedSource(root, e))
        except KeyError as exc:
            if not missing_split_ok:
                raise
            out.append(EmptySource(e, str(exc.args[0] if exc.args else exc)))
    return out
