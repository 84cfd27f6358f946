"""What plugins provide through the ``register_*`` hooks, collected by name.

``qflow.plugins.registry.plugin_registry()`` caches these lookups for the process; the
functions here take any manager (a test's, a run's). Each lookup calls the hook of every
plugin separately, so one plugin whose hook raises is reported by name (once) and skipped, and
the others still count. When two plugins provide the same name, the first registered keeps it
(the built-ins are registered first) and the other is reported.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

logger = logging.getLogger(__name__)

KINDS = {
    "trackers": "register_trackers",
    "executors": "register_executors",
    "serializers": "register_serializers",
    "model_registries": "register_model_registries",
    "commands": "register_commands",
}
"""Extension kind → the hook that provides it."""

_reported: set[str] = set()


class LazyFactory:
    """A factory named by ``module:attribute``, imported on first use (as entry points are),
    so registering the ray executor or the MLflow tracker imports neither ray nor mlflow."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __repr__(self) -> str:
        return self.target

    def load(self) -> Callable[..., Any]:
        """The factory itself (its module imported now)."""
        module, _, attribute = self.target.partition(":")
        factory: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
        return factory

    def __call__(self, **options: Any) -> Any:
        return self.load()(**options)


@dataclass(frozen=True)
class Provided:
    """One named extension and the plugin that provided it."""

    name: str
    value: Any
    plugin: str


def _manager(manager: pluggy.PluginManager | None) -> pluggy.PluginManager:
    if manager is not None:
        return manager
    from qflow.plugins.manager import default_plugin_manager

    return default_plugin_manager()


def warn_once(key: str, message: str, *args: object) -> None:
    if key not in _reported:
        _reported.add(key)
        logger.warning(message, *args)


def collect(kind: str, manager: pluggy.PluginManager | None = None) -> list[Provided]:
    """Every extension of ``kind`` (a key of ``KINDS``), in plugin registration order."""
    pm = _manager(manager)
    hook = KINDS[kind]
    found: list[Provided] = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        plugin = impl.plugin_name
        try:
            result = impl.function()
        except Exception as exc:
            warn_once(
                f"{plugin}:{hook}",
                "QFlow plugin %r failed in %s and is skipped for it: %s: %s",
                plugin,
                hook,
                type(exc).__name__,
                exc,
            )
            continue
        if result is None:
            continue
        if isinstance(result, Mapping):
            found.extend(Provided(str(k), v, plugin) for k, v in result.items())
        else:
            found.extend(Provided(str(getattr(v, "name", v)), v, plugin) for v in result)
    return found


def by_name(kind: str, manager: pluggy.PluginManager | None = None) -> dict[str, Provided]:
    """Extensions of ``kind`` by name; the first plugin to provide a name keeps it."""
    chosen: dict[str, Provided] = {}
    for item in collect(kind, manager):
        if item.name in chosen:
            if chosen[item.name].plugin != item.plugin:
                warn_once(
                    f"{kind}:{item.name}:{item.plugin}",
                    "QFlow plugin %r also provides the %s %r; the one from %r is used.",
                    item.plugin,
                    kind.rstrip("s").replace("_", " "),
                    item.name,
                    chosen[item.name].plugin,
                )
            continue
        chosen[item.name] = item
    return chosen
