"""Typed configuration machinery: nested dataclasses from YAML, ``key=value`` overrides, diffs.

One job: turn plain data (YAML mappings, command-line ``key=value`` strings) into nested frozen
dataclasses with type checking, and back; list what differs between two configs; read the
attribute docstrings that document each field. The trainer's settings themselves are in
``training.config``.

Rules (strict on purpose: a typo must never fall back to a default silently):

* unknown keys raise :class:`ConfigError` naming the key and the closest known ones;
* values are checked against the field's annotation (``int``, ``float``, ``bool``, ``str``,
  ``Literal``, ``Optional``, ``list[...]``, ``tuple[...]``, ``dict[str, ...]``, nested
  dataclasses); an ``int`` is accepted for a ``float``, and a string that parses as a number
  (YAML 1.1 reads ``1e-5`` as a string) for a ``float``; nothing else is converted;
* an override ``a.b.c=VALUE`` parses ``VALUE`` as YAML (``[1, 2]``, ``null``, ``true``), then
  checks it like a file value; each dataclass's ``__post_init__`` validates the result.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["ConfigError", "from_data", "to_data", "apply_overrides", "diff", "field_docs", "flatten"]


class ConfigError(ValueError):
    """A setting is missing, unknown, of the wrong type, or incompatible with another one."""


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check (and minimally convert) ``value`` against annotation ``tp``; raise ConfigError."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        errors = []
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{path}: must be one of {list(get_args(tp))}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{path}: expected null, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return from_data(tp, value, f"{path}." if path else "")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        key_t, val_t = get_args(tp) or (Any, Any)
        return {_coerce(k, key_t, f"{path}.<key>"): _coerce(v, val_t, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
    raise ConfigError(f"{path}: unsupported field type {_type_name(tp)}")  # pragma: no cover


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(cls: type, data: dict[str, Any] | None, path: str = "") -> Any:
    """Build dataclass ``cls`` from nested plain data, checking every key and type.

    Args:
        cls: a dataclass whose fields are annotated with supported types.
        data: a mapping (from YAML); missing keys take their defaults.
        path: dotted prefix used in error messages.

    Returns:
        The dataclass instance (its ``__post_init__`` has validated it).

    Raises:
        ConfigError: an unknown key (with close matches), a wrong type, a missing required key,
            or a rule of ``__post_init__`` broken.
    """
    data = dict(data or {})
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else f"; known keys: {', '.join(names)}"
        raise ConfigError(f"unknown key {path + str(key)!r}{hint}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], path + f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {path + f.name!r}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path.rstrip('.') or cls.__name__}: {exc}") from None


def to_data(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) of a dataclass tree; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to nested plain data (values parsed as YAML).

    Args:
        data: nested mappings (a loaded YAML file); not modified.
        overrides: strings ``dotted.key=value``.

    Returns:
        A new nested mapping with the overrides applied (checked later by ``from_data``).

    Raises:
        ConfigError: an override without ``=``, with an empty key, or whose value is not YAML.
    """
    import copy

    import yaml

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def diff(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two configs (dataclasses or plain data).

    Returns:
        ``[(dotted key, old value, new value), ...]`` sorted by key; a key missing on one side
        shows ``"<absent>"`` there.
    """
    a = flatten(to_data(old))
    b = flatten(to_data(new))
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb:
            out.append((key, va, vb))
    return out


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal after each field).

    Args:
        cls: a dataclass defined in a source file.

    Returns:
        ``{field name: docstring}`` for every field that has one.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs
