"""Check and normalize the images of image sets (MultiImageQA / MultiImagePoint), and group them.

One job: turn image bytes into a checked, upright, size-capped, deterministically re-encoded
image (``inspect_image``), make image sets of 2-5 images out of single-image manifest rows that
share a ``group`` label (``group_images``), and flag byte-identical images within a set
(``dedupe_images_in_set``). Pure functions; the ingest's DoFns call them, and the decoding
sandbox runs ``inspect_image_file`` (so this module and its imports stay free of Apache Beam).

Failures are ``InputError("image", <slug>, "<name>: <why>")`` with these slugs: ``empty``,
``not_an_image``, ``truncated``, ``corrupt``, ``too_many_pixels`` (decompression bombs),
``too_small``; and, for grouped single images, ``singleton_group`` (a group label with only one
image) and ``conflicting_group_field`` (the group's rows disagree on license, source or split).
"""
from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.ingest.phash import frame_phash
from pipelines.common.errors import InputError
from schemas.record_types import MAX_SET_IMAGES, MIN_SET_IMAGES  # the one definition of an image set's size
from schemas.records import canonical_json

__all__ = [
    "MIN_SIDE", "MAX_PIXELS", "JPEG_QUALITY", "LOSSLESS_FORMATS", "MIN_SET_IMAGES", "MAX_SET_IMAGES",
    "ImageResult", "GroupedSet", "Leftover", "inspect_image", "group_images", "split_sizes", "GROUP_FIELDS",
    "group_conflicts",
    "set_id", "dedupe_images_in_set", "inspect_image_file",
]

MIN_SIDE = 32
"""Default smallest accepted shorter side, pixels (after orientation)."""
MAX_PIXELS = 50_000_000
"""Default largest accepted width * height; more is treated as a decompression bomb."""
JPEG_QUALITY = 90
LOSSLESS_FORMATS = frozenset({"PNG", "GIF", "BMP", "TIFF", "PPM"})
"""Pillow format names stored as PNG, never as JPEG: lossless in, lossless kept (line art stays exact)."""

# What Pillow raises on malformed bytes, anywhere from the header to the pixel data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                  ZeroDivisionError, struct.error, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageResult:
    """A checked image and its normalized encoding."""

    name: str
    """The name it was inspected under (URL or path), for messages."""
    sha256: str
    """SHA-256 of the original bytes."""
    width: int
    """Width of the original image after EXIF orientation, pixels."""
    height: int
    format: str
    """Pillow's name of the original format, e.g. ``"JPEG"``, ``"PNG"``, ``"WEBP"``."""
    phash: int
    """64-bit perceptual hash (``pipelines.ingest.phash.frame_phash``) of the stored image."""
    data: bytes
    """The stored bytes: PNG for a lossless format or alpha, else JPEG (quality 90); same input, same bytes."""
    ext: str
    """``"jpg"`` or ``"png"``: the stored format."""
    stored_width: int
    """Size of the stored image: the original scaled so its longer side is <= ``max_side``."""
    stored_height: int


def _bad(error_type: str, name: str, why: str) -> InputError:
    return InputError("image", error_type, f"{name}: {why}")


def _decode_failure(name: str, exc: BaseException) -> InputError:
    if isinstance(exc, Image.DecompressionBombError):
        return _bad("too_many_pixels", name, f"rejected as a decompression bomb ({exc})")
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in text.lower() or "broken data stream" in text:
        return _bad("truncated", name, f"is truncated ({text})")
    return _bad("corrupt", name, f"cannot be decoded ({type(exc).__name__}: {text})")


