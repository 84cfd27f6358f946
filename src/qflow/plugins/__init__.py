"""pluggy hook specs, markers, the plugin manager (entry-point group ``qflow``) and the
plugin registry that the runtime asks for executors, trackers, registries and serializers."""

from qflow.plugins.manager import create_plugin_manager, default_plugin_manager
from qflow.plugins.markers import hookimpl, hookspec
from qflow.plugins.registry import PluginRegistry, plugin_registry

__all__ = [
    "PluginRegistry",
    "create_plugin_manager",
    "default_plugin_manager",
    "hookimpl",
    "hookspec",
    "plugin_registry",
]
