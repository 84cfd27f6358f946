"""Call a notification hook on every plugin, each in isolation.

pluggy stops a hook call at the first implementation that raises, so one broken tracker would
silence the others, depending on load order. Notifications (``before_run``, ``after_step``,
``on_metrics``…) are observers: each implementation is called on its own, and a failing one is
reported once, naming the plugin and the hook, and never fails the run.
"""

from __future__ import annotations

import logging
import threading
import types
from typing import Any

import pluggy

logger = logging.getLogger(__name__)


class HookNotifier:
    """Calls a hook's implementations one by one, in pluggy's order (last registered first)."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def has_listeners(self, hook: str) -> bool:
        caller = getattr(self.manager.hook, hook, None)
        return caller is not None and bool(caller.get_hookimpls())

    def __call__(self, hook: str, **kwargs: Any) -> None:
        caller = getattr(self.manager.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception as exc:
                self._report(_plugin_label(impl.plugin_name, impl.plugin), hook, exc)

    def _report(self, plugin: str, hook: str, exc: Exception) -> None:
        with self._lock:
            if (plugin, hook) in self._warned:
                return
            self._warned.add((plugin, hook))
        logger.warning(
            "plugin %r failed in hook %s (%s: %s); its other hooks and the other plugins go on",
            plugin,
            hook,
            type(exc).__name__,
            exc,
        )


def _plugin_label(name: str, plugin: object) -> str:
    """The name a plugin was registered under; for one registered without a name (pluggy
    then uses its ``id``), its module or class."""
    if not name.isdigit():
        return name
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"
