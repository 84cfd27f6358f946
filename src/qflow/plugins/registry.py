"""The plugin registry: every tracker, executor, model registry and serializer, by name.

Built-ins and third-party plugins are registered the same way, through the ``qflow``
entry-point group (QFlow's own entry points: ``builtin`` for the file tracker and the
serializers, ``builtin-executors``, ``builtin-trackers`` and ``builtin-registries``). The
runtime and the features above it ask ``plugin_registry()`` by name::

    executor = plugin_registry().create("executors", "parallel", {"workers": 4})

There is one registry per process, over the process's one plugin manager; what each kind
provides is collected on first use and kept. An unknown name raises ``ConfigError`` naming the
known ones, with a did-you-mean.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError, did_you_mean
from qflow.plugins.extensions import KINDS, LazyFactory, Provided, by_name, warn_once
from qflow.store import serializers

if TYPE_CHECKING:
    import pluggy


def _what(kind: str) -> str:
    """``model_registries`` → ``model registry``."""
    singular = kind[:-3] + "y" if kind.endswith("ies") else kind.rstrip("s")
    return singular.replace("_", " ")


class PluginRegistry:
    """What the plugins of one manager provide, looked up by kind and name (cached)."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self._provided: dict[str, dict[str, Provided]] = {}
        self._serializers: serializers.SerializerRegistry | None = None

    def __repr__(self) -> str:
        return f"PluginRegistry({', '.join(name for name, _ in self.manager.list_name_plugin())})"

    def provided(self, kind: str) -> dict[str, Provided]:
        """Extensions of ``kind`` (a key of ``KINDS``) by name, in registration order (the
        built-ins first); the first plugin to provide a name keeps it."""
        if kind not in KINDS:
            raise ConfigError(
                f"Unknown extension kind {kind!r}; kinds: {', '.join(KINDS)}."
                f"{did_you_mean(kind, list(KINDS))}"
            )
        found = self._provided.get(kind)
        if found is None:
            found = self._provided[kind] = by_name(kind, self.manager)
        return found

    def names(self, kind: str) -> list[str]:
        """The names of ``kind`` the registry knows, built-ins first."""
        return list(self.provided(kind))

    def get(self, kind: str, name: str) -> Provided:
        """The extension ``name`` of ``kind``; ``ConfigError`` naming the known ones if none."""
        known = self.provided(kind)
        if name not in known:
            raise ConfigError(
                f"Unknown {_what(kind)} {name!r}; installed: {', '.join(known) or '(none)'}."
                f"{did_you_mean(name, list(known))}\n"
                "Hint: `qflow plugins` lists what each plugin adds."
            )
        return known[name]

    def factory(self, kind: str, name: str) -> Callable[..., Any]:
        """The factory registered for ``name`` (a lazy one is imported now)."""
        value = self.get(kind, name).value
        if isinstance(value, LazyFactory):
            return value.load()
        factory: Callable[..., Any] = value
        return factory

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """The extension ``name`` of ``kind`` built with ``options``."""
        provided = self.get(kind, name)
        options = dict(options or {})
        factory = self.factory(kind, name)
        try:
            return factory(**options)
        except TypeError as exc:
            raise ConfigError(
                f"The {_what(kind)} {name!r} (from plugin {provided.plugin!r}) does not accept "
                f"the options {', '.join(options) or '(none)'}: {exc}."
            ) from exc

    @property
    def serializers(self) -> serializers.SerializerRegistry:
        """Every plugin's serializers (QFlow's formats first, pickle last), built once."""
        if self._serializers is None:
            registry = serializers.SerializerRegistry(())
            for item in self.provided("serializers").values():
                try:
                    registry.register(item.value)
                except ValueError as exc:
                    warn_once(f"serializer:{item.name}", "QFlow plugin %r: %s", item.plugin, exc)
            self._serializers = registry
        return self._serializers


@functools.cache
def plugin_registry() -> PluginRegistry:
    """The process's registry, over ``default_plugin_manager()`` (created on first use)."""
    from qflow.plugins.manager import default_plugin_manager

    return PluginRegistry(default_plugin_manager())


def _process_serializers() -> serializers.SerializerRegistry:
    return plugin_registry().serializers


serializers.provide(_process_serializers)


def create_trackers(spec: Any, registry: PluginRegistry | None = None) -> list[object]:
    """Tracker objects for a config's ``tracker`` value.

    ``spec`` is a name (``mlflow``), a mapping (``{name: mlflow, tracking_uri: ...}``) or a
    list of either; ``None`` means no tracker besides QFlow's own store.
    """
    if spec is None:
        return []
    registry = registry or plugin_registry()
    items: Sequence[Any] = spec if isinstance(spec, list | tuple) else [spec]
    made: list[object] = []
    for item in items:
        name, options = name_and_options(item, "tracker")
        made.append(registry.create("trackers", name, options))
    return made


def name_and_options(item: Any, what: str) -> tuple[str, dict[str, Any]]:
    """``"mlflow"`` or ``{name: mlflow, **options}`` → the name and the options."""
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        return str(item["name"]), {str(k): v for k, v in item.items() if k != "name"}
    raise ConfigError(
        f"{what} config {item!r} must be a name or a mapping with a 'name' key, for example "
        f"{{name: mlflow, tracking_uri: .qflow/tracker/mlflow}}."
    )
