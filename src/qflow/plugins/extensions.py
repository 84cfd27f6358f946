"""What plugins provide through the ``register_*`` hooks, collected by name.

Each lookup calls the hook of every plugin separately, so one plugin whose hook raises is
reported by name (once) and skipped, and the others still count. When two plugins provide the
same name, the first registered keeps it (the built-ins are registered first) and the other is
reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import pluggy

    from qflow.store.serializers import Serializer

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


def _warn_once(key: str, message: str, *args: object) -> None:
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
            _warn_once(
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
                _warn_once(
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


def install_serializers(manager: pluggy.PluginManager | None = None) -> list[Serializer]:
    """Add the plugins' serializers to the store's registry (before pickle); return them."""
    from qflow.store.serializers import register

    added = []
    for item in by_name("serializers", manager).values():
        try:
            register(item.value)
        except ValueError as exc:
            _warn_once(f"serializer:{item.name}", "QFlow plugin %r: %s", item.plugin, exc)
            continue
        added.append(item.value)
    return added


def create_trackers(spec: Any, manager: pluggy.PluginManager | None = None) -> list[object]:
    """Tracker objects for a config's ``tracker`` value.

    ``spec`` is a name (``mlflow``), a mapping (``{name: mlflow, tracking_uri: ...}``) or a
    list of either; ``None`` means no tracker besides QFlow's own store.
    """
    if spec is None:
        return []
    items: Sequence[Any] = spec if isinstance(spec, list | tuple) else [spec]
    known = by_name("trackers", manager)
    made: list[object] = []
    for item in items:
        name, options = _name_and_options(item, "tracker")
        made.append(_make("tracker", name, options, known))
    return made


def create_extension(
    kind: str, name: str, options: Mapping[str, Any], manager: pluggy.PluginManager | None = None
) -> object:
    """The extension ``name`` of ``kind`` built with ``options``; unknown names list choices."""
    return _make(kind.rstrip("s").replace("_", " "), name, options, by_name(kind, manager))


def _name_and_options(item: Any, what: str) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        return str(item["name"]), {str(k): v for k, v in item.items() if k != "name"}
    raise ConfigError(
        f"{what} config {item!r} must be a name or a mapping with a 'name' key, for example "
        f"{{name: mlflow, tracking_uri: .qflow/tracker/mlflow}}."
    )


def _make(what: str, name: str, options: Mapping[str, Any], known: dict[str, Provided]) -> object:
    if name not in known:
        raise ConfigError(
            f"Unknown {what} {name!r}; installed: {', '.join(sorted(known)) or '(none)'}."
            f"{did_you_mean(name, known)}\nHint: `qflow plugins` lists what each plugin adds."
        )
    factory: Callable[..., object] = known[name].value
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(
            f"The {what} {name!r} (from plugin {known[name].plugin!r}) does not accept the "
            f"options {', '.join(options) or '(none)'}: {exc}."
        ) from exc
