"""Registry of tasks: ``jaxbench.make("fair_universe-v0", preset="quick", **overrides)``.

Ids are ``name-vN``; entry points are imported lazily, so listing tasks, ``jaxbench info`` and
reading a spec never import JAX models. A spec carries the task's typed default config, its
presets (config values), criteria, datacard and study names.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from jaxbench import config as configs
from jaxbench.errors import ConfigError, UnknownTaskError
from jaxbench.task import Criterion, Task

_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*-v\d+$")
DEFAULT_PRESET = "default"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How to build a task: its factory ``module:function`` (``factory(id, config) -> Task``),
    its typed configs and what ``jaxbench info`` prints."""

    id: str
    entry_point: str
    summary: str
    config: Any
    presets: Mapping[str, Any]
    criteria: tuple[Criterion, ...] = ()
    datacard: Callable[[Any], Mapping[str, Any]] | None = None
    studies: tuple[str, ...] = ()

    def resolve_config(self, preset: str = DEFAULT_PRESET, **overrides: Any) -> Any:
        """The preset's config (``default``: the defaults) with ``overrides`` applied and validated."""
        if preset == DEFAULT_PRESET:
            base = self.config
        elif preset in self.presets:
            base = self.presets[preset]
        else:
            names = [DEFAULT_PRESET, *self.presets]
            near = difflib.get_close_matches(preset, names, n=1)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"Task {self.id} has no preset '{preset}'.{hint} Presets: {', '.join(names)}.")
        return configs.override(base, overrides, f"Task {self.id}")


_REGISTRY: dict[str, TaskSpec] = {}


def register(
    id: str,
    entry_point: str,
    summary: str,
    config: Any,
    presets: Mapping[str, Any] | None = None,
    *,
    criteria: tuple[Criterion, ...] = (),
    datacard: Callable[[Any], Mapping[str, Any]] | None = None,
    studies: tuple[str, ...] = (),
) -> TaskSpec:
    """Registers a task id; ids follow ``name-vN`` and may be registered only once."""
    if not _ID_PATTERN.match(id):
        raise ValueError(f"Task id '{id}' must look like 'name-v0' (lower case, digits, '_').")
    if id in _REGISTRY:
        raise ValueError(f"Task id '{id}' is already registered.")
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"Task {id}: config must be a frozen dataclass instance, got {type(config).__name__}.")
    spec_ = TaskSpec(id, entry_point, summary, config, dict(presets or {}), tuple(criteria), datacard, tuple(studies))
    _REGISTRY[id] = spec_
    return spec_


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
            f"Unknown task id '{id}'.{hint} Registered tasks: {', '.join(known)}. List them with `jaxbench list`."
        )
    return _REGISTRY[id]


def build(id: str, config: Any) -> Task:
    """The task ``id`` with an already resolved ``config`` (its factory imported now)."""
    module_name, factory_name = spec(id).entry_point.split(":")
    return getattr(importlib.import_module(module_name), factory_name)(id, config)


def make(id: str, preset: str = DEFAULT_PRESET, **overrides: Any) -> Task:
    """Builds the task ``id`` from a preset (``default``, ``quick``, ``tiny``, ...) and overrides."""
    return build(id, spec(id).resolve_config(preset, **overrides))


def _load_builtin() -> None:
    # Registration lives next to each task but must not import JAX models: see tasks/registrations.
    importlib.import_module("jaxbench.tasks.registrations")