def inspect_image(data: bytes, name: str, max_side: int, *, min_side: int = MIN_SIDE,
                  max_pixels: int = MAX_PIXELS, jpeg_quality: int = JPEG_QUALITY) -> ImageResult:
    """Decode, check and re-encode one image.

    Decoding is ``verify()`` on one opening (checksums, structure), then a full ``load()`` on a
    second, then ``ImageOps.exif_transpose`` so the pixels are upright. Multi-frame files (GIF,
    APNG, TIFF) give their first frame. Images in a lossless format (``LOSSLESS_FORMATS``: line
    art, charts, documents) or with an alpha channel (or a transparency key) are stored as PNG
    (RGB or RGBA), others as RGB JPEG; metadata (EXIF, ICC profile) is not kept.

    Args:
        data: the file bytes.
        name: the image's URL or path, used in messages.
        max_side: the stored image's longer side is at most this (aspect kept; never upscaled).
        min_side: shorter side below this (after orientation) is ``too_small``.
        max_pixels: width * height above this is ``too_many_pixels`` (checked before decoding).
        jpeg_quality: quality of the stored JPEG.

    Returns:
        An ``ImageResult``.

    Raises:
        InputError: stage ``"image"``, slug ``empty``, ``not_an_image``, ``truncated``,
            ``corrupt``, ``too_many_pixels`` or ``too_small``.
        ValueError: ``max_side`` < 1 (a bug in the caller).
    """
    if max_side < 1:
        raise ValueError(f"inspect_image: max_side must be >= 1, got {max_side}")
    if not data:
        raise _bad("empty", name, "is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:  # reads the header only
                fmt, (width, height) = probe.format or "unknown", probe.size
                if width * height > max_pixels:
                    raise _bad("too_many_pixels", name, f"has {width}x{height} pixels, more than "
                               f"{max_pixels} (possible decompression bomb)")
                probe.verify()
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError:
        raise _bad("not_an_image", name, f"is not an image Pillow can read ({len(data)} bytes)") from None
    except _DECODE_ERRORS as exc:
        raise _decode_failure(name, exc) from None

    width, height = image.size
    if min(width, height) < min_side:
        raise _bad("too_small", name, f"is {width}x{height}; the shorter side must be >= {min_side}")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    lossless = has_alpha or fmt in LOSSLESS_FORMATS
    try:
        image = image.convert("RGBA" if has_alpha else "RGB")
    except _DECODE_ERRORS as exc:  # exotic modes Pillow cannot convert
        raise _bad("corrupt", name, f"mode {image.mode} cannot be converted ({exc})") from None
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    image.info = {}  # no EXIF / ICC / text chunks in the stored bytes
    out = io.BytesIO()
    if lossless:
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=jpeg_quality)
    return ImageResult(name=name, sha256=hashlib.sha256(data).hexdigest(), width=width, height=height,
                       format=fmt, phash=frame_phash(image), data=out.getvalue(),
                       ext="png" if lossless else "jpg", stored_width=image.width,
                       stored_height=image.height)


def inspect_image_file(path: str, name: str, max_side: int) -> ImageResult:
    """Sandbox job: read a fetched image file and :func:`inspect_image` it (default limits).

    Raises:
        InputError: as :func:`inspect_image`.
    """
    with open(path, "rb") as f:
        return inspect_image(f.read(), name, max_side)

@dataclass(frozen=True)
class GroupedSet:
    """An image set made of grouped single-image rows."""

    set_id: str
    """``set_id(input_ids)``: 16 hex digits, no dots."""
    group: str
    """The rows' shared group label."""
    input_ids: tuple[str, ...]
    """Member row ids, sorted."""
    images: tuple[str, ...]
    """The members' image URLs/paths, in ``input_ids`` order."""
    rows: tuple[Any, ...]
    """The member rows as given, in ``input_ids`` order."""


@dataclass(frozen=True)
class Leftover:
    """A row that could not be put in a set; it ends as a failure."""

    input_id: str
    group: str
    error_type: str
    """``"singleton_group"`` or ``"conflicting_group_field"``."""
    message: str
    row: Any

    def to_error(self) -> InputError:
        """The ``InputError`` (stage ``"image"``) to record for this row."""
        return InputError("image", self.error_type, self.message)


