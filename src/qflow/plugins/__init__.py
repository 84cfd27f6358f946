"""pluggy hook specs, markers and the plugin manager (entry-point group ``qflow``)."""

from qflow.plugins.manager import create_plugin_manager, default_plugin_manager
from qflow.plugins.markers import hookimpl, hookspec

__all__ = ["create_plugin_manager", "default_plugin_manager", "hookimpl", "hookspec"]
