"""Sample keys, member extensions and value encoding for this project's WebDataset shards.

One job: decide what a sample may be called and how its values become member bytes, so that the
writer (``shards.writer``) and anything that builds samples agree. Keys carry no dots (WebDataset
splits a member name at the first dot), no path tricks and are NFC-normalised; extensions are
lowercase dot-separated parts (WebDataset lowercases them when it reads); dicts and lists are
stored as canonical JSON (``schemas.records.canonical_json``, UTF-8), so the same sample always
gives the same bytes.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Mapping

from schemas.records import canonical_json

__all__ = ["validate_key", "validate_extension", "encode_sample"]

_ENCODING = "utf-8"
_EXT_PART = r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?"
_EXT_RE = re.compile(rf"{_EXT_PART}(?:\.{_EXT_PART})*")


def _bad_key(key: object, rule: str) -> ValueError:
    return ValueError(f"sample key {key!r}: {rule}")


def validate_key(key: object) -> str:
    """Check a sample key against the WebDataset naming rules.

    Args:
        key: the ``__key__`` of a sample.

    Returns:
        The key, unchanged.

    Raises:
        ValueError: naming the key and the rule it breaks: not a string, empty, a control or
            surrogate character, not NFC-normalized, starting with ``/`` (absolute), a ``..``
            or empty path component, any dot (WebDataset splits ``key.ext`` at the first dot),
            or starting with ``__`` (reserved for WebDataset metadata such as ``__url__``).
    """
    if not isinstance(key, str):
        raise _bad_key(key, f"must be a str, got {type(key).__name__}")
    if not key:
        raise _bad_key(key, "must not be empty")
    for ch in key:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise _bad_key(key, f"must not contain control character {ch!r}")
    if unicodedata.normalize("NFC", key) != key:
        raise _bad_key(key, "must be NFC-normalized Unicode (equal-looking keys must be equal)")
    if key.startswith("/"):
        raise _bad_key(key, "must not start with '/' (absolute path)")
    parts = key.split("/")
    if ".." in parts:
        raise _bad_key(key, "must not contain a '..' path component")
    if "." in key:
        raise _bad_key(key, "must not contain '.' (WebDataset splits key.ext at the first dot)")
    if "" in parts:
        raise _bad_key(key, "must not contain an empty path component ('//' or a trailing '/')")
    if key.startswith("__"):
        raise _bad_key(key, "must not start with '__' (reserved for WebDataset metadata)")
    return key


def _bad_ext(key: str, ext: object, rule: str) -> ValueError:
    return ValueError(f"sample {key!r}: extension {ext!r} {rule}")


def validate_extension(ext: object, key: str = "?") -> str:
    """Check a member extension (the part after ``key.``).

    Args:
        ext: the extension, e.g. ``"mp4"``, ``"json"`` or ``"seg.json"``.
        key: the sample key, for the error message.

    Returns:
        The extension, unchanged.

    Raises:
        ValueError: naming key and extension when it is not a non-empty string of lowercase
            dot-separated parts ``[a-z0-9]`` with inner ``_``/``-`` (no slash, no leading ``_``,
            no uppercase: WebDataset lowercases extensions when it reads).
    """
    if not isinstance(ext, str):
        raise _bad_ext(key, ext, "must be a str")
    if not ext:
        raise _bad_ext(key, ext, "must not be empty")
    if "/" in ext:
        raise _bad_ext(key, ext, "must not contain '/'")
    if ext != ext.lower():
        raise _bad_ext(key, ext, "must be lowercase (WebDataset lowercases extensions on read)")
    if ext.startswith("_"):
        raise _bad_ext(key, ext, "must not start with '_' (metadata)")
    if not _EXT_RE.fullmatch(ext):
        raise _bad_ext(
            key, ext, "must be dot-separated parts of [a-z0-9], with '_' or '-' only inside a part"
        )
    return ext


def _is_metadata(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _encode_value(key: str, ext: str, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode(_ENCODING)
    if isinstance(value, (dict, list)):
        if ext == "json" or ext.endswith(".json"):
            return canonical_json(value).encode(_ENCODING)
        raise TypeError(
            f"sample {key!r}: a {type(value).__name__} needs extension 'json' or '*.json', not {ext!r}"
        )
    raise TypeError(
        f"sample {key!r}: value of {ext!r} must be bytes, str, dict or list, not {type(value).__name__}"
    )


def encode_sample(sample: Mapping[str, Any]) -> tuple[str, list[tuple[str, bytes]]]:
    """Validate a sample and encode its members.

    Args:
        sample: ``{"__key__": key, ext: value, ...}``; ``__name__`` entries are metadata and skipped.

    Returns:
        ``(key, [(ext, data), ...])`` with the members sorted by extension.

    Raises:
        ValueError: on a missing or invalid key, an invalid extension, or no member at all
            (a sample without members would vanish from the tar).
        TypeError: on a value that cannot be encoded.
    """
    if not isinstance(sample, Mapping):
        raise TypeError(f"a sample must be a mapping, not {type(sample).__name__}")
    if "__key__" not in sample:
        raise ValueError(f"sample has no '__key__': entries {sorted(sample)}")
    key = validate_key(sample["__key__"])
    members = []
    for ext in sorted(sample):
        if _is_metadata(ext):
            continue
        validate_extension(ext, key)
        members.append((ext, _encode_value(key, ext, sample[ext])))
    if not members:
        raise ValueError(f"sample {key!r}: has no member to write (only metadata entries)")
    return key, members
