"""Typed settings of the ingest pipeline: one dataclass per concern, validated on creation.

``IngestConfig.from_yaml(path)`` reads ``pipelines/ingest/configs/ingest.yaml``-shaped files; unknown keys
are errors (a typo must not silently fall back to a default), and every value is type-checked
(``check_setting``: ``sampling.max_frames: expected an integer, got 'lots'``).
``SETTING_ROLES`` says of every setting whether it is part of a clip's identity (sampling,
windows), of how its frames are rendered (JPEG quality, max side, mp4 frame rate) or neither. No environment variable overrides a
setting here; secrets (a cookies file for yt-dlp) are paths, never contents.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pipelines.common.settings import ConfigError, check_setting, read_yaml_mapping, sections_from_dict
from pipelines.common.settings import Section as _Section

__all__ = [
    "SamplingConfig",
    "FramesConfig",
    "FilterConfig",
    "DedupeConfig",
    "FetchConfig",
    "ClipConfig",
    "OutputConfig",
    "IngestConfig",
    "ConfigError",
    "check_setting",
    "SETTING_ROLES",
]


@dataclass(frozen=True)
class SamplingConfig(_Section):
    """Molmo 2 frame sampling (``schemas.sampling.sample_times``)."""

    SECTION: ClassVar[str] = "sampling"

    max_frames: int = 128
    """Most frames per clip (SFT 128; pretraining 16; long context 384)."""
    max_fps: float = 2.0
    """Most frames per second of clip time."""

    def _check(self) -> None:
        if self.max_frames < 2:
            raise ConfigError(f"sampling.max_frames must be >= 2, got {self.max_frames}")
        if self.max_fps <= 0:
            raise ConfigError(f"sampling.max_fps must be > 0, got {self.max_fps}")


@dataclass(frozen=True)
class FramesConfig(_Section):
    """How sampled frames are stored."""

    SECTION: ClassVar[str] = "frames"

    jpeg_quality: int = 90
    """JPEG quality of stored frames, 1-100."""
    max_side: int = 768
    """Frames whose longer side exceeds this are resized at decode (aspect kept)."""
    decode_timeout_s: float = 120.0
    """Time limit for probing and decoding one video in the child process."""
    write_cfr_mp4: bool = False
    """Also write each clip as a constant-frame-rate H.264 mp4 from time 0 (for track annotation)."""
    cfr_fps: float = 10.0
    """Frame rate of that mp4."""

    def _check(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"frames.jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.max_side < 16:
            raise ConfigError(f"frames.max_side must be >= 16, got {self.max_side}")
        if self.decode_timeout_s <= 0 or self.cfr_fps <= 0:
            raise ConfigError("frames.decode_timeout_s and frames.cfr_fps must be > 0")


@dataclass(frozen=True)
class FilterConfig(_Section):
    """Inputs outside these bounds end as failures with the reason ``filtered``."""

    SECTION: ClassVar[str] = "filters"

    min_duration: float = 0.5
    """Shortest video kept, seconds."""
    max_duration: float = 3600.0
    """Longest video kept, seconds."""
    min_side: int = 64
    """Smallest shorter side kept, pixels (after rotation)."""

    def _check(self) -> None:
        if not 0 <= self.min_duration <= self.max_duration:
            raise ConfigError(
                f"filters: need 0 <= min_duration <= max_duration, got {self.min_duration}, {self.max_duration}"
            )
        if self.min_side < 1:
            raise ConfigError(f"filters.min_side must be >= 1, got {self.min_side}")


@dataclass(frozen=True)
class DedupeConfig(_Section):
    """Exact (sha256 of bytes) and near-duplicate (perceptual hash) removal."""

    SECTION: ClassVar[str] = "dedupe"

    exact: bool = True
    """Drop byte-identical inputs."""
    near: bool = True
    """Drop inputs whose frames look the same."""
    near_duplicate_hamming: int = 6
    """Mean perceptual-hash Hamming distance (0-64) at or under which two videos are duplicates."""
    hash_frames: int = 8
    """Frames per video, evenly spaced, that the perceptual hash is computed on."""

    def _check(self) -> None:
        if not 0 <= self.near_duplicate_hamming <= 32:
            raise ConfigError(
                f"dedupe.near_duplicate_hamming must be in 0..32, got {self.near_duplicate_hamming}"
            )
        if self.hash_frames < 1:
            raise ConfigError(f"dedupe.hash_frames must be >= 1, got {self.hash_frames}")


@dataclass(frozen=True)
class FetchConfig(_Section):
    """Downloads: yt-dlp for web pages, fsspec for file/gs/s3/http paths."""

    SECTION: ClassVar[str] = "fetch"

    max_height: int = 720
    """Highest video height yt-dlp may choose (mp4/h264 preferred)."""
    subtitle_langs: tuple[str, ...] = ("en",)
    """Subtitle and automatic-caption languages to fetch."""
    retries: int = 3
    """Attempts per download after the first, with exponential backoff."""
    backoff_s: float = 1.0
    """First backoff; doubles each retry."""
    rate_limit_bytes: int | None = None
    """Per-worker download rate limit (bytes/s); None for no limit."""
    sleep_between_s: float = 0.0
    """Pause between two downloads of one worker (be polite to hosts)."""
    timeout_s: float = 300.0
    """Time limit for one download."""
    socket_timeout_s: float = 30.0
    """A stalled connection is abandoned after this long."""
    cookies_file: str | None = None
    """Netscape cookies file for yt-dlp; its contents are never logged."""
    max_bytes: int = 20 * 1024**3
    """Largest file accepted."""

    def _check(self) -> None:
        if self.max_height < 64 or self.retries < 0 or self.timeout_s <= 0 or self.socket_timeout_s <= 0:
            raise ConfigError("fetch: max_height >= 64, retries >= 0 and timeouts > 0 are required")


@dataclass(frozen=True)
class ClipConfig(_Section):
    """How a video becomes clips."""

    SECTION: ClassVar[str] = "clips"

    window_s: float | None = None
    """Cut fixed windows of at most this many seconds (e.g. 63 for pointing clips); None = one clip."""
    min_clip_s: float = 0.5
    """A trailing window shorter than this is dropped from the windowing (not an error)."""

    def _check(self) -> None:
        if self.window_s is not None and self.window_s <= 0:
            raise ConfigError(f"clips.window_s must be > 0, got {self.window_s}")


@dataclass(frozen=True)
class OutputConfig(_Section):
    """Shard layout."""

    SECTION: ClassVar[str] = "output"

    clips_per_shard: int = 256
    """Target clips per shard; the shard count is ceil(clips / clips_per_shard)."""
    val_fraction: float = 0.05
    """Share of sources (by hash of the kept source) put in the validation split."""

    def _check(self) -> None:
        if self.clips_per_shard < 1:
            raise ConfigError(f"output.clips_per_shard must be >= 1, got {self.clips_per_shard}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"output.val_fraction must be in [0, 1), got {self.val_fraction}")


IDENTITY, RENDER, NEITHER = "identity", "render", "neither"

SETTING_ROLES: dict[str, tuple[str, str]] = {
    # identity: changes what a clip is (its id, so Label Studio tasks keyed by it); render: changes
    # how its frames look (a separate fingerprint decides reuse; ids stay); neither: changes
    # neither (which inputs are kept, how they are fetched, where records go, time limits)
    "sampling.max_frames": (IDENTITY, "through the sample times: only a change that changes them"),
    "sampling.max_fps": (IDENTITY, "through the sample times: only a change that changes them"),
    "clips.window_s": (IDENTITY, "through the clip windows"),
    "clips.min_clip_s": (IDENTITY, "through the clip windows (whether a short last window is cut)"),
    "frames.jpeg_quality": (RENDER, "frames re-rendered, ids kept"),
    "frames.max_side": (RENDER, "frames and mp4s re-rendered, ids kept (labels are in normalized coordinates); "
                                "also caps image-set images"),
    "frames.cfr_fps": (RENDER, "mp4s re-made, ids and frames kept"),
    "frames.write_cfr_mp4": (NEITHER, "adds mp4s to the clips of an earlier run, decoding no frame again"),
    "frames.decode_timeout_s": (NEITHER, "a time limit"),
    "filters.min_duration": (NEITHER, "which inputs are kept"),
    "filters.max_duration": (NEITHER, "which inputs are kept"),
    "filters.min_side": (NEITHER, "which inputs are kept"),
    "dedupe.exact": (NEITHER, "which inputs are kept"),
    "dedupe.near": (NEITHER, "which inputs are kept"),
    "dedupe.near_duplicate_hamming": (NEITHER, "which inputs are kept"),
    "dedupe.hash_frames": (NEITHER, "which inputs are kept; clips whose stored hashes miss the new positions "
                                    "are decoded again, under the same ids"),
    "fetch.max_height": (NEITHER, "how a web source is fetched; other bytes are another source"),
    "fetch.subtitle_langs": (NEITHER, "which subtitles the clip records carry"),
    "fetch.retries": (NEITHER, "how sources are fetched"),
    "fetch.backoff_s": (NEITHER, "how sources are fetched"),
    "fetch.rate_limit_bytes": (NEITHER, "how sources are fetched"),
    "fetch.sleep_between_s": (NEITHER, "how sources are fetched"),
    "fetch.timeout_s": (NEITHER, "a time limit"),
    "fetch.socket_timeout_s": (NEITHER, "a time limit"),
    "fetch.cookies_file": (NEITHER, "how sources are fetched"),
    "fetch.max_bytes": (NEITHER, "which inputs are kept"),
    "output.clips_per_shard": (NEITHER, "which shard a clip goes to"),
    "output.val_fraction": (NEITHER, "which split a clip is in"),
}
"""Every ingest setting's role towards a clip's identity: ``(role, how)``. ``role`` is
``identity`` (enters the clip id, ``pipelines.ingest.media.make_clip_id``), ``render`` (enters a
render fingerprint, ``pipelines.ingest.media.RENDER_SETTINGS`` / ``MP4_SETTINGS``, deciding
reuse of stored frames and mp4s but not ids) or ``neither``. A new setting must be added here
(a test checks that every field is)."""


_SECTIONS = {
    "sampling": SamplingConfig,
    "frames": FramesConfig,
    "filters": FilterConfig,
    "dedupe": DedupeConfig,
    "fetch": FetchConfig,
    "clips": ClipConfig,
    "output": OutputConfig,
}


@dataclass(frozen=True)
class IngestConfig:
    """All ingest settings; see each section's class for its fields."""

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    dedupe: DedupeConfig = field(default_factory=DedupeConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    clips: ClipConfig = field(default_factory=ClipConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        for name, klass in _SECTIONS.items():
            if not isinstance(getattr(self, name), klass):
                raise ConfigError(f"{name}: expected a {klass.__name__}, got {getattr(self, name)!r}")
        if self.clips.window_s is not None and self.clips.window_s < self.clips.min_clip_s:
            raise ConfigError("clips.window_s must be >= clips.min_clip_s")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "IngestConfig":
        """Build from nested dicts (YAML); unknown sections or keys raise ConfigError."""
        return cls(**sections_from_dict(data, _SECTIONS))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "IngestConfig":
        """Read a YAML config file (see ``pipelines/ingest/configs/ingest.yaml``)."""
        return cls.from_dict(read_yaml_mapping(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, *names: str, extra: dict[str, Any] | None = None) -> str:
        """Short stable hash of the named sections or settings (all if none), for cache keys.

        Args:
            names: sections (``"frames"``) or settings (``"frames.max_side"``).
            extra: more JSON values to hash with them (e.g. a code version).

        Returns:
            16 hex digits.
        """
        d = self.to_dict()
        chosen = {}
        for name in names or tuple(d):
            section, _, key = name.partition(".")
            chosen[name] = d[section][key] if key else d[section]
        from schemas.records import canonical_json

        blob = canonical_json([chosen, extra or {}]).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]
