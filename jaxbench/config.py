"""Typed configurations: frozen dataclasses of typed parts, presets as values, dotted overrides.

A task's config is a frozen dataclass whose fields are values or further frozen dataclasses
(``model``, ``training``, ``studies``, ...). ``override(config, {"model.channels": "16"})`` returns
a new config with the string coerced to the field's type; a leaf name that is unique in the tree
may be given alone (``channels=16``). Unknown names get the nearest one; ``__post_init__``
validation runs on every rebuilt part.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

from jaxbench.errors import ConfigError

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def leaves(config: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """``{dotted.path: (value, annotated type)}`` of every non-dataclass field of ``config``."""
    out: dict[str, tuple[Any, Any]] = {}
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        path = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            out.update(leaves(value, f"{path}."))
        else:
            out[path] = (value, hints.get(field.name, type(value)))
    return out


def to_dict(config: Any) -> dict[str, Any]:
    """The config as nested dicts of JSON-able values (tuples become lists)."""

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def flat_dict(config: Any) -> dict[str, Any]:
    """``{dotted.path: value}`` of every leaf (the form ``override`` takes)."""
    return {path: value for path, (value, _) in leaves(config).items()}


def _resolve(name: str, known: Mapping[str, Any], where: str) -> str:
    if name in known:
        return name
    matches = [path for path in known if path.split(".")[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"{where}: '{name}' is ambiguous; write one of {', '.join(matches)}.")
    near = difflib.get_close_matches(name, list(known) + [p.split(".")[-1] for p in known], n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    raise ConfigError(f"{where} has no config key '{name}'.{hint} See `jaxbench info` for the keys.")


def coerce(value: Any, kind: Any, name: str, where: str) -> Any:
    """``value`` (a CLI string or a Python value) as the annotated type ``kind``, or a ConfigError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        options = [a for a in args if a is not type(None)]
        return coerce(value, options[0], name, where) if len(options) == 1 else value
    try:
        if origin is tuple:
            item = args[0] if args else str
            parts = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
            return tuple(coerce(v, item, name, where) for v in parts)
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in _TRUE + _FALSE:
                    return value.lower() in _TRUE
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        kind_name = getattr(kind, "__name__", kind)
        raise ConfigError(f"{where}: config '{name}={value}' is not a valid {kind_name}.") from None
    return value


def override(config: Any, overrides: Mapping[str, Any], where: str = "config") -> Any:
    """A new config with ``overrides`` (dotted paths or unique leaf names) applied and validated."""
    known = leaves(config)
    grouped: dict[str, Any] = {}
    for name, value in overrides.items():
        path = _resolve(name, known, where)
        grouped[path] = coerce(value, known[path][1], path, where)
    return _apply(config, grouped, where)


def _apply(config: Any, values: Mapping[str, Any], where: str) -> Any:
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        own = values.get(field.name, dataclasses.MISSING)
        nested = {k[len(field.name) + 1 :]: v for k, v in values.items() if k.startswith(field.name + ".")}
        if own is not dataclasses.MISSING:
            changes[field.name] = own
        elif nested:
            changes[field.name] = _apply(getattr(config, field.name), nested, where)
    if not changes:
        return config
    try:
        return dataclasses.replace(config, **changes)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def from_dict(default: Any, values: Mapping[str, Any], where: str = "config") -> Any:
    """``default`` with the nested ``values`` of :func:`to_dict` applied (a manifest's config)."""
    return override(default, flatten(values), where)


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{dotted.path: value}`` (the inverse of :func:`to_dict`'s nesting)."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check(condition: bool, message: str) -> None:
    """For ``__post_init__``: raise a ConfigError with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)
