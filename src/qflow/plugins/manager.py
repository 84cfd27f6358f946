"""Create the plugin manager: built-in specs, entry-point plugins, and what the caller adds."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pluggy

from qflow.errors import QFlowError
from qflow.plugins import hookspecs
from qflow.plugins.markers import PROJECT_NAME

logger = logging.getLogger(__name__)


def create_plugin_manager(
    plugins: Iterable[object] = (), *, disabled: Iterable[str] = (), entry_points: bool = True
) -> pluggy.PluginManager:
    """A manager with QFlow's hook specs, the installed plugins (unless disabled) and
    ``plugins``. Registering a class instead of an instance is refused with a hint."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs.RunSpecs)
    manager.add_hookspecs(hookspecs.StepSpecs)
    for name in disabled:
        manager.set_blocked(name)
    if entry_points:
        manager.load_setuptools_entrypoints(PROJECT_NAME)
    for plugin in plugins:
        if isinstance(plugin, type):
            raise QFlowError(
                f"Plugin {plugin.__name__!r} is a class; QFlow needs an instance. "
                f"Have you forgotten the `()` after {plugin.__name__}?"
            )
        manager.register(plugin)
    manager.trace.root.setwriter(logger.debug)
    return manager
