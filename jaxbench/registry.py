"""Registry of tasks: ``jaxbench.make("fair_universe-v0", **config)``.

Ids are ``name-vN``; entry points are imported lazily so that listing tasks never imports JAX
models. A variant is registered as a new id with different defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
from collections.abc import Mapping
from typing import Any

from jaxbench.errors import ConfigError, UnknownTaskError

_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*-v\d+$")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How to build a task: where its factory lives and its configurations."""

    id: str
    entry_point: str  # "module.path:factory", factory(config: dict) -> Task
    summary: str
    default_config: Mapping[str, Any]
    quick_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    studies: tuple[str, ...] = ()

    def resolve_config(self, quick: bool = False, **overrides: Any) -> dict[str, Any]:
        """Defaults, then the quick preset, then ``overrides``; unknown keys are an error."""
        config = dict(self.default_config)
        if quick:
            config.update(self.quick_config)
        for key, value in overrides.items():
            if key not in config:
                near = difflib.get_close_matches(key, list(config), n=1)
                hint = f" Did you mean '{near[0]}'?" if near else ""
                raise ConfigError(
                    f"Task {self.id} has no config key '{key}'.{hint} "
                    f"Known keys: {', '.join(sorted(config))}."
                )
            config[key] = _coerce_like(self.id, key, value, config[key])
        config["quick"] = bool(quick)
        return config


def _coerce_like(task_id: str, key: str, value: Any, default: Any) -> Any:
    """Converts a CLI string to the type of the default value, with a clear error."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, (tuple, list)):
            items = [v for v in value.split(",") if v.strip()]
            kind = type(default[0]) if len(default) else float
            return tuple(kind(v) for v in items)
    except ValueError:
        raise ConfigError(
            f"Task {task_id}: config '{key}={value}' is not a valid {type(default).__name__} "
            f"(default {default!r})."
        ) from None
    return value


_REGISTRY: dict[str, TaskSpec] = {}


def register(
    id: str,
    entry_point: str,
    summary: str,
    default_config: Mapping[str, Any],
    quick_config: Mapping[str, Any] | None = None,
    studies: tuple[str, ...] = (),
) -> TaskSpec:
    """Registers a task id; ids follow ``name-vN`` and may be registered only once."""
    if not _ID_PATTERN.match(id):
        raise ValueError(f"Task id '{id}' must look like 'name-v0' (lower case, digits, '_').")
    if id in _REGISTRY:
        raise ValueError(f"Task id '{id}' is already registered.")
    task_spec = TaskSpec(id, entry_point, summary, dict(default_config), dict(quick_config or {}), studies)
    _REGISTRY[id] = task_spec
    return task_spec


def registered() -> tuple[str, ...]:
    """The ids of all registered tasks, sorted."""
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def spec(id: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``id``; an unknown id names the nearest known one."""
    _load_builtin()
    if id not in _REGISTRY:
        known = sorted(_REGISTRY)
        near = difflib.get_close_matches(id, known, n=1, cutoff=0.4)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise UnknownTaskError(
            f"Unknown task id '{id}'.{hint} Registered tasks: {', '.join(known)}. "
            "List them with `jaxbench list`."
        )
    return _REGISTRY[id]


def make(id: str, quick: bool = False, **config: Any):
    """Builds the task ``id`` with its default config, the quick preset and ``config`` overrides."""
    task_spec = spec(id)
    resolved = task_spec.resolve_config(quick=quick, **config)
    module_name, factory_name = task_spec.entry_point.split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(task_spec.id, resolved)


def _load_builtin() -> None:
    # Registration lives next to each task but must not import JAX models: see tasks/registrations.
    importlib.import_module("jaxbench.tasks.registrations")
