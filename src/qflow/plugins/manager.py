"""Create the plugin manager: hook specs, entry-point plugins (built-ins included), extras.

Plugins are found under the entry-point group ``qflow``. One that cannot be imported or
registered is reported once by name as a warning, recorded in ``manager.failures`` (shown by
``qflow plugins``) and skipped: QFlow starts without it.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

import pluggy

from qflow.distribution import entry_points
from qflow.errors import QFlowError
from qflow.plugins import hookspecs
from qflow.plugins.markers import PROJECT_NAME

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
"""Name of QFlow's own plugin (``qflow.plugins.builtin``), registered by entry point."""

DISTRIBUTION = "qflow-framework"
"""QFlow's distribution: its entry points (the built-ins) are registered first."""

_reported: set[str] = set()


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from, for ``qflow plugins``."""

    name: str
    target: str
    distribution: str = ""
    version: str = ""
    path: str = ""
    error: str | None = None

    @property
    def origin(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version}".strip()
        return "registered in code"


class QFlowPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers where each plugin came from and which failed."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.sources: dict[str, PluginSource] = {}
        self.failures: list[PluginSource] = []


def _path_of(plugin: object) -> str:
    module = plugin if hasattr(plugin, "__file__") else None
    if module is None:
        module_name = getattr(type(plugin), "__module__", "")
        module = importlib.import_module(module_name) if module_name else None
    return str(getattr(module, "__file__", "") or "")


def _report(source: PluginSource) -> None:
    if source.name in _reported:
        return
    _reported.add(source.name)
    logger.warning(
        "QFlow plugin %r (%s, from %s) could not be loaded and is skipped: %s",
        source.name,
        source.target,
        source.origin,
        source.error,
    )


@dataclass(frozen=True)
class _Loaded:
    """What scanning the entry points found: the plugins that loaded, and the failures."""

    plugins: tuple[tuple[str, object, PluginSource], ...]
    failures: tuple[PluginSource, ...]


@functools.cache
def _entry_point_plugins() -> _Loaded:
    """Scan the ``qflow`` entry points and load each plugin, once per process.

    QFlow's own entry points come first, so its built-ins keep their names when a plugin
    provides the same one.
    """
    entries = sorted(entry_points(PROJECT_NAME), key=lambda e: e.distribution != DISTRIBUTION)
    plugins: list[tuple[str, object, PluginSource]] = []
    failures: list[PluginSource] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            continue
        seen.add(entry.name)
        source = PluginSource(entry.name, entry.value, entry.distribution, entry.version)
        try:
            plugin = entry.load()
            if isinstance(plugin, type):
                plugin = plugin()
            path = _path_of(plugin)
        except Exception as exc:
            failures.append(replace(source, error=f"{type(exc).__name__}: {exc}"))
            continue
        plugins.append((entry.name, plugin, replace(source, path=path)))
    return _Loaded(tuple(plugins), tuple(failures))


def _register_entry_points(manager: QFlowPluginManager) -> None:
    loaded = _entry_point_plugins()
    for name, plugin, source in loaded.plugins:
        if manager.is_blocked(name) or manager.has_plugin(name):
            continue
        try:
            manager.register(plugin, name=name)
        except Exception as exc:
            failed = replace(source, error=f"{type(exc).__name__}: {exc}")
            manager.failures.append(failed)
            _report(failed)
            continue
        manager.sources[name] = source
    for failed in loaded.failures:
        if not manager.is_blocked(failed.name):
            manager.failures.append(failed)
            _report(failed)


def create_plugin_manager(
    plugins: Iterable[object] = (), *, disabled: Iterable[str] = (), entry_points: bool = True
) -> QFlowPluginManager:
    """A manager with QFlow's hook specs, the installed plugins (unless disabled) and
    ``plugins``. Registering a class instead of an instance is refused with a hint.

    The entry points are scanned and their plugins loaded once per process; a later manager
    (a run's, with the run's trackers) registers the same plugin objects again.
    """
    manager = QFlowPluginManager()
    for spec in hookspecs.ALL_SPECS:
        manager.add_hookspecs(spec)
    for name in disabled:
        manager.set_blocked(name)
    if entry_points:
        _register_entry_points(manager)
    if not manager.has_plugin(BUILTIN) and not manager.is_blocked(BUILTIN):
        from qflow.plugins import builtin

        manager.register(builtin, name=BUILTIN)
        manager.sources[BUILTIN] = PluginSource(
            BUILTIN, builtin.__name__, DISTRIBUTION, _version(), _path_of(builtin)
        )
    for plugin in plugins:
        if isinstance(plugin, type):
            raise QFlowError(
                f"Plugin {plugin.__name__!r} is a class; QFlow needs an instance. "
                f"Have you forgotten the `()` after {plugin.__name__}?"
            )
        manager.register(plugin)
    manager.trace.root.setwriter(logger.debug)
    return manager


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return ""


@functools.cache
def default_plugin_manager() -> QFlowPluginManager:
    """The process's plugin manager: the installed plugins, loaded once per process. Look
    extensions up through ``qflow.plugins.registry.plugin_registry()``, which caches them."""
    return create_plugin_manager()
