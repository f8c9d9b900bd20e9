"""Typed settings shared by the pipelines: type-checked sections, nested dicts and YAML files.

One job: the rules every pipeline's settings follow (ingest's ``IngestConfig``, synth's
``SynthConfig``): each section is a frozen dataclass whose fields are type-checked on creation
(``check_setting``: ``sampling.max_frames: expected an integer, got 'lots'``) before the
section's own rules run; a config is built from nested dicts in which an unknown section or key
is an error (a typo must never fall back to a default); YAML files must hold a mapping; and
``--print-config`` prints a shipped default file and exits. Standard library only at import time
(PyYAML is imported when a file is read), so a command's ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Union

__all__ = ["ConfigError", "check_setting", "Section", "sections_from_dict", "read_yaml_mapping", "print_text_action"]


class ConfigError(ValueError):
    """A setting is missing, unknown or incompatible with another one."""


def _show(value: Any) -> str:
    """A setting's value as a YAML user wrote it: ``'lots'``, ``3``, ``true``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _describe(annotation: Any) -> str:
    """What a setting of this type must be, in words (``an integer``, ``a list of strings``...)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        kinds = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(kinds + (["null"] if type(None) in args else []))
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if origin in (tuple, list):
        inner = _describe(args[0]) if args else "a value"
        return "a list of " + {"a string": "strings", "an integer": "integers", "a number": "numbers"}.get(
            inner, inner)
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def check_setting(path: str, value: Any, annotation: Any) -> Any:
    """Check one setting against its declared type; return it normalized.

    Integers are accepted where a number (``float``) is declared and become floats, so ``2`` and
    ``2.0`` give one fingerprint; lists become tuples; ``true``/``false`` are never numbers.

    Args:
        path: the setting's name for messages, e.g. ``sampling.max_frames``.
        value: the value as read (YAML, a dict, a keyword argument).
        annotation: its type: ``int``, ``float``, ``bool``, ``str``, ``X | None``,
            ``Literal[...]`` or ``tuple[X, ...]``.

    Returns:
        The value, normalized as above.

    Raises:
        ConfigError: ``"{path}: expected {what}, got {value}"``.
    """
    def wrong() -> ConfigError:
        return ConfigError(f"{path}: expected {_describe(annotation)}, got {_show(value)}")

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return check_setting(path, value, option)
            except ConfigError:
                continue
        raise wrong()
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise wrong()
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise wrong()
        inner = args[0] if args else Any
        return tuple(check_setting(f"{path}[{i}]", item, inner) for i, item in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise wrong()
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong()
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
            return float(value)
        raise wrong()
    if annotation is str:
        if isinstance(value, str):
            return value
        raise wrong()
    raise TypeError(f"{path}: check_setting does not know the type {annotation!r}")  # a bug here


class Section:
    """Base of the config sections: every field is type-checked on creation, then ``_check``
    (the section's own range and consistency rules) runs. Subclasses are frozen dataclasses
    that set ``SECTION`` (their name in messages and files)."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = check_setting(f"{self.SECTION}.{f.name}", getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Section rules beyond types (override)."""


def sections_from_dict(data: Any, sections: dict[str, type]) -> dict[str, Any]:
    """Build each section from its mapping in ``data`` (a missing section takes its defaults).

    Args:
        data: nested dicts as read from YAML (None: every default).
        sections: section name -> its ``Section`` class.

    Returns:
        Section name -> the built section, ready for the config's constructor.

    Raises:
        ConfigError: ``data`` is not a mapping, or names an unknown section or key, or a value is wrong.
    """
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {_show(data)}")
    data = dict(data or {})
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}; known: {sorted(sections)}")
    parts = {}
    for name, klass in sections.items():
        values = data.get(name)
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a mapping of settings, got {_show(values)}")
        known = {f.name for f in dataclasses.fields(klass)}
        bad = sorted(set(values) - known)
        if bad:
            raise ConfigError(f"unknown key(s) {bad} in section {name!r}; known: {sorted(known)}")
        try:
            parts[name] = klass(**values)
        except TypeError as exc:
            raise ConfigError(f"section {name!r}: {exc}") from None
    return parts


def read_yaml_mapping(path: str | Path) -> Any:
    """The parsed YAML of a config file (a mapping, or None for an empty file).

    Raises:
        ConfigError: the file cannot be read or parsed, or its top level is not a mapping.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return data


def print_text_action(text: Callable[[], str]) -> type[argparse.Action]:
    """An argparse action class that prints ``text()`` and exits 0 (before required options are checked),
    for ``--print-config``."""

    class _PrintText(argparse.Action):
        def __init__(self, option_strings, dest, **kwargs):
            super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

        def __call__(self, parser, namespace, values, option_string=None):
            sys.stdout.write(text())
            parser.exit(0)

    return _PrintText
