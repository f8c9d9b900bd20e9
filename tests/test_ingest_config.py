"""Ingest settings: every field is type-checked, with a message naming the key, the value and the type."""
from __future__ import annotations

import dataclasses
import typing
from typing import Literal

import pytest

from pipelines.ingest.config import ConfigError, IngestConfig, check_setting


@pytest.mark.parametrize("yaml_text, message", [
    ("sampling:\n  max_frames: lots\n", "sampling.max_frames: expected an integer, got 'lots'"),
    ("sampling:\n  max_frames: 16.5\n", "sampling.max_frames: expected an integer, got 16.5"),
    ("sampling:\n  max_fps: two\n", "sampling.max_fps: expected a number, got 'two'"),
    ("sampling:\n  max_fps: true\n", "sampling.max_fps: expected a number, got true"),
    ("sampling:\n  max_fps: .nan\n", "sampling.max_fps: expected a number, got nan"),
    ("frames:\n  write_cfr_mp4: 'yes please'\n", "frames.write_cfr_mp4: expected true or false, got 'yes please'"),
    ("dedupe:\n  near: 1\n", "dedupe.near: expected true or false, got 1"),
    ("fetch:\n  subtitle_langs: en\n", "fetch.subtitle_langs: expected a list of strings, got 'en'"),
    ("fetch:\n  subtitle_langs: [en, 3]\n", "fetch.subtitle_langs[1]: expected a string, got 3"),
    ("fetch:\n  rate_limit_bytes: 1.5\n", "fetch.rate_limit_bytes: expected an integer or null, got 1.5"),
    ("fetch:\n  cookies_file: [a]\n", "fetch.cookies_file: expected a string or null, got ['a']"),
    ("clips:\n  window_s: '63'\n", "clips.window_s: expected a number or null, got '63'"),
    ("output: 5\n", "output: expected a mapping of settings, got 5"),
])
def test_a_setting_of_the_wrong_type_names_key_value_and_type(tmp_path, yaml_text, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        IngestConfig.from_yaml(path)
    assert str(caught.value) == message


def test_numbers_are_normalized_so_equal_settings_fingerprint_alike():
    a = IngestConfig.from_dict({"sampling": {"max_fps": 2}, "clips": {"window_s": 63}, "fetch": {"subtitle_langs": ["en"]}})
    b = IngestConfig.from_dict({"sampling": {"max_fps": 2.0}, "clips": {"window_s": 63.0}})
    assert a == b and a.fingerprint() == b.fingerprint()
    assert isinstance(a.sampling.max_fps, float) and a.fetch.subtitle_langs == ("en",)
    assert IngestConfig.from_dict({"sampling": None}) == IngestConfig()


def test_every_field_of_every_section_is_checked():
    """Each field, given a value of no acceptable type, is refused with its dotted name."""
    for section, klass in ((f.name, f.default_factory) for f in dataclasses.fields(IngestConfig)):
        for f in dataclasses.fields(klass):
            with pytest.raises(ConfigError, match=rf"^{section}\.{f.name}: expected .*, got \{{'x': 1\}}$"):
                IngestConfig.from_dict({section: {f.name: {"x": 1}}})


def test_sections_built_directly_are_checked_too():
    from pipelines.ingest.config import SamplingConfig

    with pytest.raises(ConfigError, match="sampling.max_frames: expected an integer, got '8'"):
        SamplingConfig(max_frames="8")
    with pytest.raises(ConfigError, match="sampling: expected a SamplingConfig"):
        IngestConfig(sampling={"max_frames": 8})


def test_check_setting_enum_like_strings_and_lists():
    mode = Literal["fast", "exact"]
    assert check_setting("dedupe.mode", "fast", mode) == "fast"
    with pytest.raises(ConfigError, match=r"^dedupe.mode: expected one of 'fast', 'exact', got 'quick'$"):
        check_setting("dedupe.mode", "quick", mode)
    with pytest.raises(ConfigError, match="expected one of 'fast', 'exact' or null, got 3"):
        check_setting("dedupe.mode", 3, typing.Optional[mode])
    assert check_setting("x.sizes", [1, 2], tuple[int, ...]) == (1, 2)
    with pytest.raises(ConfigError, match=r"^x.sizes\[1\]: expected an integer, got true$"):
        check_setting("x.sizes", [1, True], tuple[int, ...])


# ------------------------------------------------------------------ identity, render, neither
VARIANTS = {  # a changed value for every setting
    "sampling.max_frames": 64, "sampling.max_fps": 1.0, "clips.window_s": 30.0, "clips.min_clip_s": 12.0,
    "frames.jpeg_quality": 50, "frames.max_side": 512, "frames.cfr_fps": 5.0,
    "frames.write_cfr_mp4": True, "frames.decode_timeout_s": 10.0,
    "filters.min_duration": 1.0, "filters.max_duration": 60.0, "filters.min_side": 32,
    "dedupe.exact": False, "dedupe.near": False, "dedupe.near_duplicate_hamming": 3, "dedupe.hash_frames": 4,
    "fetch.max_height": 360, "fetch.subtitle_langs": ("de",), "fetch.retries": 0, "fetch.backoff_s": 2.0,
    "fetch.rate_limit_bytes": 1000, "fetch.sleep_between_s": 1.0, "fetch.timeout_s": 10.0,
    "fetch.socket_timeout_s": 5.0, "fetch.cookies_file": "cookies.txt", "fetch.max_bytes": 1000,
    "output.clips_per_shard": 2, "output.val_fraction": 0.5,
}
BASE = {"clips": {"window_s": 63.0}}


def _with(name: str, value) -> IngestConfig:
    section, key = name.split(".")
    data = {k: dict(v) for k, v in BASE.items()}
    data.setdefault(section, {})[key] = value
    return IngestConfig.from_dict(data)


def _ids(config: IngestConfig) -> list[str]:
    """The clip ids of three videos (8 s, 100 s, 200 s) of some content under these settings."""
    from pipelines.ingest.media import clip_bounds, make_clip_id

    return [make_clip_id("ab" * 32, s, e, config) for duration in (8.0, 100.0, 200.0)
            for s, e in clip_bounds(duration, None, None, config, "video")]


def test_every_setting_has_a_role_and_renders_are_those_of_the_fingerprints():
    from pipelines.ingest.config import SETTING_ROLES
    from pipelines.ingest.media import MP4_SETTINGS, RENDER_SETTINGS

    config = IngestConfig()
    fields = {f"{s}.{f.name}" for s in config.to_dict() for f in dataclasses.fields(getattr(config, s))}
    assert set(SETTING_ROLES) == fields == set(VARIANTS), "a new setting needs a role (and a variant here)"
    assert {k for k, (role, _) in SETTING_ROLES.items() if role == "render"} == set(RENDER_SETTINGS) | set(MP4_SETTINGS)
    assert {role for role, _ in SETTING_ROLES.values()} == {"identity", "render", "neither"}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_only_identity_settings_change_clip_ids_and_only_render_settings_the_renderings(name):
    from pipelines.ingest.config import SETTING_ROLES
    from pipelines.ingest.media import mp4_fingerprint, render_fingerprint

    base, changed = IngestConfig.from_dict(BASE), _with(name, VARIANTS[name])
    role = SETTING_ROLES[name][0]
    assert (_ids(changed) != _ids(base)) == (role == "identity")
    renders = lambda c: (render_fingerprint(c), mp4_fingerprint(c))  # noqa: E731
    assert (renders(changed) != renders(base)) == (role == "render")


def test_sampling_settings_that_keep_the_times_keep_the_id():
    from pipelines.ingest.media import make_clip_id

    a = IngestConfig.from_dict({"sampling": {"max_frames": 128}})
    b = IngestConfig.from_dict({"sampling": {"max_frames": 256}})
    assert make_clip_id("cd" * 32, 0.0, 10.0, a) == make_clip_id("cd" * 32, 0.0, 10.0, b)  # 21 times either way
    assert make_clip_id("cd" * 32, 0.0, 100.0, a) != make_clip_id("cd" * 32, 0.0, 100.0, b)  # 128 vs 201 times
    assert make_clip_id("cd" * 32, 0.0, 10.0, a) != make_clip_id("cd" * 32, 0.0, 10.5, a)
    assert make_clip_id("cd" * 32, 0.0, 10.0, a) != make_clip_id("ce" * 32, 0.0, 10.0, a)
