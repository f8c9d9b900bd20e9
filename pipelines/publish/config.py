"""Typed settings of ``molmo2-data publish``: what to publish, from what, under which rules.

One job: hold and check the publish settings. Every field lands in the manifest's ``config``
(``PublishConfig.to_manifest()``), so two publishes compare by settings as well as by inputs.
Paths (root, inputs) are not settings: they are the command's arguments and the manifest's
``inputs``. No environment variable overrides a setting.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from schemas.record_types import MAX_SET_IMAGES, MIN_SET_IMAGES

__all__ = ["PublishConfig", "PublishConfigError", "VERSION_RE", "parse_version", "DEFAULT_LICENSES"]

VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
"""Versions are plain semantic versions ``X.Y.Z`` (no pre-release or build suffix)."""

DEFAULT_LICENSES = (
    "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "MIT",
    "ODC-By-1.0", "PDDL-1.0",
)
"""Licenses a published dataset may hold by default (SPDX ids); the dataset rule blocks others."""


class PublishConfigError(ValueError):
    """A publish setting is missing, malformed or incompatible with another one."""


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)``.

    Raises:
        PublishConfigError: when ``text`` is not ``X.Y.Z`` with non-negative integers.
    """
    match = VERSION_RE.match(text or "")
    if not match:
        raise PublishConfigError(f"version {text!r} must be X.Y.Z (three non-negative integers, e.g. 1.0.0)")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


@dataclass(frozen=True)
class PublishConfig:
    """Settings of one publish run (the same for every dataset it writes)."""

    version: str
    """The version written, ``X.Y.Z``."""
    parent_version: Optional[str] = None
    """The version this one follows; None: the highest committed version below ``version``."""
    datasets: Optional[tuple[str, ...]] = None
    """Datasets to publish; None: every dataset found in the record folders."""
    shard_max_bytes: int = 1_000_000_000
    """Largest shard file in bytes (a single sample larger than this gets a shard of its own)."""
    bucket_fill: float = 0.5
    """Shard assignment hashes samples into buckets of about ``bucket_fill * shard_max_bytes``
    bytes; each bucket is sorted and cut into shards on its own (no worker holds a global list)."""
    licenses: Optional[tuple[str, ...]] = None
    """``--licenses``: keep only media with one of these licenses (others are excluded and
    counted as ``license_filtered``); None keeps all."""
    allowed_licenses: tuple[str, ...] = DEFAULT_LICENSES
    """Dataset rule: every license in a published dataset must be on this list."""
    max_failure_rate: float = 0.2
    """Dataset rule: failed records / all records of a dataset must stay at or under this."""
    validation_batch: int = 512
    """Records per Great Expectations batch (record rules run on one table per batch)."""
    min_images: int = MIN_SET_IMAGES
    """Record rule: fewest images in an image set."""
    max_images: int = MAX_SET_IMAGES
    """Record rule: most images in an image set."""
    mtime: int = 0
    """Tar member mtime (seconds since the epoch) of every shard."""
    preview_samples: int = 4
    """Samples drawn with their points and tracks in ``report.html``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Reserved; must be empty (keeps the manifest's config shape stable)."""

    def __post_init__(self) -> None:
        parse_version(self.version)
        if self.parent_version is not None:
            if parse_version(self.parent_version) >= parse_version(self.version):
                raise PublishConfigError(f"parent_version {self.parent_version} must be below version "
                                         f"{self.version}")
        if self.shard_max_bytes < 1 << 16:
            raise PublishConfigError(f"shard_max_bytes must be >= 65536, got {self.shard_max_bytes}")
        if not 0.05 <= self.bucket_fill <= 1.0:
            raise PublishConfigError(f"bucket_fill must be in [0.05, 1], got {self.bucket_fill}")
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise PublishConfigError(f"max_failure_rate must be in [0, 1], got {self.max_failure_rate}")
        if self.validation_batch < 1 or self.preview_samples < 0:
            raise PublishConfigError("validation_batch must be >= 1 and preview_samples >= 0")
        if not 1 <= self.min_images <= self.max_images:
            raise PublishConfigError(f"need 1 <= min_images <= max_images, got {self.min_images}, "
                                     f"{self.max_images}")
        if self.licenses is not None and not self.licenses:
            raise PublishConfigError("licenses, when given, must name at least one license")
        if self.extra:
            raise PublishConfigError(f"unknown settings: {sorted(self.extra)}")
        for name in ("datasets", "licenses", "allowed_licenses"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(sorted(set(value))))

    def to_manifest(self) -> dict[str, Any]:
        """The settings that decide a dataset's output, as plain JSON data.

        ``version`` and ``parent_version`` are top-level manifest fields; ``datasets`` only
        selects which trees one run writes, so publishing a dataset alone or with others gives
        the same manifest.
        """
        data = dataclasses.asdict(self)
        for name in ("version", "parent_version", "datasets", "extra"):
            data.pop(name)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
