"""Typed settings of the ingest pipeline: one dataclass per concern, validated on creation.

``IngestConfig.from_yaml(path)`` reads ``pipelines/ingest/configs/ingest.yaml``-shaped files; unknown keys
are errors (a typo must not silently fall back to a default). No environment variable overrides a
setting here; secrets (a cookies file for yt-dlp) are paths, never contents.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
]


class ConfigError(ValueError):
    """A setting is missing, unknown or incompatible with another one."""


@dataclass(frozen=True)
class SamplingConfig:
    """Molmo 2 frame sampling (``schemas.sampling.sample_times``)."""

    max_frames: int = 128
    """Most frames per clip (SFT 128; pretraining 16; long context 384)."""
    max_fps: float = 2.0
    """Most frames per second of clip time."""

    def __post_init__(self) -> None:
        if self.max_frames < 2:
            raise ConfigError(f"sampling.max_frames must be >= 2, got {self.max_frames}")
        if self.max_fps <= 0:
            raise ConfigError(f"sampling.max_fps must be > 0, got {self.max_fps}")


@dataclass(frozen=True)
class FramesConfig:
    """How sampled frames are stored."""

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

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"frames.jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.max_side < 16:
            raise ConfigError(f"frames.max_side must be >= 16, got {self.max_side}")
        if self.decode_timeout_s <= 0 or self.cfr_fps <= 0:
            raise ConfigError("frames.decode_timeout_s and frames.cfr_fps must be > 0")


@dataclass(frozen=True)
class FilterConfig:
    """Inputs outside these bounds end as failures with the reason ``filtered``."""

    min_duration: float = 0.5
    """Shortest video kept, seconds."""
    max_duration: float = 3600.0
    """Longest video kept, seconds."""
    min_side: int = 64
    """Smallest shorter side kept, pixels (after rotation)."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_duration <= self.max_duration:
            raise ConfigError(
                f"filters: need 0 <= min_duration <= max_duration, got {self.min_duration}, {self.max_duration}"
            )
        if self.min_side < 1:
            raise ConfigError(f"filters.min_side must be >= 1, got {self.min_side}")


@dataclass(frozen=True)
class DedupeConfig:
    """Exact (sha256 of bytes) and near-duplicate (perceptual hash) removal."""

    exact: bool = True
    """Drop byte-identical inputs."""
    near: bool = True
    """Drop inputs whose frames look the same."""
    near_duplicate_hamming: int = 6
    """Mean perceptual-hash Hamming distance (0-64) at or under which two videos are duplicates."""
    hash_frames: int = 8
    """Frames per video, evenly spaced, that the perceptual hash is computed on."""

    def __post_init__(self) -> None:
        if not 0 <= self.near_duplicate_hamming <= 32:
            raise ConfigError(
                f"dedupe.near_duplicate_hamming must be in 0..32, got {self.near_duplicate_hamming}"
            )
        if self.hash_frames < 1:
            raise ConfigError(f"dedupe.hash_frames must be >= 1, got {self.hash_frames}")


@dataclass(frozen=True)
class FetchConfig:
    """Downloads: yt-dlp for web pages, fsspec for file/gs/s3/http paths."""

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

    def __post_init__(self) -> None:
        if self.max_height < 64 or self.retries < 0 or self.timeout_s <= 0 or self.socket_timeout_s <= 0:
            raise ConfigError("fetch: max_height >= 64, retries >= 0 and timeouts > 0 are required")
        object.__setattr__(self, "subtitle_langs", tuple(self.subtitle_langs))


@dataclass(frozen=True)
class ClipConfig:
    """How a video becomes clips."""

    window_s: float | None = None
    """Cut fixed windows of at most this many seconds (e.g. 63 for pointing clips); None = one clip."""
    min_clip_s: float = 0.5
    """A trailing window shorter than this is dropped from the windowing (not an error)."""

    def __post_init__(self) -> None:
        if self.window_s is not None and self.window_s <= 0:
            raise ConfigError(f"clips.window_s must be > 0, got {self.window_s}")


@dataclass(frozen=True)
class OutputConfig:
    """Shard layout."""

    clips_per_shard: int = 256
    """Target clips per shard; the shard count is ceil(clips / clips_per_shard)."""
    val_fraction: float = 0.05
    """Share of sources (by hash of the kept source) put in the validation split."""

    def __post_init__(self) -> None:
        if self.clips_per_shard < 1:
            raise ConfigError(f"output.clips_per_shard must be >= 1, got {self.clips_per_shard}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"output.val_fraction must be in [0, 1), got {self.val_fraction}")


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
        if self.clips.window_s is not None and self.clips.window_s < self.clips.min_clip_s:
            raise ConfigError("clips.window_s must be >= clips.min_clip_s")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "IngestConfig":
        """Build from nested dicts (YAML); unknown sections or keys raise ConfigError."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(_SECTIONS))
        if unknown:
            raise ConfigError(f"unknown config section(s) {unknown}; known: {sorted(_SECTIONS)}")
        parts = {}
        for name, klass in _SECTIONS.items():
            values = data.get(name) or {}
            if not isinstance(values, dict):
                raise ConfigError(f"config section {name!r} must be a mapping, got {type(values).__name__}")
            known = {f.name for f in dataclasses.fields(klass)}
            bad = sorted(set(values) - known)
            if bad:
                raise ConfigError(f"unknown key(s) {bad} in section {name!r}; known: {sorted(known)}")
            try:
                parts[name] = klass(**values)
            except TypeError as exc:
                raise ConfigError(f"section {name!r}: {exc}") from None
        return cls(**parts)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "IngestConfig":
        """Read a YAML config file (see ``pipelines/ingest/configs/ingest.yaml``)."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, *sections: str) -> str:
        """Short stable hash of the named sections (all if none), for ids and cache keys."""
        d = self.to_dict()
        chosen = {k: d[k] for k in (sections or tuple(d))}
        blob = json.dumps(chosen, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