def _field(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


def _image_of(row: Any) -> Any:
    image = _field(row, "image")
    if image is None:  # a ManifestRow keeps its one image in ``images``
        images = _field(row, "images")
        if images is not None and len(images) == 1:
            image = images[0]
    return image


GROUP_FIELDS = ("license", "source", "split")
"""Fields an image set carries once for all its images: a group's rows must agree on them."""


def group_conflicts(members: Sequence[Any]) -> str | None:
    """What a group's rows disagree on, in words; None when they agree.

    A field given by some rows and not by others is a disagreement too: the set would claim
    for every image what only some rows said.

    Args:
        members: the group's rows (dicts or objects with ``input_id`` and the ``GROUP_FIELDS``).

    Returns:
        E.g. ``"'license': 'CC-BY-4.0' (a, b) vs 'MIT' (c); 'split': 'train' (a) vs not given (b, c)"``.
    """
    parts = []
    for name in GROUP_FIELDS:
        by_value: dict[Any, list[str]] = {}
        for row in members:
            by_value.setdefault(_field(row, name), []).append(_field(row, "input_id"))
        if len(by_value) > 1:
            shown = sorted(by_value.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
            parts.append(f"{name!r}: " + " vs ".join(
                f"{'not given' if value is None else repr(value)} ({_some(sorted(ids))})" for value, ids in shown))
    return "; ".join(parts) or None


def _some(ids: list[str], most: int = 5) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 7 more``: a message stays short for a group of any size."""
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return ", ".join(ids[:most]) + more


def split_sizes(n: int) -> list[int]:
    """Sizes of the sets ``n`` grouped images make: ``ceil(n / 5)`` balanced parts, larger first.

    Args:
        n: images in the group (>= 2).

    Returns:
        E.g. 5 -> [5], 6 -> [3, 3], 7 -> [4, 3], 11 -> [4, 4, 3]; every size is in 2..5.

    Raises:
        ValueError: ``n`` < 2.
    """
    if n < MIN_SET_IMAGES:
        raise ValueError(f"split_sizes needs at least {MIN_SET_IMAGES} images, got {n}")
    parts = -(-n // MAX_SET_IMAGES)
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def set_id(input_ids: Iterable[str]) -> str:
    """Deterministic id of an image set: 16 hex digits of the sha256 of its sorted member ids.

    Args:
        input_ids: the member ids, any order (any text, non-ASCII included).

    Returns:
        A WebDataset-safe key (hex digits only).
    """
    blob = canonical_json(sorted(input_ids)).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def group_images(rows: Iterable[Any]) -> tuple[list[GroupedSet], list[Leftover]]:
    """Make image sets of single-image rows that share a ``group`` label.

    Rows are dicts (any ``Mapping``) or objects with the attributes ``input_id``, ``group`` and
    ``image`` (a ``ManifestRow``'s one-element ``images`` is accepted for ``image``).

    Rule: within a group, rows are sorted by ``input_id``. A group of 2-5 rows is one set; a
    group of n > 5 rows is cut, in that order, into ``ceil(n / 5)`` consecutive sets of balanced
    sizes (``split_sizes``: 6 -> 3+3, 7 -> 4+3, 11 -> 4+4+3), so every set has 2-5 images and
    every row is in exactly one set. Leftovers: a group with a single row becomes a ``Leftover``
    with error type ``singleton_group`` (it is never merged into another group); a group whose
    rows disagree on a ``GROUP_FIELDS`` value (license, source, split; given by some rows and not
    by others counts) makes no set at all: each of its rows becomes a ``Leftover`` with error type
    ``conflicting_group_field`` whose message names the fields and the differing values.

    Args:
        rows: the image rows, any order, with unique ``input_id``.

    Returns:
        ``(sets, leftovers)``: sets sorted by group label then position; leftovers sorted by group.

    Raises:
        ValueError: a row lacks ``input_id``, ``group`` or ``image``, or two rows share an
            ``input_id`` (bugs in the caller: the manifest reader guarantees these).
    """
    groups: dict[str, list[Any]] = {}
    seen: set[str] = set()
    for row in rows:
        input_id, group = _field(row, "input_id"), _field(row, "group")
        if not isinstance(input_id, str) or not isinstance(group, str) or _image_of(row) is None:
            raise ValueError(f"group_images: every row needs input_id, group and image, got {row!r}")
        if input_id in seen:
            raise ValueError(f"group_images: input_id {input_id!r} appears twice")
        seen.add(input_id)
        groups.setdefault(group, []).append(row)
    sets: list[GroupedSet] = []
    leftovers: list[Leftover] = []
    for group in sorted(groups):
        members = sorted(groups[group], key=lambda r: _field(r, "input_id"))
        if len(members) == 1:
            input_id = _field(members[0], "input_id")
            leftovers.append(Leftover(input_id, group, "singleton_group",
                                      f"{input_id}: the only image of group {group!r}; an image set "
                                      f"needs {MIN_SET_IMAGES} to {MAX_SET_IMAGES}", members[0]))
            continue
        conflicts = group_conflicts(members)
        if conflicts is not None:
            for member in members:
                input_id = _field(member, "input_id")
                leftovers.append(Leftover(input_id, group, "conflicting_group_field",
                                          f"{input_id}: the rows of group {group!r} disagree on {conflicts}; "
                                          f"an image set carries one license, source and split, so give "
                                          f"them the same values or put them in different groups", member))
            continue
        start = 0
        for size in split_sizes(len(members)):
            chunk = members[start:start + size]
            start += size
            ids = tuple(_field(r, "input_id") for r in chunk)
            sets.append(GroupedSet(set_id(ids), group, ids, tuple(_image_of(r) for r in chunk), tuple(chunk)))
    return sets, leftovers


def dedupe_images_in_set(results: Sequence[ImageResult]) -> list[int | None]:
    """Flag byte-identical images within one set.

    Args:
        results: the set's images in set order.

    Returns:
        One entry per image: None for the first image with its sha256, else the index of that
        first image (the one this one duplicates).
    """
    first: dict[str, int] = {}
    flags: list[int | None] = []
    for index, result in enumerate(results):
        flags.append(first.get(result.sha256))
        first.setdefault(result.sha256, index)
    return flags
